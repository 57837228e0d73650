"""The Hook editor in Chromium: code, problems on their line, draft runs, secrets, the live
tail, drafts that survive a reload, stale saves refused."""

from __future__ import annotations

import itertools

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

NAMES = itertools.count()  # every test's hook a name of its own, in one server
SCRIPT = '''def post_user_registration(user, context):
    print("hello " + user["email"])
    return {"greeted": user["email"]}
'''


@pytest.fixture
def hook(signed_in):
    """A saved hook, and the editor open on it."""
    response = signed_in.server.call("POST", "/hooks", json={
        "name": f"greeter-{next(NAMES)}", "script": SCRIPT,
        "triggerId": "post-user-registration"})
    assert response.status_code == 201, response.text
    hook = response.json()
    signed_in.open(f"/ui/hooks/{hook['id']}")
    signed_in.find('#code[data-ready="true"]')
    return hook


def code_text(page, where: str = "#code") -> str:
    """The editor's text, line by line as CodeMirror shows it (short scripts are shown
    whole)."""
    return page.script(f"return [...document.querySelectorAll('{where} .cm-line')]"
                       ".map(line => line.textContent).join('\\n')")


def test_the_editor_shows_the_saved_code(hook, signed_in):
    assert code_text(signed_in) == SCRIPT
    assert signed_in.find("#draft-state").text == "Saved"


def set_code(page, text: str, where: str = "#code") -> None:
    """Replace an editor's text at once, as a paste does (typing over a selection makes
    Chrome's own contenteditable editing try inline styles, which the CSP blocks and logs;
    CodeMirror redraws without them either way)."""
    page.find(f"{where} .cm-content").click()
    page.script("""
        const data = new DataTransfer(); data.setData('text/plain', arguments[1]);
        const content = document.querySelector(arguments[0] + ' .cm-content');
        content.dispatchEvent(new KeyboardEvent('keydown', {key: 'a', ctrlKey: true,
                                                            bubbles: true}));
        content.dispatchEvent(
            new ClipboardEvent('paste', {clipboardData: data, bubbles: true, cancelable: true}));
    """, where, text)
    page.wait(lambda d: code_text(page, where) == text, "the editor did not take the text")


def saved_script(page, hook) -> str:
    return page.server.call("GET", f"/hooks/{hook['id']}").json()["script"]


def test_a_mistake_is_shown_on_its_line_then_fixed(hook, signed_in):
    code = signed_in.field("Code")
    code.click()
    code.send_keys(Keys.CONTROL, Keys.END)  # the empty last line, at the top level
    code.send_keys("x = 1 +")
    # Marked where Python stops: the end of that line (a point, not a range).
    marker = signed_in.find(".cm-lintRange-error, .cm-lintPoint-error")
    line = marker.find_element(By.XPATH, "ancestor::div[contains(@class,'cm-line')]")
    lines = signed_in.driver.find_elements(By.CSS_SELECTOR, "#code .cm-line")
    assert lines.index(line) == 3 and line.text == "x = 1 +"  # the fourth line, typed
    signed_in.wait_text("#problems-count", "1 problem")
    code.send_keys(Keys.BACKSPACE, Keys.BACKSPACE)  # "x = 1": fixed
    signed_in.wait_text("#problems-count", "No problems")
    assert not signed_in.driver.find_elements(By.CSS_SELECTOR,
                                              ".cm-lintRange-error, .cm-lintPoint-error")


def test_run_runs_the_unsaved_draft_and_leaves_the_saved_hook_alone(hook, signed_in):
    draft = SCRIPT.replace('"hello "', '"draft says hi to "')
    set_code(signed_in, draft)
    signed_in.button("Run").click()
    signed_in.wait_text("#answer-status", "success")
    assert "draft says hi to user1@foo.com" in signed_in.find("#answer-logs").text
    assert '"greeted": "user1@foo.com"' in signed_in.find("#answer-result").text
    assert "total" in signed_in.find("#answer-timings").text
    assert saved_script(signed_in, hook) == SCRIPT
    assert signed_in.find("#draft-state").text == "Unsaved changes"


def test_an_edited_payload_is_run_and_remembered(hook, signed_in):
    set_code(signed_in, '{"user": {"email": "someone@example.com"}, '
                        '"context": {"connection": {}}}', "#payload")
    signed_in.field("Code").click()
    signed_in.field("Code").send_keys(Keys.CONTROL, Keys.ENTER)  # Ctrl+Enter runs
    signed_in.wait_text("#answer-logs", "hello someone@example.com")
    signed_in.driver.refresh()
    signed_in.find('#code[data-ready="true"]')
    assert "someone@example.com" in code_text(signed_in, "#payload")


def test_a_secret_is_masked_and_stays_masked_after_a_reload(hook, signed_in):
    signed_in.field("Secret name").send_keys("API_KEY")
    signed_in.field("Secret value").send_keys("s3cr3t-value-123")
    signed_in.button("Add secret").click()
    signed_in.wait_text("#secrets-rows", "API_KEY")
    assert signed_in.field("Secret value").get_attribute("value") == ""
    signed_in.driver.refresh()
    rows = signed_in.wait_text("#secrets-rows", "API_KEY")
    assert "value not shown" in rows.text
    assert "s3cr3t-value-123" not in signed_in.driver.page_source
    assert "s3cr3t" not in signed_in.script("return JSON.stringify(localStorage)")
    secrets = signed_in.server.call("GET", f"/hooks/{hook['id']}/secrets").json()
    assert secrets == {"API_KEY": "_VALUE_NOT_SHOWN_"}


def test_a_declared_secret_that_is_not_set_is_flagged(hook, signed_in):
    block = ('# /// script\n# [tool.hookengine]\n# trigger = "post-user-registration"\n'
             '# secrets = ["WEBHOOK_URL"]\n# ///\n')
    set_code(signed_in, block + SCRIPT)
    row = signed_in.wait_text("#secrets-rows", "WEBHOOK_URL")
    assert "not set (declared by the script)" in row.text


def test_a_run_made_through_the_api_appears_in_the_live_tail(hook, signed_in):
    signed_in.find("#tab-logs").click()
    signed_in.wait_text("#tail-state", "connected")
    response = signed_in.server.call("POST", f"/hooks/{hook['id']}/run", json={
        "payload": {"user": {"email": "from-the-api@example.com"}, "context": {"connection": {}}}})
    assert response.status_code == 200
    signed_in.wait_text("#tail", "hello from-the-api@example.com")


def test_unsaved_work_survives_a_reload_and_leaving_asks_first(hook, signed_in):
    draft = SCRIPT + "\n# still working on this\n"
    set_code(signed_in, draft)
    signed_in.wait_text("#draft-state", "Unsaved changes")
    # Leaving asks first (WebDriver's own navigation answers that prompt by itself, so the
    # page's beforeunload handler is asked directly).
    assert signed_in.script("const leaving = new Event('beforeunload', {cancelable: true});"
                            "window.dispatchEvent(leaving); return leaving.defaultPrevented")
    signed_in.driver.refresh()
    signed_in.find('#code[data-ready="true"]')
    assert code_text(signed_in) == draft
    assert signed_in.find("#draft-state").text == "Unsaved changes"
    assert saved_script(signed_in, hook) == SCRIPT
    signed_in.button("Save").click()
    signed_in.wait_text("#draft-state", "Saved")
    assert saved_script(signed_in, hook) == draft


def test_a_save_over_a_newer_version_is_refused(hook, signed_in):
    set_code(signed_in, SCRIPT + "# mine\n")
    pushed = SCRIPT + "# pushed from the CLI\n"
    assert signed_in.server.call("PATCH", f"/hooks/{hook['id']}",
                                 json={"script": pushed}).status_code == 200
    signed_in.field("Code").send_keys(Keys.CONTROL, "s")  # Ctrl+S saves
    alert = signed_in.wait_text("#editor-problem", "Not saved")
    assert "changed since you loaded it" in alert.text
    assert saved_script(signed_in, hook) == pushed
    assert signed_in.find("#draft-state").text == "Unsaved changes"
    signed_in.console()  # the refused save's 412 is the one error this page should log


def test_hook_output_is_shown_as_text_and_runs_nothing(hook, signed_in):
    hostile = ('def post_user_registration(user, context):\n'
               '    print("<img src=x onerror=\\"document.title=1\\">")\n'
               '    print("<script>document.title=2</script>")\n'
               '    return {"html": "<b onmouseover=alert(1)>bold</b>"}\n')
    set_code(signed_in, hostile)
    signed_in.button("Run").click()
    logs = signed_in.wait_text("#answer-logs", "<script>document.title=2</script>")
    assert "<img src=x" in logs.text
    assert not signed_in.driver.find_elements(By.CSS_SELECTOR, "#answer img, #answer script, "
                                                                "#answer b")
    assert signed_in.driver.title != "1" and signed_in.driver.title != "2"
    # The page fixture fails the test on any CSP violation the page reported.
