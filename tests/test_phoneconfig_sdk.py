"""Auth0's Python SDK (auth0-python 6.8.0) configures the phone factor on a live server, and
the configuration outlives a restart of a real `hookengine serve`."""

from __future__ import annotations

import pytest
from auth0.management.core.api_error import ApiError
from auth0.management.errors import BadRequestError

from serverprocess import ServerProcess
from test_auth0_sdk import base_url, sdk  # noqa: F401  (fixtures: waitress + Auth0 client)

HIDDEN = "_VALUE_NOT_SHOWN_"


def test_sdk_enables_the_phone_factor_and_sets_its_message_types(sdk):  # noqa: F811
    assert sdk.guardian.factors.set("sms", enabled=True).enabled is True
    factors = {f.name: (f.enabled, f.trial_expired) for f in sdk.guardian.factors.list()}
    assert factors["sms"] == (True, False) and factors["otp"] == (False, False)

    sdk.guardian.factors.phone.set_message_types(message_types=["sms", "voice"])
    assert sdk.guardian.factors.phone.get_message_types().message_types == ["sms", "voice"]
    with pytest.raises(BadRequestError) as raised:
        sdk.guardian.factors.phone.set_message_types(message_types=["sms", "sms"])
    assert "non-unique" in raised.value.body["message"]


def test_sdk_selects_the_provider_through_either_path(sdk):  # noqa: F811
    sdk.guardian.factors.phone.set_provider(provider="phone-message-hook")
    assert sdk.guardian.factors.sms.get_selected_provider().provider == "phone-message-hook"
    sdk.guardian.factors.sms.set_provider(provider="twilio")
    assert sdk.guardian.factors.phone.get_selected_provider().provider == "twilio"


def test_sdk_sets_twilio_without_ever_reading_the_token_back(sdk, engine):  # noqa: F811
    answer = sdk.guardian.factors.phone.set_twilio_provider(
        sid="AC123", auth_token="tok-secret", from_="+15550001111", messaging_service_sid=None)
    assert answer.auth_token == HIDDEN and answer.from_ == "+15550001111"
    read = sdk.guardian.factors.sms.get_twilio_provider()
    assert (read.sid, read.auth_token, read.from_, read.messaging_service_sid) == \
        ("AC123", HIDDEN, "+15550001111", None)
    assert engine.phoneconfig.twilio()["auth_token"] == "tok-secret"

    # The deprecated twin replaces the same record whole.
    sdk.guardian.factors.sms.set_twilio_provider(sid="AC9", messaging_service_sid="MG1")
    read = sdk.guardian.factors.phone.get_twilio_provider()
    assert (read.sid, read.auth_token, read.from_, read.messaging_service_sid) == \
        ("AC9", None, None, "MG1")


def test_sdk_sets_templates_and_gets_liquids_complaint(sdk):  # noqa: F811
    sdk.guardian.factors.phone.set_templates(enrollment_message="{{ code }} to enrol",
                                             verification_message="{{ code }} to log in")
    templates = sdk.guardian.factors.sms.get_templates()
    assert (templates.enrollment_message, templates.verification_message) == \
        ("{{ code }} to enrol", "{{ code }} to log in")
    with pytest.raises(BadRequestError) as raised:
        sdk.guardian.factors.sms.set_templates(enrollment_message="{% if x %}",
                                               verification_message="ok")
    assert "enrollment_message: expected tag endif" in raised.value.body["message"]


def test_sdk_manages_phone_settings_policies_and_tenant_settings(sdk):  # noqa: F811
    sdk.guardian.factors.phone.set(otp_length=8, otp_expiration_time=120)
    settings = sdk.guardian.factors.phone.get()
    assert (settings.otp_length, settings.otp_expiration_time) == (8, 120)

    sdk.guardian.policies.set(request=["all-applications"])
    assert sdk.guardian.policies.list() == ["all-applications"]

    sdk.tenants.settings.update(friendly_name="Acme", phone_consolidated_experience=False,
                                flags={"disable_management_api_sms_obfuscation": True})
    tenant = sdk.tenants.settings.get()
    assert (tenant.friendly_name, tenant.phone_consolidated_experience) == ("Acme", False)
    assert tenant.flags.disable_management_api_sms_obfuscation is True
    assert sdk.tenants.settings.get(fields="friendly_name", include_fields=True).flags is None


def test_sdk_sets_the_phone_provider_protection(sdk):  # noqa: F811
    assert sdk.attack_protection.phone_provider_protection.get().type == "default"
    sdk.attack_protection.phone_provider_protection.patch(type="exponential")
    assert sdk.attack_protection.phone_provider_protection.get().type == "exponential"
    # This call's generated client maps no 400 to BadRequestError: the base class carries it.
    with pytest.raises(ApiError) as raised:
        sdk.attack_protection.phone_provider_protection.patch(type="linear")
    assert raised.value.status_code == 400


def test_configuration_survives_a_server_restart(tmp_path):
    server = ServerProcess(tmp_path / "data").start()
    try:
        phone = "/guardian/factors/phone"
        for method, path, body in [
                ("PUT", "/guardian/factors/sms", {"enabled": True}),
                ("PUT", f"{phone}/message-types", {"message_types": ["voice"]}),
                ("PUT", f"{phone}/selected-provider", {"provider": "twilio"}),
                ("PUT", f"{phone}/providers/twilio", {"sid": "AC1", "auth_token": "t-1",
                                                       "from": "+15550001111"}),
                ("PUT", f"{phone}/templates", {"enrollment_message": "e {{ code }}",
                                               "verification_message": "v {{ code }}"}),
                ("PATCH", f"{phone}/delivery-settings", {"allowed_countries": ["FR"]}),
                ("PATCH", "/tenants/settings", {"friendly_name": "Acme"})]:
            response = server.call(method, path, json=body)
            assert response.status_code == 200, response.text
        server.terminate()
        server.start()
        assert server.call("GET", "/guardian/factors").json()[0]["enabled"] is True
        assert server.call("GET", f"{phone}/message-types").json() == {"message_types": ["voice"]}
        assert server.call("GET", f"{phone}/selected-provider").json() == {"provider": "twilio"}
        assert server.call("GET", f"{phone}/providers/twilio").json() == {
            "sid": "AC1", "auth_token": HIDDEN, "from": "+15550001111",
            "messaging_service_sid": None}
        assert server.call("GET", "/guardian/factors/sms/templates").json() == {
            "enrollment_message": "e {{ code }}", "verification_message": "v {{ code }}"}
        assert server.call("GET", f"{phone}/delivery-settings").json()["allowed_countries"] == \
            ["FR"]
        assert server.call("GET", "/tenants/settings").json()["friendly_name"] == "Acme"
    finally:
        server.terminate()
