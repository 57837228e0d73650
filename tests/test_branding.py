"""The Unified Phone Experience over HTTP: the phone provider and the phone templates."""

from __future__ import annotations

import pytest

from hookengine import branding
from hookengine.api import branding as branding_api
from hookengine.phone import templates

# The store's own behaviour: the same on SQLite and on PostgreSQL.
pytestmark = pytest.mark.backends

PROVIDERS = "/api/v2/branding/phone/providers"
TEMPLATES = "/api/v2/branding/phone/templates"
TOKEN = "tw-auth-token-1234567890"
TWILIO = {"name": "twilio", "disabled": False,
          "configuration": {"sid": "AC0001", "default_from": "+15550001111",
                            "delivery_methods": ["text", "voice"]},
          "credentials": {"auth_token": TOKEN}}
CUSTOM = {"name": "custom", "configuration": {"delivery_methods": ["text"]}, "credentials": {}}


@pytest.fixture
def headers(auth):
    return auth()  # every scope


@pytest.fixture
def provider(client, headers):
    response = client.post(PROVIDERS, json=TWILIO, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


@pytest.fixture
def template(client, headers):
    response = client.post(TEMPLATES, headers=headers, json={
        "type": "otp_verify", "content": {"from": "+15550002222",
                                          "body": {"text": "{{ code }} is your code"}}})
    assert response.status_code == 201, response.json
    return response.json


@pytest.fixture
def sent(monkeypatch):
    """Test sends reach deliver_test, the delivery pipeline's edge: record them there."""
    calls = []
    monkeypatch.setattr(branding_api, "deliver_test",
                        lambda engine, *args: calls.append(args))
    return calls


# --- providers ------------------------------------------------------------------------------

def test_provider_is_created_read_and_listed_without_credentials(client, headers, provider):
    assert provider["id"].startswith("pro_") and len(provider["id"]) == 26
    assert {k: provider[k] for k in ("name", "channel", "disabled", "configuration")} == {
        "name": "twilio", "channel": "phone", "disabled": False,
        "configuration": TWILIO["configuration"]}
    assert "credentials" not in provider
    got = client.get(f"{PROVIDERS}/{provider['id']}", headers=headers)
    assert got.status_code == 200 and got.json == provider
    listed = client.get(PROVIDERS, headers=headers)
    assert listed.json == {"providers": [provider]}
    for response in (got, listed):
        assert TOKEN not in response.get_data(as_text=True)


def test_credentials_are_encrypted_at_rest_and_given_only_to_delivery(engine, provider):
    (stored,) = engine.store.query("SELECT credentials FROM phone_providers")
    assert TOKEN.encode() not in bytes(stored["credentials"])
    assert engine.branding.provider() == {
        **provider, "credentials": {"auth_token": TOKEN}, "delivery_methods": ["text", "voice"]}


def test_a_tenant_has_at_most_one_provider(client, headers, provider):
    response = client.post(PROVIDERS, json=CUSTOM, headers=headers)
    assert response.status_code == 409
    assert response.json["message"].startswith("Custom phone provider conflict")
    assert len(client.get(PROVIDERS, headers=headers).json["providers"]) == 1


def test_twilio_voice_needs_a_sender(client, headers):
    configuration = {"sid": "AC1", "mssid": "MG1", "delivery_methods": ["text", "voice"]}
    response = client.post(PROVIDERS, headers=headers, json={**TWILIO,
                                                              "configuration": configuration})
    assert response.status_code == 400
    assert response.json["message"].startswith("Bad Operation on Notification Resource")
    assert "default_from" in response.json["message"]
    text_only = {**configuration, "delivery_methods": ["text"]}
    assert client.post(PROVIDERS, headers=headers, json={
        **TWILIO, "configuration": text_only}).status_code == 201


@pytest.mark.parametrize("change, problem", [
    ({"name": None}, "None is not of type 'string'"),
    ({"name": "vonage"}, "'vonage' is not one of"),
    ({"credentials": None}, "credentials: None is not of type 'object'"),
    ({"configuration": {"sid": "AC1"}}, "'delivery_methods' is a required property"),
    ({"configuration": {"sid": "AC1", "delivery_methods": []}}, "should be non-empty"),
    ({"configuration": {"sid": "AC1", "delivery_methods": ["sms"]}}, "'sms' is not one of"),
    ({"configuration": {"sid": "AC1", "delivery_methods": ["text", "text"]}},
     "has non-unique elements"),
    ({"configuration": {"delivery_methods": ["text"], "region": "eu"}}, "'region' was unexpected"),
    ({"configuration": {"default_from": "+1555", "delivery_methods": ["text"]}},
     "a twilio provider needs sid"),
    ({"credentials": {}}, "a twilio provider needs auth_token"),
    ({"credentials": {"auth_token": ""}}, "should be non-empty"),
    ({"credentials": {"auth_token": "t", "api_key": "k"}}, "'api_key' was unexpected"),
    ({"tenant": "mine"}, "'tenant' was unexpected"),
    ({"name": "custom"}, "a custom provider takes none"),
])
def test_bad_providers_are_refused_naming_the_problem(client, headers, change, problem):
    response = client.post(PROVIDERS, json={**TWILIO, **change}, headers=headers)
    assert response.status_code == 400, response.json
    assert problem in response.json["message"], response.json
    assert client.get(PROVIDERS, headers=headers).json == {"providers": []}


@pytest.mark.parametrize("missing", ["name", "credentials", "configuration"])
def test_a_provider_needs_name_credentials_and_configuration(client, headers, missing):
    body = {key: value for key, value in TWILIO.items() if key != missing}
    response = client.post(PROVIDERS, json=body, headers=headers)
    assert response.status_code == 400
    assert f"'{missing}' is a required property" in response.json["message"]


def test_provider_update_changes_what_is_sent_and_keeps_the_token(client, engine, headers,
                                                                  provider):
    url = f"{PROVIDERS}/{provider['id']}"
    response = client.patch(url, json={"disabled": True}, headers=headers)
    assert response.status_code == 200 and response.json["disabled"] is True
    assert response.json["configuration"] == provider["configuration"]
    assert engine.branding.provider()["credentials"] == {"auth_token": TOKEN}

    configuration = {"sid": "AC2", "mssid": "MG2", "delivery_methods": ["text"]}
    response = client.patch(url, json={"configuration": configuration,
                                       "credentials": {"auth_token": "new"}}, headers=headers)
    assert response.json["configuration"] == configuration
    assert engine.branding.provider()["credentials"] == {"auth_token": "new"}
    assert response.json["updated_at"] >= provider["updated_at"]


def test_provider_update_is_checked_as_a_whole(client, engine, headers, provider):
    url = f"{PROVIDERS}/{provider['id']}"
    cases = [({}, "should be non-empty"),
             ({"configuration": {"sid": "AC1", "delivery_methods": ["voice"]}},
              "Bad Operation on Notification Resource"),
             ({"name": "twilio", "credentials": {}}, "a twilio provider needs auth_token")]
    for body, problem in cases:
        response = client.patch(url, json=body, headers=headers)
        assert response.status_code == 400 and problem in response.json["message"], body
    # Another kind of provider does not inherit the Twilio token.
    custom = client.patch(url, json={"name": "custom"}, headers=headers)
    assert custom.status_code == 200 and custom.json["name"] == "custom"
    assert engine.branding.provider()["credentials"] == {}
    back = client.patch(url, json={"name": "twilio"}, headers=headers)
    assert back.status_code == 400 and "needs auth_token" in back.json["message"]


def test_provider_delete(client, headers, provider):
    url = f"{PROVIDERS}/{provider['id']}"
    assert client.delete(url, headers=headers).status_code == 204
    assert client.get(PROVIDERS, headers=headers).json == {"providers": []}
    for method in ("GET", "PATCH", "DELETE"):
        response = client.open(url, method=method, json={"disabled": True}, headers=headers)
        assert response.status_code == 404
        assert response.json["message"] == "Notification Resource not found"
    # The tenant may configure a provider again.
    assert client.post(PROVIDERS, json=CUSTOM, headers=headers).status_code == 201


def test_providers_list_filters_on_disabled(client, headers, provider):
    assert client.get(f"{PROVIDERS}?disabled=false", headers=headers).json["providers"]
    assert client.get(f"{PROVIDERS}?disabled=true", headers=headers).json == {"providers": []}
    assert client.get(f"{PROVIDERS}?disabled=maybe", headers=headers).status_code == 400


# --- templates ------------------------------------------------------------------------------

def test_templates_list_the_defaults_of_every_type(client, headers):
    templates = client.get(TEMPLATES, headers=headers).json["templates"]
    assert [t["type"] for t in templates] == list(branding.TEMPLATE_TYPES)
    for listed in templates:
        assert "id" not in listed and listed["disabled"] is False
        assert listed["content"] == {"syntax": "liquid", "from": "",
                                     "body": branding.DEFAULT_BODIES[listed["type"]]}
    assert templates[0]["content"]["body"]["text"] == (
        "{{ code | escape }} is your verification code for {{ friendly_name | escape }}")


def test_default_bodies_are_valid_liquid():
    for bodies in branding.DEFAULT_BODIES.values():
        for key, text in bodies.items():
            assert branding.liquid_problems(key, text) == []


def test_template_create_fills_the_body_from_the_default(client, headers, template):
    assert template["id"].startswith("tem_") and template["type"] == "otp_verify"
    assert template["content"] == {
        "syntax": "liquid", "from": "+15550002222",
        "body": {"text": "{{ code }} is your code",
                 "voice": branding.DEFAULT_BODIES["otp_verify"]["voice"]}}
    got = client.get(f"{TEMPLATES}/{template['id']}", headers=headers)
    assert got.status_code == 200 and got.json == template
    templates = client.get(TEMPLATES, headers=headers).json["templates"]
    assert templates[0] == template
    assert [t["type"] for t in templates[1:]] == list(branding.TEMPLATE_TYPES[1:])


def test_template_without_sender_has_no_from(client, headers, engine):
    response = client.post(TEMPLATES, json={"type": "blocked_account"}, headers=headers)
    assert response.status_code == 201
    assert response.json["content"] == {"syntax": "liquid",
                                        "body": branding.DEFAULT_BODIES["blocked_account"]}
    # The pipeline's view always carries `from`.
    assert engine.branding.template("blocked_account")["content"]["from"] == ""
    assert engine.branding.template("otp_enroll") == branding.default_template("otp_enroll")


def test_one_template_per_type(client, headers, template):
    response = client.post(TEMPLATES, json={"type": "otp_verify"}, headers=headers)
    assert response.status_code == 409
    assert response.json["message"].startswith("Phone template already configured for tenant")


@pytest.mark.parametrize("body, problem", [
    ({}, "'type' is a required property"),
    ({"type": "welcome"}, "'welcome' is not one of"),
    ({"type": "otp_verify", "content": {}}, "should be non-empty"),
    ({"type": "otp_verify", "content": {"body": {}}}, "should be non-empty"),
    ({"type": "otp_verify", "content": {"syntax": "handlebars"}}, "'liquid' was expected"),
    ({"type": "otp_verify", "content": {"from": "+1555000111122223"}}, "is too long"),
    ({"type": "otp_verify", "content": {"body": {"text": ""}}}, "should be non-empty"),
    ({"type": "otp_verify", "content": {"body": {"sms": "x"}}}, "'sms' was unexpected"),
    ({"type": "otp_verify", "content": {"body": {"text": "x" * 20001}}}, "is too long"),
    ({"type": "otp_verify", "id": "tem_1"}, "'id' was unexpected"),
    ({"type": "otp_verify", "disabled": "no"}, "'no' is not of type 'boolean'"),
])
def test_bad_templates_are_refused_naming_the_problem(client, headers, body, problem):
    response = client.post(TEMPLATES, json=body, headers=headers)
    assert response.status_code == 400, response.json
    assert problem in response.json["message"]


LIQUID_MISTAKES = [
    ("{% if code %}{{ code }}", "content/body/text: expected tag endif, found end of "
                                "expression (line 1, column 24)"),
    ("Your code\nis {{ code | shout }}", "content/body/text: unknown filter 'shout' "
                                         "(line 2, column 14)"),
    ("{{ code", "content/body/text: expected '}}', found end of file (line 1, column 1)"),
    ("{% frobnicate %}", "content/body/text: unexpected tag 'frobnicate' (line 1, column 4)"),
]


@pytest.mark.parametrize("body, problem", LIQUID_MISTAKES)
def test_liquid_errors_are_refused_with_their_position(client, headers, template, body,
                                                       problem):
    for method, url, sent in (
            ("POST", TEMPLATES, {"type": "otp_enroll", "content": {"body": {"text": body}}}),
            ("PATCH", f"{TEMPLATES}/{template['id']}", {"content": {"body": {"text": body}}})):
        response = client.open(url, method=method, json=sent, headers=headers)
        assert response.status_code == 400, response.json
        assert response.json["errorCode"] == "invalid_template"
        assert response.json["errors"] == [problem]
    assert client.get(f"{TEMPLATES}/{template['id']}", headers=headers).json == template


def test_template_update_merges_the_body_and_never_changes_the_type(client, headers, template):
    url = f"{TEMPLATES}/{template['id']}"
    response = client.patch(url, headers=headers, json={
        "disabled": True, "content": {"body": {"voice": "Code {{ pause }} {{ code }}"}}})
    assert response.status_code == 200
    assert response.json["disabled"] is True
    assert response.json["content"] == {"syntax": "liquid", "from": "+15550002222", "body": {
        "text": "{{ code }} is your code", "voice": "Code {{ pause }} {{ code }}"}}
    assert client.patch(url, json={"type": "otp_enroll"}, headers=headers).status_code == 400
    assert client.patch(url, json={}, headers=headers).status_code == 400
    cleared = client.patch(url, json={"content": {"from": ""}}, headers=headers)
    assert "from" not in cleared.json["content"]
    assert client.get(f"{TEMPLATES}?disabled=true", headers=headers).json["templates"] == [
        cleared.json]


def test_template_reset_restores_the_default_body_and_keeps_from(client, headers, template):
    url = f"{TEMPLATES}/{template['id']}"
    client.patch(url, json={"disabled": True}, headers=headers)
    response = client.patch(f"{url}/reset", json={}, headers=headers)
    assert response.status_code == 200
    assert response.json["content"] == {"syntax": "liquid", "from": "+15550002222",
                                        "body": branding.DEFAULT_BODIES["otp_verify"]}
    assert response.json["disabled"] is True and response.json["id"] == template["id"]
    # Auth0's SDK sends {}; a bare PATCH is the same.
    assert client.patch(f"{url}/reset", headers=headers).status_code == 200


def test_template_delete_returns_the_type_to_its_default(client, headers, template):
    url = f"{TEMPLATES}/{template['id']}"
    assert client.delete(url, headers=headers).status_code == 204
    second = client.delete(url, headers=headers)
    assert second.status_code == 404
    assert second.json["message"] == "Notification Resource not found"
    for method in ("GET", "PATCH"):
        assert client.open(url, method=method, json={"disabled": True},
                           headers=headers).status_code == 404
    assert client.patch(f"{url}/reset", headers=headers).status_code == 404
    assert client.get(TEMPLATES, headers=headers).json["templates"][0] == \
        branding.default_template("otp_verify")


# --- preview -------------------------------------------------------------------------------

PREVIEW = "/api/v2/branding/phone/template-preview"


def test_preview_renders_each_part_as_it_would_be_sent_and_sends_nothing(client, engine,
                                                                          headers, sent):
    client.patch("/api/v2/tenants/settings", json={"friendly_name": "Acme"}, headers=headers)
    response = client.post(PREVIEW, headers=headers, json={
        "content": {"from": "", "body": branding.DEFAULT_BODIES["otp_verify"]}})
    assert response.status_code == 200, response.json
    assert response.json == {
        "body": {"text": "123456 is your verification code for Acme",
                 "voice": "Hello. Your verification code for Acme is [pause] 1.2.3.4.5.6. "
                          "I repeat, your verification code is [pause] 1.2.3.4.5.6"},
        "problems": [], "sample": {**templates.SAMPLE, "friendly_name": "Acme"}}
    assert [t for t in client.get(TEMPLATES, headers=headers).json["templates"]
            if "id" in t] == []
    assert sent == [] and engine.logs.search("")[0] == 0
    assert client.get("/api/v2/guardian/factors/phone/dev-outbox", headers=headers).json == []


def test_preview_renders_the_sample_user(client, headers):
    response = client.post(PREVIEW, headers=headers, json={
        "content": {"body": {"text": branding.DEFAULT_BODIES["blocked_account"]["text"]}}})
    assert response.json["body"]["text"].startswith(
        "We detected suspicious activity on your account from the ip 203.0.113.7 from Paris, "
        "France.")


@pytest.mark.parametrize("body, problem", LIQUID_MISTAKES)
def test_preview_finds_what_a_save_refuses_and_renders_the_other_part(client, headers, body,
                                                                      problem):
    content = {"body": {"text": body, "voice": "Your code is {{ pause }} {{ code }}"}}
    refused = client.post(TEMPLATES, json={"type": "otp_verify", "content": content},
                          headers=headers)
    response = client.post(PREVIEW, json={"content": content}, headers=headers)
    assert response.status_code == 200
    assert response.json["problems"] == refused.json["errors"] == [problem]
    assert response.json["body"] == {"text": None,
                                     "voice": "Your code is [pause] 1.2.3.4.5.6"}


def test_preview_reports_what_only_rendering_finds(client, headers):
    content = {"body": {"text": "{{ code }}\n{% for i in (1..99999999) %}.{% endfor %}"}}
    response = client.post(PREVIEW, json={"content": content}, headers=headers)
    assert response.json["problems"] == [
        "content/body/text: loop iteration limit reached (line 2, column 4)"]
    assert response.json["body"] == {"text": None}


@pytest.mark.parametrize("body, problem", [
    ({}, "'content' is a required property"),
    ({"content": {"body": {"sms": "x"}}}, "'sms' was unexpected"),
    ({"content": {"body": {"text": ""}}}, "should be non-empty"),
    ({"content": {"body": {"text": "x"}}, "type": "otp_verify"}, "'type' was unexpected"),
])
def test_preview_takes_a_template_content(client, headers, body, problem):
    response = client.post(PREVIEW, json=body, headers=headers)
    assert response.status_code == 400
    assert problem in " ".join(response.json["errors"])


def test_preview_needs_either_templates_reading_scope(client, auth):
    body = {"content": {"body": {"text": "{{ code }}"}}}
    for scope in ("read:phone_templates", "read:guardian_factors"):
        assert client.post(PREVIEW, json=body, headers=auth(scope)).status_code == 200
    refused = client.post(PREVIEW, json=body, headers=auth("read:hooks"))
    assert refused.status_code == 403
    assert refused.json["message"] == ("Insufficient scope; expected any of: "
                                       "read:phone_templates, read:guardian_factors.")


# --- test sends -----------------------------------------------------------------------------

def test_a_test_send_goes_through_the_provider_for_real(client, headers, engine, make_hook):
    """No stand-in for the pipeline: a custom provider's test send runs the enabled hook."""
    make_hook(script="def send_phone_message(recipient, text, context):\n"
                     "    print('to', recipient, 'text', text)\n"
                     "    return {'MessageID': 'm-1'}\n")
    created = client.post(PROVIDERS, headers=headers, json={
        "name": "custom", "configuration": {"delivery_methods": ["text"]},
        "credentials": {}}).json
    response = client.post(f"{PROVIDERS}/{created['id']}/try", json={"to": "+14155550123"},
                           headers=headers)
    assert response.status_code == 202, response.json
    [execution] = engine.executions.list({}, 0, 10)[1]
    [line] = [line["message"] for line in execution["logs"] if line["stream"] == "stdout"]
    assert line.startswith("to +14155550123 text ") and "verification code" in line


def test_provider_try_sends_the_verify_template_through_the_pipeline(client, engine, headers,
                                                                     provider, template, sent):
    url = f"{PROVIDERS}/{provider['id']}/try"
    response = client.post(url, json={"to": "911234567890", "delivery_method": "voice"},
                           headers=headers)
    assert response.status_code == 202
    assert response.json == {"code": 202,
                             "message": "Test notification successfully sent for processing"}
    assert sent == [("911234567890", "voice", engine.branding.provider(),
                     engine.branding.template("otp_verify"))]


def test_template_try_sends_that_template(client, engine, headers, provider, sent):
    created = client.post(TEMPLATES, json={"type": "change_password"}, headers=headers).json
    response = client.post(f"{TEMPLATES}/{created['id']}/try", headers=headers,
                           json={"to": "+14155550123", "note": "Auth0 allows more keys"})
    assert response.status_code == 202 and response.json["code"] == 202
    assert sent == [("+14155550123", "sms", engine.branding.provider(), created)]


@pytest.mark.parametrize("body, problem", [
    ({}, "'to' is a required property"),
    ({"to": ""}, "should be non-empty"),
    ({"to": "+1415555012345678"}, "is too long"),
    ({"to": "call me"}, "send a phone number with its country code"),
    ({"to": "+14155550123", "delivery_method": "sms"}, "'sms' is not one of"),
])
def test_bad_test_sends_are_refused(client, headers, provider, template, sent, body, problem):
    for url in (f"{PROVIDERS}/{provider['id']}/try", f"{TEMPLATES}/{template['id']}/try"):
        response = client.post(url, json=body, headers=headers)
        assert response.status_code == 400, response.json
        assert problem in response.json["message"]
    response = client.post(f"{PROVIDERS}/{provider['id']}/try", headers=headers,
                           json={"to": "+14155550123", "extra": 1})
    assert response.status_code == 400 and "'extra' was unexpected" in response.json["message"]
    assert sent == []


def test_test_sends_need_a_provider_that_can_send(client, headers, template, sent):
    url = f"{TEMPLATES}/{template['id']}/try"
    none = client.post(url, json={"to": "+14155550123"}, headers=headers)
    assert none.status_code == 409
    assert none.json["message"].startswith("Phone provider has not been configured")
    provider = client.post(PROVIDERS, json=CUSTOM, headers=headers).json
    voice = client.post(url, json={"to": "+14155550123", "delivery_method": "voice"},
                        headers=headers)
    assert voice.status_code == 400 and "does not deliver voice" in voice.json["message"]
    client.patch(f"{PROVIDERS}/{provider['id']}", json={"disabled": True}, headers=headers)
    for target in (url, f"{PROVIDERS}/{provider['id']}/try"):
        response = client.post(target, json={"to": "+14155550123"}, headers=headers)
        assert response.status_code == 409 and "disabled" in response.json["message"]
    assert client.post(f"{TEMPLATES}/tem_unknown/try", json={"to": "+14155550123"},
                       headers=headers).status_code == 404
    assert sent == []


# --- scopes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("method, path, scope", [
    ("GET", PROVIDERS, "read:phone_providers"),
    ("POST", PROVIDERS, "create:phone_providers"),
    ("GET", PROVIDERS + "/pro_x", "read:phone_providers"),
    ("PATCH", PROVIDERS + "/pro_x", "update:phone_providers"),
    ("DELETE", PROVIDERS + "/pro_x", "delete:phone_providers"),
    ("POST", PROVIDERS + "/pro_x/try", "create:phone_providers"),
    ("GET", TEMPLATES, "read:phone_templates"),
    ("POST", TEMPLATES, "create:phone_templates"),
    ("GET", TEMPLATES + "/tem_x", "read:phone_templates"),
    ("PATCH", TEMPLATES + "/tem_x", "update:phone_templates"),
    ("DELETE", TEMPLATES + "/tem_x", "delete:phone_templates"),
    ("PATCH", TEMPLATES + "/tem_x/reset", "update:phone_templates"),
    ("POST", TEMPLATES + "/tem_x/try", "create:phone_templates"),
])
def test_each_route_needs_its_scope(client, auth, method, path, scope):
    others = [s for s in ("read:hooks", "update:phone_providers", "read:phone_templates",
                          "create:phone_providers") if s != scope]
    refused = client.open(path, method=method, json={}, headers=auth(*others))
    assert refused.status_code == 403
    assert refused.json["message"] == f"Insufficient scope; expected any of: {scope}."
    assert client.open(path, method=method, json={}).status_code == 401
    allowed = client.open(path, method=method, json={}, headers=auth(scope))
    assert allowed.status_code in (200, 400, 404)
