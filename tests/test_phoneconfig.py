"""The phone factor's configuration over plain HTTP: shapes, shared /phone/ and /sms/ records,
every refusal, the Twilio token kept out of answers and stored encrypted."""

from __future__ import annotations

import pytest

from hookengine.phoneconfig import DEFAULT_TEMPLATES, FACTORS

# The store's own behaviour: the same on SQLite and on PostgreSQL.
pytestmark = pytest.mark.backends

API = "/api/v2"
PHONE = f"{API}/guardian/factors/phone"
SMS = f"{API}/guardian/factors/sms"
HIDDEN = "_VALUE_NOT_SHOWN_"


@pytest.fixture
def headers(auth):
    return auth("read:guardian_factors", "update:guardian_factors", "read:tenant_settings",
                "update:tenant_settings")


def call(client, headers, method, path, body=None):
    return client.open(path, method=method, json=body, headers=headers)


def problem(response, status=400):
    assert response.status_code == status, response.json
    body = response.json
    assert set(body) >= {"statusCode", "error", "message", "errorCode"}
    return body["message"]


def test_a_fresh_engine_has_auth0s_defaults(client, headers):
    factors = call(client, headers, "GET", f"{API}/guardian/factors").json
    assert [f["name"] for f in factors] == list(FACTORS)
    assert all(f == {"name": f["name"], "enabled": False, "trial_expired": False}
               for f in factors)
    assert call(client, headers, "GET", f"{PHONE}/message-types").json == {"message_types": []}
    assert call(client, headers, "GET", f"{PHONE}/selected-provider").json == \
        {"provider": "auth0"}
    assert call(client, headers, "GET", f"{PHONE}/providers/twilio").json == {
        "sid": None, "auth_token": None, "from": None, "messaging_service_sid": None}
    assert call(client, headers, "GET", f"{SMS}/templates").json == DEFAULT_TEMPLATES
    assert call(client, headers, "GET", f"{API}/guardian/policies").json == []
    assert call(client, headers, "GET", f"{PHONE}/delivery-settings").json == {
        "allowed_countries": [], "bucket_size": 10, "refill_seconds": 3600}
    tenant = call(client, headers, "GET", f"{API}/tenants/settings").json
    assert tenant["phone_consolidated_experience"] is False
    assert tenant["flags"] == {"disable_management_api_sms_obfuscation": False}


def test_factors_are_enabled_one_by_one(client, headers, engine):
    assert call(client, headers, "PUT", f"{API}/guardian/factors/sms",
                {"enabled": True}).json == {"enabled": True}
    factors = {f["name"]: f["enabled"] for f in
               call(client, headers, "GET", f"{API}/guardian/factors").json}
    assert factors == {name: name == "sms" for name in FACTORS}
    assert engine.phoneconfig.factor_enabled("sms")
    engine.phoneconfig.set_trial_expired(True)
    sms = call(client, headers, "GET", f"{API}/guardian/factors").json[0]
    assert sms == {"name": "sms", "enabled": True, "trial_expired": True}


@pytest.mark.parametrize("name, body, says", [
    ("phone", {"enabled": True}, "The phone factor is named sms"),
    ("nope", {"enabled": True}, "Unknown factor 'nope'"),
    ("sms", {}, "'enabled' is a required property"),
    ("sms", {"enabled": "yes"}, "'yes' is not of type 'boolean'"),
    ("sms", {"enabled": True, "extra": 1}, "the accepted properties are enabled"),
])
def test_bad_factor_updates_are_400(client, headers, engine, name, body, says):
    assert says in problem(call(client, headers, "PUT", f"{API}/guardian/factors/{name}", body))
    assert not engine.phoneconfig.factor_enabled("sms")


def test_message_types_accept_any_subset_while_sms_is_disabled(client, headers, engine):
    for types in (["voice"], ["sms", "voice"], []):
        assert call(client, headers, "PUT", f"{PHONE}/message-types",
                    {"message_types": types}).json == {"message_types": types}
        assert engine.phoneconfig.message_types() == types


@pytest.mark.parametrize("types, says", [
    (["sms", "sms"], "has non-unique elements"),
    (["email"], "'email' is not one of ['sms', 'voice']"),
    ("sms", "'sms' is not of type 'array'"),
    (None, "None is not of type 'array'"),
])
def test_bad_message_types_are_400(client, headers, types, says):
    message = problem(call(client, headers, "PUT", f"{PHONE}/message-types",
                           {"message_types": types}))
    assert says in message and "voice" in message


def test_phone_and_sms_routes_share_one_record(client, headers, engine):
    call(client, headers, "PUT", f"{SMS}/selected-provider", {"provider": "twilio"})
    assert call(client, headers, "GET", f"{PHONE}/selected-provider").json == \
        {"provider": "twilio"}
    call(client, headers, "PUT", f"{PHONE}/selected-provider", {"provider": "phone-message-hook"})
    assert call(client, headers, "GET", f"{SMS}/selected-provider").json == \
        {"provider": "phone-message-hook"}
    assert engine.phoneconfig.selected_provider() == "phone-message-hook"

    templates = {"enrollment_message": "{{ code }} enrol", "verification_message": "{{ code }}"}
    assert call(client, headers, "PUT", f"{PHONE}/templates", templates).json == templates
    assert call(client, headers, "GET", f"{SMS}/templates").json == templates
    assert engine.phoneconfig.templates() == templates


@pytest.mark.parametrize("provider", ["Twilio", "sns", "", None])
def test_unknown_providers_are_400(client, headers, provider):
    message = problem(call(client, headers, "PUT", f"{PHONE}/selected-provider",
                           {"provider": provider}))
    assert "auth0" in message and "phone-message-hook" in message


def test_twilio_put_replaces_the_record_and_never_returns_the_token(client, headers, engine):
    sent = {"sid": "AC123", "auth_token": "tok-secret", "from": "+15550001111",
            "messaging_service_sid": "MG1"}
    echoed = call(client, headers, "PUT", f"{SMS}/providers/twilio", sent).json
    assert echoed == {**sent, "auth_token": HIDDEN}
    assert call(client, headers, "GET", f"{PHONE}/providers/twilio").json == \
        {**sent, "auth_token": HIDDEN}
    assert engine.phoneconfig.twilio() == sent

    # Auth0's PUT is a full replace: an omitted field becomes null; the echo has only the
    # keys sent.
    echoed = call(client, headers, "PUT", f"{PHONE}/providers/twilio",
                  {"sid": "AC9", "auth_token": "tok-2"}).json
    assert echoed == {"sid": "AC9", "auth_token": HIDDEN}
    assert engine.phoneconfig.twilio() == {"sid": "AC9", "auth_token": "tok-2", "from": None,
                                           "messaging_service_sid": None}


def test_sending_back_the_masked_token_keeps_the_stored_one(client, headers, engine):
    call(client, headers, "PUT", f"{PHONE}/providers/twilio", {"sid": "AC1", "auth_token": "t1"})
    record = call(client, headers, "GET", f"{PHONE}/providers/twilio").json
    call(client, headers, "PUT", f"{PHONE}/providers/twilio", {**record, "from": "+1555"})
    assert engine.phoneconfig.twilio()["auth_token"] == "t1"
    call(client, headers, "PUT", f"{PHONE}/providers/twilio", {**record, "auth_token": None})
    assert engine.phoneconfig.twilio()["auth_token"] is None
    assert call(client, headers, "GET", f"{PHONE}/providers/twilio").json["auth_token"] is None


def test_the_token_is_stored_encrypted(client, headers, engine):
    call(client, headers, "PUT", f"{PHONE}/providers/twilio",
         {"sid": "AC1", "auth_token": "plain-token-value"})
    stored = " ".join(row[0] for row in engine.store.query("SELECT value FROM phone_config"))
    assert "AC1" in stored and "plain-token-value" not in stored


@pytest.mark.parametrize("body, says", [
    ({"from": "x" * 65}, "is too long"),
    ({"sid": ""}, "should be non-empty"),
    ({"auth_token": 5}, "5 is not of type 'string', 'null'"),
    ({"sid": "AC1", "account": "x"}, "the accepted properties are from"),
])
def test_bad_twilio_settings_are_400(client, headers, engine, body, says):
    assert says in problem(call(client, headers, "PUT", f"{PHONE}/providers/twilio", body))
    assert engine.phoneconfig.twilio()["sid"] is None


@pytest.mark.parametrize("enrollment, verification, says", [
    ("{{ code", "{{ code }}", "enrollment_message: expected '}}', found end of file (line 1"),
    ("ok", "line one\n{% if x %}yes", "verification_message: expected tag endif"),
    ("ok", "{% frobnicate %}", "unexpected tag 'frobnicate' (line 1, column 4)"),
])
def test_templates_that_are_not_liquid_are_400(client, headers, engine, enrollment,
                                                verification, says):
    message = problem(call(client, headers, "PUT", f"{PHONE}/templates",
                           {"enrollment_message": enrollment,
                            "verification_message": verification}))
    assert says in message
    assert engine.phoneconfig.templates() == DEFAULT_TEMPLATES


def test_templates_need_both_messages(client, headers):
    message = problem(call(client, headers, "PUT", f"{SMS}/templates",
                           {"enrollment_message": "{{ code }}"}))
    assert "'verification_message' is a required property" in message


def test_a_documented_liquid_template_is_accepted(client, headers):
    template = ('{% if message_type == "voice" %}{% if locale contains "fr" %}Votre code est '
                '{{pause}} {{code}}.{% else %}Your code is {{pause}}{{code}}.{% endif %}'
                '{% else %}{{code}} is your code for {{tenant.friendly_name}}.{% endif %}')
    body = {"enrollment_message": template, "verification_message": template}
    assert call(client, headers, "PUT", f"{PHONE}/templates", body).status_code == 200


def test_phone_settings_and_policies_are_stored(client, headers):
    assert call(client, headers, "GET", f"{PHONE}/settings").json == \
        {"otp_length": 6, "otp_expiration_time": 300}
    assert call(client, headers, "PUT", f"{PHONE}/settings",
                {"otp_length": 8, "otp_expiration_time": 600}).status_code == 200
    assert call(client, headers, "GET", f"{PHONE}/settings").json == \
        {"otp_length": 8, "otp_expiration_time": 600}
    assert "otp_expiration_time" in problem(call(client, headers, "PUT", f"{PHONE}/settings",
                                                 {"otp_length": 6}))
    assert call(client, headers, "PUT", f"{API}/guardian/policies",
                ["all-applications"]).json == ["all-applications"]
    assert call(client, headers, "GET", f"{API}/guardian/policies").json == ["all-applications"]
    assert "is not one of" in problem(call(client, headers, "PUT", f"{API}/guardian/policies",
                                           ["sometimes"]))
    assert "send []" in problem(call(client, headers, "PUT", f"{API}/guardian/policies",
                                     ["all-applications", "confidence-score"]))


def test_delivery_settings_are_patched_and_countries_checked(client, headers, engine):
    changed = call(client, headers, "PATCH", f"{PHONE}/delivery-settings",
                   {"allowed_countries": ["us", "FR"], "bucket_size": 3}).json
    assert changed == {"allowed_countries": ["US", "FR"], "bucket_size": 3,
                       "refill_seconds": 3600}
    assert engine.phoneconfig.delivery_settings() == changed
    message = problem(call(client, headers, "PATCH", f"{PHONE}/delivery-settings",
                           {"allowed_countries": ["XX", "gb", "GB"]}))
    assert "'XX' is not an ISO 3166-1 alpha-2 country code" in message
    assert "GB is listed more than once" in message
    assert "two-letter" in problem(call(client, headers, "PATCH", f"{PHONE}/delivery-settings",
                                        {"allowed_countries": ["USA"]}))
    for body in ({"bucket_size": 0}, {"refill_seconds": -1}, {"bucket_size": 1.5}, {}):
        problem(call(client, headers, "PATCH", f"{PHONE}/delivery-settings", body))
    assert engine.phoneconfig.delivery_settings() == changed


def test_tenant_settings_patch_replaces_fields_and_merges_flags(client, headers, engine):
    changed = call(client, headers, "PATCH", f"{API}/tenants/settings",
                   {"friendly_name": "Acme", "enabled_locales": ["en", "fr-CA"],
                    "flags": {"disable_management_api_sms_obfuscation": True}}).json
    assert changed["friendly_name"] == "Acme"
    call(client, headers, "PATCH", f"{API}/tenants/settings",
         {"phone_consolidated_experience": True, "flags": {"enable_custom_domain": True}})
    tenant = engine.phoneconfig.tenant()
    assert tenant["phone_consolidated_experience"] is True
    assert tenant["enabled_locales"] == ["en", "fr-CA"]
    assert tenant["flags"] == {"disable_management_api_sms_obfuscation": True,
                               "enable_custom_domain": True}
    assert call(client, headers, "GET", f"{API}/tenants/settings?fields=friendly_name").json == \
        {"friendly_name": "Acme"}
    assert "friendly_name" not in call(
        client, headers, "GET",
        f"{API}/tenants/settings?fields=friendly_name&include_fields=false").json


@pytest.mark.parametrize("body, says", [
    ({"enabled_locales": ["English"]}, "language tags"),
    ({"enabled_locales": []}, "should be non-empty"),
    ({"phone_consolidated_experience": "true"}, "is not of type 'boolean'"),
    ({"flags": {"disable_management_api_sms_obfuscation": 1}}, "is not of type 'boolean'"),
    ({"sandbox_version": "18"}, "the accepted properties are friendly_name"),
    ({}, "should be non-empty"),
])
def test_bad_tenant_settings_are_400(client, headers, body, says):
    assert says in problem(call(client, headers, "PATCH", f"{API}/tenants/settings", body))


def test_unknown_tenant_fields_in_the_query_are_400(client, headers):
    assert "unknown field(s) nope" in problem(call(client, headers, "GET",
                                                    f"{API}/tenants/settings?fields=nope"))


@pytest.mark.parametrize("method, path, scope", [
    ("GET", f"{API}/guardian/factors", "read:guardian_factors"),
    ("PUT", f"{PHONE}/providers/twilio", "update:guardian_factors"),
    ("PATCH", f"{PHONE}/delivery-settings", "update:guardian_factors"),
    ("GET", f"{API}/tenants/settings", "read:tenant_settings"),
    ("PATCH", f"{API}/tenants/settings", "update:tenant_settings"),
])
def test_routes_need_their_scope(client, auth, method, path, scope):
    response = call(client, auth("read:hooks"), method, path, {"sid": "AC1"})
    assert scope in problem(response, 403)
