"""The hooks endpoints: Auth0's shapes, the one-enabled rule, and every refused input."""

from __future__ import annotations

import time
from importlib import metadata
from pathlib import Path

import pytest
from ulid import ULID

from hookengine.errors import ValidationError
from hookengine.scripts import parse_metadata

# The store's own behaviour: the same on SQLite and on PostgreSQL.
pytestmark = pytest.mark.backends

HOOKS = "/api/v2/hooks"
SAMPLES = sorted((Path(__file__).parent.parent / "hooks").glob("*.py"))
TWILIO = metadata.version("twilio")


def block(trigger="send-phone-message", dependencies=(), secrets=()) -> str:
    """A PEP 723 block, as a sample hook file starts."""
    return ("# /// script\n"
            f"# dependencies = {list(dependencies)!r}\n".replace("'", '"')
            + "# [tool.hookengine]\n"
            f'# trigger = "{trigger}"\n'
            f"# secrets = {list(secrets)!r}\n".replace("'", '"')
            + "# ///\n")


@pytest.fixture
def headers(auth):
    return auth()


def all_hooks(client, headers) -> list[dict]:
    return client.get(f"{HOOKS}?per_page=100", headers=headers).json


def test_create_returns_auth0_hook_with_location(client, headers, script_for):
    response = client.post(HOOKS, json={"name": "my hook-1", "script": script_for(),
                                        "triggerId": "send-phone-message"}, headers=headers)
    assert response.status_code == 201
    hook = response.json
    assert list(hook) == ["id", "name", "script", "triggerId", "enabled", "dependencies",
                          "dependencies_status", "dependencies_error"]
    assert (hook["dependencies_status"], hook["dependencies_error"]) == ("ready", None)
    assert str(ULID.from_str(hook["id"])) == hook["id"]
    assert hook["dependencies"] == {}
    assert response.headers["Location"] == f"{HOOKS}/{hook['id']}"
    assert client.get(response.headers["Location"], headers=headers).json == hook


def test_first_hook_of_a_trigger_is_enabled_later_ones_are_not(make_hook):
    first = make_hook()
    second = make_hook()
    other_trigger = make_hook(triggerId="post-change-password")
    assert (first["enabled"], second["enabled"], other_trigger["enabled"]) == (True, False, True)


def test_first_hook_created_disabled_stays_disabled(make_hook, engine):
    hook = make_hook(enabled=False)
    assert hook["enabled"] is False
    assert engine.hooks.enabled_for("send-phone-message") is None


def test_enabling_one_disables_the_one_enabled_before(client, headers, make_hook, engine):
    first = make_hook()
    other_trigger = make_hook(triggerId="credentials-exchange")
    second = make_hook(enabled=True)
    assert second["enabled"] is True
    assert client.get(f"{HOOKS}/{first['id']}", headers=headers).json["enabled"] is False

    response = client.patch(f"{HOOKS}/{first['id']}", json={"enabled": True}, headers=headers)
    assert response.status_code == 200 and response.json["enabled"] is True
    assert engine.hooks.enabled_for("send-phone-message")["id"] == first["id"]
    assert client.get(f"{HOOKS}/{second['id']}", headers=headers).json["enabled"] is False
    assert engine.hooks.enabled_for("credentials-exchange")["id"] == other_trigger["id"]


def test_disabling_leaves_no_hook_enabled(client, headers, make_hook, engine):
    hook = make_hook()
    response = client.patch(f"{HOOKS}/{hook['id']}", json={"enabled": False}, headers=headers)
    assert response.json["enabled"] is False
    assert engine.hooks.enabled_for("send-phone-message") is None


def test_get_unknown_hook_is_auth0_404(client, headers):
    response = client.get(f"{HOOKS}/01ARZ3NDEKTSV4RRFFQ69G5FAV", headers=headers)
    assert response.status_code == 404
    assert response.json == {"statusCode": 404, "error": "Not Found",
                             "message": "Hook not found.", "errorCode": "inexistent_hook"}


@pytest.mark.parametrize("method", ["patch", "delete"])
def test_write_to_unknown_hook_is_404(client, headers, method):
    response = getattr(client, method)(f"{HOOKS}/nope", json={"name": "x"}, headers=headers)
    assert response.status_code == 404
    assert response.json["errorCode"] == "inexistent_hook"


def test_list_is_a_bare_array_or_totals_object(client, headers, make_hook):
    hooks = [make_hook() for _ in range(5)]
    assert client.get(HOOKS, headers=headers).json == hooks
    page = client.get(f"{HOOKS}?page=1&per_page=2&include_totals=true", headers=headers).json
    assert page == {"total": 5, "start": 2, "limit": 2, "hooks": hooks[2:4]}
    assert client.get(f"{HOOKS}?page=2&per_page=2", headers=headers).json == hooks[4:]
    assert client.get(f"{HOOKS}?page=9&per_page=2", headers=headers).json == []


def test_list_filters_by_enabled_and_trigger(client, headers, make_hook):
    enabled = make_hook()
    disabled = make_hook()
    other = make_hook(triggerId="pre-user-registration")
    assert client.get(f"{HOOKS}?enabled=false", headers=headers).json == [disabled]
    assert client.get(f"{HOOKS}?enabled=true&triggerId=send-phone-message",
                      headers=headers).json == [enabled]
    assert client.get(f"{HOOKS}?triggerId=pre-user-registration&include_totals=true",
                      headers=headers).json["hooks"] == [other]


def test_fields_include_and_exclude(client, headers, make_hook):
    hook = make_hook()
    # What auth0-go sends (GO-REC:TestHookManager_List).
    listed = client.get(f"{HOOKS}?fields=id&include_fields=true&include_totals=true&per_page=50",
                        headers=headers).json
    assert listed == {"total": 1, "start": 0, "limit": 50, "hooks": [{"id": hook["id"]}]}
    one = client.get(f"{HOOKS}/{hook['id']}?fields=script,name&include_fields=false",
                     headers=headers).json
    assert one == {"id": hook["id"], "triggerId": hook["triggerId"],
                   "enabled": True, "dependencies": {}, "dependencies_status": "ready",
                   "dependencies_error": None}


@pytest.mark.parametrize("query, named", [
    ("page=-1", "page"), ("page=x", "page"), ("per_page=101", "per_page"),
    ("include_totals=yes", "include_totals"), ("enabled=maybe", "enabled"),
    ("triggerId=pre-login", "triggerId"), ("fields=id,secret", "secret"),
    ("fields=id&include_fields=2", "include_fields"),
])
def test_bad_query_is_400_naming_the_parameter(client, headers, make_hook, query, named):
    make_hook()
    response = client.get(f"{HOOKS}?{query}", headers=headers)
    assert response.status_code == 400
    assert response.json["errorCode"] == "invalid_query_string"
    assert named in response.json["message"]


def test_update_changes_only_what_is_sent(client, headers, make_hook):
    hook = make_hook()
    script = "def send_phone_message(recipient, text, context):\n    return {'id': 1}\n"
    response = client.patch(f"{HOOKS}/{hook['id']}", json={"name": "renamed", "script": script},
                            headers=headers)
    assert response.status_code == 200
    assert response.json == {**hook, "name": "renamed", "script": script}
    assert client.get(f"{HOOKS}/{hook['id']}", headers=headers).json == response.json


def test_rename_to_its_own_name_is_fine(client, headers, make_hook):
    hook = make_hook(name="same")
    response = client.patch(f"{HOOKS}/{hook['id']}", json={"name": "same"}, headers=headers)
    assert response.status_code == 200


@pytest.mark.parametrize("method", ["create", "rename"])
def test_duplicate_name_is_409(client, headers, make_hook, script_for, method):
    make_hook(name="taken")
    if method == "create":
        response = client.post(HOOKS, json={"name": "taken",
                                            "script": script_for("post-change-password"),
                                            "triggerId": "post-change-password"},
                               headers=headers)
    else:
        other = make_hook(name="free")
        response = client.patch(f"{HOOKS}/{other['id']}", json={"name": "taken"},
                                headers=headers)
    assert response.status_code == 409
    assert response.json == {"statusCode": 409, "error": "Conflict",
                             "message": "Hook with the same name already exists.",
                             "errorCode": "hook_conflict"}


def test_trigger_cannot_change(client, headers, make_hook):
    hook = make_hook()
    response = client.patch(f"{HOOKS}/{hook['id']}", json={"triggerId": "post-change-password"},
                            headers=headers)
    assert response.status_code == 400
    assert "triggerId" in response.json["message"]
    assert client.get(f"{HOOKS}/{hook['id']}", headers=headers).json == hook


def test_store_refuses_a_trigger_change_by_name(engine, make_hook):
    hook = make_hook()
    with pytest.raises(ValidationError, match="triggerId cannot be changed"):
        engine.hooks.update(hook["id"], {"triggerId": "post-change-password"})


def test_delete_is_204_and_takes_the_secrets(client, headers, make_hook, engine):
    hook = make_hook()
    client.post(f"{HOOKS}/{hook['id']}/secrets", json={"KEY": "v"}, headers=headers)
    response = client.delete(f"{HOOKS}/{hook['id']}", headers=headers)
    assert response.status_code == 204 and response.data == b""
    assert client.get(f"{HOOKS}/{hook['id']}", headers=headers).status_code == 404
    assert engine.store.query("SELECT * FROM secrets WHERE hook_id = ?", (hook["id"],)) == []
    assert client.delete(f"{HOOKS}/{hook['id']}", headers=headers).status_code == 404


# --- every bad input is refused with 400, names what is wrong, and changes nothing ---

GOOD = {"name": "good", "script": "def send_phone_message(recipient, text, context):\n  pass\n",
        "triggerId": "send-phone-message"}


@pytest.mark.parametrize("change, named", [
    ({"name": None}, "name"), ({"name": 7}, "name"), ({"name": ""}, "name"),
    ({"name": "-lead"}, "name"), ({"name": "trail "}, "name"), ({"name": "under_score"}, "name"),
    ({"name": "new\nline"}, "name"), ({"name": "trailing\n"}, "name"),
    ({"script": ""}, "script"), ({"script": 1}, "script"),
    ({"triggerId": "post-login"}, "triggerId"), ({"triggerId": None}, "triggerId"),
    ({"enabled": "yes"}, "enabled"), ({"dependencies": ["twilio"]}, "dependencies"),
    ({"dependencies": {"twilio": 9}}, "dependencies/twilio"), ({"extra": 1}, "extra"),
    ({"id": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}, "id"),
])
def test_create_refuses_bad_fields(client, headers, change, named):
    # None stands for "left out".
    body = {key: value for key, value in {**GOOD, **change}.items() if value is not None}
    response = client.post(HOOKS, json=body, headers=headers)
    assert response.status_code == 400
    assert response.json["errorCode"] == "invalid_body"
    assert named in response.json["message"]
    assert all_hooks(client, headers) == []


@pytest.mark.parametrize("change, named", [
    ({}, "non-empty"), ({"name": "bad_name"}, "name"), ({"enabled": 1}, "enabled"),
    ({"script": "def f(:"}, "Line 1"), ({"dependencies": {"left-pad": "1.0"}}, "left-pad"),
    ({"id": "x"}, "id"),
])
def test_update_refuses_bad_fields_and_changes_nothing(client, headers, make_hook, change,
                                                       named):
    hook = make_hook()
    response = client.patch(f"{HOOKS}/{hook['id']}", json=change, headers=headers)
    assert response.status_code == 400
    assert named in response.json["message"] or named in str(response.json.get("errors"))
    assert all_hooks(client, headers) == [hook]


def test_script_that_does_not_compile_lists_every_problem(client, headers):
    script = ("def send_phone_message(recipient, text, context):\n"
              "    exec('print(1)')\n"
              "    _private = 1\n"
              "    return recipient.__class__\n")
    response = client.post(HOOKS, json={**GOOD, "script": script}, headers=headers)
    assert response.status_code == 400
    errors = response.json["errors"]
    assert [e.split(":")[0] for e in errors] == ["Line 2", "Line 3", "Line 4"]
    assert all(e in response.json["message"] for e in errors)


@pytest.mark.parametrize("script, expected", [
    ("def send_phone_message(recipient, text context):\n  pass\n", "Line 1: SyntaxError"),
    ("def other(recipient, text, context):\n  pass\n",
     "Line 1: the script must define a top-level function send_phone_message(...)."),
    ("def send_phone_message(r, t, c):\n  pass\n" + "x = " + "[" * 120 + "]" * 120 + "\n",
     "Line 3: the script nests"),
])
def test_script_problems_name_the_line(client, headers, script, expected):
    response = client.post(HOOKS, json={**GOOD, "script": script}, headers=headers)
    assert response.status_code == 400
    assert any(expected in error for error in response.json["errors"]), response.json


def test_script_over_the_size_limit_is_refused(client, headers, engine):
    limit = engine.settings["MAX_SCRIPT_BYTES"]
    script = GOOD["script"] + "#" * (limit + 1 - len(GOOD["script"])) + "\n"
    response = client.post(HOOKS, json={**GOOD, "script": script}, headers=headers)
    assert response.status_code == 400
    assert f"the limit is {limit}" in response.json["message"]


@pytest.mark.parametrize("dependencies, expected", [
    ({"left-pad": "1.0.0"}, "package 'left-pad' is not allowed"),
    ({"twilio": "nine"}, "'nine' is not a version"),
])
def test_a_dependency_that_can_never_be_had_is_refused(client, headers, dependencies,
                                                       expected):
    response = client.post(HOOKS, json={**GOOD, "dependencies": dependencies}, headers=headers)
    assert response.status_code == 400
    assert expected in response.json["message"]
    assert all_hooks(client, headers) == []


@pytest.mark.parametrize("dependencies", [{"twilio": ">=10"}, {"twilio": "8.0.0"}])
def test_another_version_than_the_engines_is_installed_and_says_why_not(client, headers,
                                                                         engine, dependencies):
    """Any version of an allowed package may be declared; this test's engine has no index, so
    the install fails, naming the package."""
    response = client.post(HOOKS, json={**GOOD, "dependencies": dependencies}, headers=headers)
    assert response.status_code == 201 and response.json["dependencies_status"] == "installing"
    deadline = time.monotonic() + 60
    while (hook := engine.hooks.get(response.json["id"]))["dependencies_status"] == "installing":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert hook["dependencies_status"] == "failed" and "twilio" in hook["dependencies_error"]


def test_dependencies_come_from_the_block_unless_the_request_sends_them(client, headers,
                                                                        make_hook):
    script = block(dependencies=["twilio>=9,<10"]) + GOOD["script"]
    from_block = make_hook(script=script)
    assert from_block["dependencies"] == {"twilio": "<10,>=9"}
    sent = make_hook(script=script, dependencies={"requests": "latest"})
    assert sent["dependencies"] == {"requests": "latest"}
    exact = make_hook(dependencies={"twilio": TWILIO})
    assert exact["dependencies"] == {"twilio": TWILIO}


def test_update_keeps_sent_dependencies_when_a_new_script_has_no_block(client, headers,
                                                                       make_hook):
    hook = make_hook(dependencies={"twilio": "latest"})
    script = GOOD["script"] + "# edited\n"
    response = client.patch(f"{HOOKS}/{hook['id']}", json={"script": script}, headers=headers)
    assert response.json["dependencies"] == {"twilio": "latest"}
    response = client.patch(f"{HOOKS}/{hook['id']}", json={"script": block() + script},
                            headers=headers)
    assert response.json["dependencies"] == {}


@pytest.mark.parametrize("metadata_block, expected", [
    ("# /// script\n# dependencies = [\n# ///\n", "Line 1: the '# /// script' block is not "
                                                   "valid TOML"),
    (block(trigger="post-change-password"), "declares trigger 'post-change-password'"),
    (block(secrets=["GOOD", "bad name"]), "declares secret 'bad name'"),
    (block(secrets=["TRAILING\n"]), "declares secret 'TRAILING\\n'"),
    (block(dependencies=["left-pad"]), "package 'left-pad' is not allowed"),
    (block(dependencies=["twilio>=nine"]), "is not a PEP 508 requirement"),
    ("# /// script\n# [tool.hookengine]\n# colour = 'red'\n# ///\n", "unknown key 'colour'"),
])
def test_bad_metadata_block_is_refused(client, headers, metadata_block, expected):
    response = client.post(HOOKS, json={**GOOD, "script": metadata_block + GOOD["script"]},
                           headers=headers)
    assert response.status_code == 400
    assert expected in response.json["message"], response.json
    assert all_hooks(client, headers) == []


def test_field_and_script_problems_come_in_one_answer(engine):
    with pytest.raises(ValidationError) as raised:
        engine.hooks.create({"name": "-bad", "triggerId": "send-phone-message",
                             "script": "def f(:"})
    assert len(raised.value.errors) == 2
    assert raised.value.errors[1].startswith("Line 1: SyntaxError")


def test_draft_validation_falls_back_to_the_hooks_dependencies(engine):
    dependencies, meta = engine.hooks.validate_script(GOOD["script"], "send-phone-message",
                                                      fallback={"twilio": "latest"})
    assert dependencies == {"twilio": "latest"} and meta.present is False


def test_declared_secrets_come_from_the_block(engine, make_hook):
    from hookengine.scripts import missing_secrets

    hook = make_hook(script=block(secrets=["A_KEY", "B"]) + GOOD["script"])
    assert missing_secrets(hook["script"], {"B": "x"}) == ["A_KEY"]


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sample_hooks_are_accepted_as_they_are(make_hook, path):
    script = path.read_text()
    declared, problems = parse_metadata(script)
    assert problems == []
    hook = make_hook(name=path.stem.replace("_", "-"), script=script, triggerId=declared.trigger)
    assert hook["dependencies"] == declared.dependencies


def test_store_and_api_refuse_with_the_same_rules(client, headers, engine):
    body = {"name": "trailing\n", "script": "def f(:", "triggerId": "send-phone-message",
            "colour": "red"}
    response = client.post(HOOKS, json=body, headers=headers)
    with pytest.raises(ValidationError) as raised:
        engine.hooks.create(body)
    assert response.status_code == 400
    assert response.json["errors"] == raised.value.errors
    assert [e.split(":")[0].split(" ")[0] for e in raised.value.errors] == [
        "Additional", "name", "Line"]


@pytest.mark.parametrize("body, says", [
    ({**GOOD, "name": "-x"}, "use letters, digits, spaces and -"),
    ({"name": "x"}, "send an object with name, script and triggerId"),
    ([GOOD], "send an object with name, script and triggerId"),
])
def test_field_problems_say_what_to_send(client, headers, body, says):
    response = client.post(HOOKS, json=body, headers=headers)
    assert response.status_code == 400
    assert says in response.json["message"]
    assert response.json["message"].count(says) == 1


def test_every_query_problem_comes_in_one_answer(client, headers):
    response = client.get(f"{HOOKS}?page=-1&per_page=x&enabled=maybe&triggerId=nope&sort=name",
                          headers=headers)
    assert response.status_code == 400
    assert response.json["errorCode"] == "invalid_query_string"
    errors = response.json["errors"]
    assert [e.split(" ")[2] if e.startswith("Query") else e.split(" ")[3] for e in errors] == [
        "'sort';", "page", "per_page", "enabled", "triggerId"]
    assert all(e in response.json["message"] for e in errors)


def test_query_defaults_are_documented_and_used(client, headers, make_hook):
    hooks = [make_hook() for _ in range(3)]
    doc = client.get("/api/v2/openapi.json").json
    query = {p["name"]: p["schema"] for p in doc["paths"][HOOKS]["get"]["parameters"]}
    assert (query["page"]["default"], query["per_page"]["default"]) == (0, 50)
    assert query["include_totals"]["default"] is False
    listed = client.get(f"{HOOKS}?include_totals=true", headers=headers).json
    assert (listed["start"], listed["limit"], listed["hooks"]) == (0, 50, hooks)


def test_route_refuses_a_query_type_it_cannot_convert():
    from flask import Blueprint

    from hookengine.api.routes import route

    with pytest.raises(TypeError, match="'ratio'"):
        route(Blueprint("x", __name__), "/x", "GET", summary="x", scope=None,
              query={"ratio": {"type": "number"}})
