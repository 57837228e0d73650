"""The five triggers: descriptions, sample payloads, payload checks, the production path."""

from __future__ import annotations

import pytest

from hookengine.triggers import TRIGGERS

# The store's own behaviour: the same on SQLite and on PostgreSQL.
pytestmark = pytest.mark.backends

SCRIPTS = {
    "send-phone-message": "return {'MessageID': 'sent-' + context.code}",
    "credentials-exchange": ("return {'scope': scope, 'https://example.com/plan': "
                             "client.metadata.plan, 'plan': 'dropped', "
                             "'https://auth0.com/x': 'reserved'}"),
    "pre-user-registration": ("return {'user': {'user_metadata': {'hobby': user.user_metadata"
                              "['hobby']}, 'app_metadata': {}, 'email': 'ignored'}}"),
    "post-user-registration": "print('welcome', user.email)",
    "post-change-password": "print('changed', user.email)",
}
EXPECTED = {
    "send-phone-message": {"MessageID": "sent-999111"},
    "credentials-exchange": {"scope": ["read:connections"], "https://example.com/plan": "full"},
    "pre-user-registration": {"user": {"user_metadata": {"hobby": "surfing"},
                                       "app_metadata": {}}},
    "post-user-registration": None,
    "post-change-password": None,
}


def script_of(trigger_id: str, body: str) -> str:
    return f"def {TRIGGERS[trigger_id].signature()}:\n    {body}\n"


def test_triggers_are_listed_with_entry_and_sample(client, auth):
    listed = client.get("/api/v2/triggers", headers=auth("read:hooks")).json
    assert [t["id"] for t in listed] == list(TRIGGERS)
    one = client.get("/api/v2/triggers/send-phone-message", headers=auth("read:hooks")).json
    assert one["entry_function"] == "send_phone_message"
    assert one["payload"]["recipient"].startswith("+")


def test_unknown_trigger_is_404(client, auth):
    response = client.get("/api/v2/triggers/nope", headers=auth("read:hooks"))
    assert response.status_code == 404
    assert "send-phone-message" in response.json["message"]


@pytest.mark.parametrize("trigger_id", list(TRIGGERS))
def test_every_sample_payload_passes_its_own_check(trigger_id):
    trigger = TRIGGERS[trigger_id]
    assert trigger.validate(trigger.sample_payload) is trigger.sample_payload


@pytest.mark.parametrize("trigger_id", list(TRIGGERS))
def test_execute_runs_the_enabled_hook_and_shapes_its_response(client, auth, make_hook,
                                                               trigger_id):
    make_hook(triggerId=trigger_id, script=script_of(trigger_id, SCRIPTS[trigger_id]))
    response = client.post(f"/api/v2/triggers/{trigger_id}/execute",
                           json=TRIGGERS[trigger_id].sample_payload,
                           headers=auth("execute:hooks"))
    assert response.status_code == 200, response.json
    body = response.json
    assert body["status"] == "success"
    assert body["data"] == EXPECTED[trigger_id]
    record = client.get(f"/api/v2/executions/{body['execution_id']}",
                        headers=auth("read:hooks")).json
    assert record["source"] == "trigger" and record["status"] == "success"


def test_execute_reports_a_hook_error_in_the_harness_shape(client, auth, make_hook):
    make_hook(triggerId="pre-user-registration", script=script_of(
        "pre-user-registration",
        "raise PreUserRegistrationError('blocked domain', 'Sign-ups from here are closed')"))
    body = client.post("/api/v2/triggers/pre-user-registration/execute",
                       json=TRIGGERS["pre-user-registration"].sample_payload,
                       headers=auth("execute:hooks")).json
    assert body["status"] == "error"
    assert body["data"] == {"name": "PreUserRegistrationError", "message": "blocked domain",
                            "user_message": "Sign-ups from here are closed"}


def test_execute_uses_only_the_enabled_hook(client, auth, make_hook):
    make_hook(name="first", script=script_of("send-phone-message", "return 'first'"))
    second = make_hook(name="second", script=script_of("send-phone-message", "return 'second'"))
    headers = auth("update:hooks", "execute:hooks")
    client.patch(f"/api/v2/hooks/{second['id']}", json={"enabled": True}, headers=headers)
    body = client.post("/api/v2/triggers/send-phone-message/execute",
                       json=TRIGGERS["send-phone-message"].sample_payload, headers=headers).json
    assert body["data"] == "second"


def test_execute_without_an_enabled_hook_is_404(client, auth, make_hook):
    hook = make_hook()
    client.patch(f"/api/v2/hooks/{hook['id']}", json={"enabled": False},
                 headers=auth("update:hooks"))
    response = client.post("/api/v2/triggers/send-phone-message/execute", json={},
                           headers=auth("execute:hooks"))
    assert response.status_code == 404
    assert response.json["errorCode"] == "no_enabled_hook"


def test_execute_refuses_a_bad_payload(client, auth, make_hook):
    make_hook()
    response = client.post("/api/v2/triggers/send-phone-message/execute",
                           json={"recipient": "+1"}, headers=auth("execute:hooks"))
    assert response.status_code == 400
    assert "payload.text must be a string" in response.json["message"]


def test_credentials_exchange_must_return_an_object(client, auth, make_hook):
    make_hook(triggerId="credentials-exchange",
              script=script_of("credentials-exchange", "return 'not claims'"))
    body = client.post("/api/v2/triggers/credentials-exchange/execute",
                       json=TRIGGERS["credentials-exchange"].sample_payload,
                       headers=auth("execute:hooks")).json
    assert body["status"] == "error"
    assert body["data"]["name"] == "InvalidResponseError"


def test_execute_also_takes_the_run_routes_payload_wrapper(client, auth, make_hook):
    make_hook(script=script_of("send-phone-message", SCRIPTS["send-phone-message"]))
    sample = TRIGGERS["send-phone-message"].sample_payload
    url = "/api/v2/triggers/send-phone-message/execute"
    bare = client.post(url, json=sample, headers=auth("execute:hooks")).json
    wrapped = client.post(url, json={"payload": sample}, headers=auth("execute:hooks")).json
    assert bare["data"] == wrapped["data"] == EXPECTED["send-phone-message"]
    record = client.get(f"/api/v2/executions/{wrapped['execution_id']}",
                        headers=auth("read:hooks")).json
    assert record["payload"] == sample


@pytest.mark.parametrize("body, got", [
    ([1], "got an array"), ("hi", "got a string"),
    ({"payload": {"recipient": "+1"}, "script": "x"}, "got unexpected 'payload', 'script'"),
    ({"recipient": "+1", "colour": "red"}, "got unexpected 'colour'"),
])
def test_execute_body_of_neither_shape_is_400_naming_both(client, auth, body, got):
    # No hook is enabled: the body is judged first.
    response = client.post("/api/v2/triggers/send-phone-message/execute", json=body,
                           headers=auth("execute:hooks"))
    assert response.status_code == 400
    message = response.json["message"]
    assert message.startswith("The body must be {recipient, text, context} (the parameters "
                              "of send_phone_message), or {\"payload\": {recipient, text, "
                              "context}}")
    assert message.endswith(f"; {got}.")


def test_run_with_a_bare_payload_is_400_naming_what_the_body_takes(client, auth, make_hook):
    hook = make_hook()
    response = client.post(f"/api/v2/hooks/{hook['id']}/run",
                           json=TRIGGERS["send-phone-message"].sample_payload,
                           headers=auth("execute:hooks"))
    assert response.status_code == 400
    assert ("('context', 'recipient', 'text' were unexpected); send the trigger's parameters "
            'inside payload: {"payload": {...}}') in response.json["message"]
