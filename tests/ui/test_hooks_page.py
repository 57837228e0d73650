"""The hooks page in Chromium: New hook starts from the trigger's template; enable, delete;
a session without a scope finds its controls disabled."""

from __future__ import annotations

from selenium.webdriver.support.ui import Select


def test_new_hook_opens_the_editor_on_the_triggers_template(signed_in):
    signed_in.open("/ui/")
    signed_in.field("Name").send_keys("welcome")
    Select(signed_in.field("Trigger")).select_by_value("post-user-registration")
    signed_in.button("Create").click()
    signed_in.find('#code[data-ready="true"]')
    assert "def post_user_registration(user, context):" in signed_in.find("#code").text
    signed_in.wait_text("#problems-count", "No problems")  # the template saves as it is
    signed_in.open("/ui/")
    signed_in.wait_text("#hooks tbody", "welcome")
    assert "post-user-registration" in signed_in.find("#hooks tbody").text


def test_a_hook_is_enabled_and_deleted_from_the_list(signed_in):
    hook = signed_in.server.call("POST", "/hooks", json={
        "name": "listed", "triggerId": "post-change-password", "enabled": False,
        "script": "def post_change_password(user, context):\n    return {}\n"}).json()
    signed_in.open("/ui/")
    signed_in.field("Enabled listed").click()
    signed_in.wait(lambda d: signed_in.server.call("GET", f"/hooks/{hook['id']}").json()[
        "enabled"], "the hook was not enabled")
    signed_in.button("Delete listed").click()
    signed_in.driver.switch_to.alert.accept()
    signed_in.wait(lambda d: signed_in.server.call("GET", f"/hooks/{hook['id']}")
                   .status_code == 404, "the hook was not deleted")


def test_controls_the_token_cannot_use_are_disabled(page):
    from serverprocess import hookengine

    reader = hookengine("token", "create", "--scope", "read:hooks", env=page.server.env).strip()
    hook = page.server.call("POST", "/hooks", json={
        "name": "read-only", "triggerId": "post-change-password",
        "script": "def post_change_password(user, context):\n    return {}\n"}).json()
    page.sign_in(reader)
    assert not page.button("Create").is_enabled()
    page.open(f"/ui/hooks/{hook['id']}")
    page.find('#code[data-ready="true"]')
    for name in ("Save", "Run", "Add secret"):
        assert not page.button(name).is_enabled(), name
