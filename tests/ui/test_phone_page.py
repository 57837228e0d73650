"""The Phone MFA page in Chromium: the factor, the provider, templates with a live preview,
a test send into the development outbox and the log, write-only credentials, the API's
errors, and what a token's scopes leave usable."""

from __future__ import annotations

import re

import pytest
from selenium.webdriver.support.ui import Select
from serverprocess import hookengine

from hookengine.phone.templates import DEFAULT_BODIES
from hookengine.phoneconfig import DEFAULT_TEMPLATES

RECIPIENT = "+14155550123"
AUTH_TOKEN = "tw-auth-token-never-shown-4c1f"
MESSAGE = "{{ code }} is your code for {{ tenant.friendly_name }}"
READ_ONLY = ("read:guardian_factors", "read:tenant_settings", "read:phone_providers",
             "read:phone_templates", "read:logs")


def api(page, method: str, path: str, **kwargs):
    response = page.server.call(method, path, **kwargs)
    assert response.ok, response.text
    return response.json() if response.content else None


def reset_phone_settings(page) -> None:
    """What a fresh data directory has (the tests share one engine): the factor off, the
    Guardian development provider, no tenant-level provider, the default templates."""
    api(page, "PATCH", "/tenants/settings",
        json={"phone_consolidated_experience": False, "friendly_name": "Acme"})
    api(page, "PUT", "/guardian/factors/sms", json={"enabled": False})
    api(page, "PUT", "/guardian/factors/phone/message-types", json={"message_types": []})
    api(page, "PUT", "/guardian/factors/phone/selected-provider", json={"provider": "auth0"})
    api(page, "PUT", "/guardian/factors/phone/templates", json=DEFAULT_TEMPLATES)
    for provider in api(page, "GET", "/branding/phone/providers")["providers"]:
        api(page, "DELETE", f"/branding/phone/providers/{provider['id']}")
    for template in api(page, "GET", "/branding/phone/templates")["templates"]:
        if "id" in template:
            api(page, "DELETE", f"/branding/phone/templates/{template['id']}")


def open_phone_page(page):
    page.open("/ui/phone")
    page.find('#phone[data-ready="true"]')
    return page


@pytest.fixture
def phone(signed_in):
    reset_phone_settings(signed_in)
    return open_phone_page(signed_in)


def in_use(page) -> bool:
    return page.find("#provider-in-use").text == "in use"


def test_a_message_edited_here_is_previewed_sent_to_the_outbox_and_logged(phone):
    phone.field("Phone factor").click()
    phone.field("SMS").click()
    phone.wait(lambda d: api(phone, "GET", "/guardian/factors/phone/message-types") ==
               {"message_types": ["sms"]}, "SMS was not turned on")
    assert {"name": "sms", "enabled": True, "trial_expired": False} in \
        api(phone, "GET", "/guardian/factors")

    Select(phone.field("Provider")).select_by_value("guardian:auth0")
    phone.button("Save provider").click()
    phone.wait(lambda d: in_use(phone), "the development outbox is not in use")

    Select(phone.field("Template")).select_by_value("verification_message")
    message = phone.field("Message")
    message.clear()
    message.send_keys("{{ code | shout }}")
    phone.wait_text("#template-problems", "Message: unknown filter 'shout' (line 1, column 11)")
    assert phone.find("#preview-text").text == "(not rendered: see the problems)"
    message.clear()
    message.send_keys(MESSAGE)
    phone.wait_text("#preview-text", "123456 is your code for Acme")
    phone.wait_text("#preview-voice", "1.2.3.4.5.6 is your code for Acme")
    assert not phone.find("#template-problems").is_displayed()
    assert not phone.button("Send test").is_enabled()  # a test sends the saved message

    phone.button("Save template").click()
    phone.wait(lambda d: phone.button("Send test").is_enabled(), "Send test stayed disabled")
    assert api(phone, "GET", "/guardian/factors/phone/templates")["verification_message"] == \
        MESSAGE
    phone.field("Recipient").send_keys(RECIPIENT)
    phone.button("Send test").click()

    sent = phone.wait_text("#outbox-rows", "is your code for Acme").text
    assert re.search(rf"\{RECIPIENT} sms \d{{6}} is your code for Acme", sent)
    event = phone.wait_text("#event-rows", "gd_send_sms").text
    assert "+XXXXXXX0123" in event and "auth0" in event and "hookengine-ui|phone-test" in event


def test_the_twilio_token_is_write_only(phone):
    Select(phone.field("Provider")).select_by_value("upe:twilio")
    phone.field("Account SID").send_keys("AC0123456789")
    phone.field("Default from").send_keys("+15550001111")
    token = phone.field("Auth token")
    assert token.get_attribute("type") == "password"
    assert token.get_attribute("autocomplete") == "new-password"
    token.send_keys(AUTH_TOKEN)
    phone.button("Save provider").click()
    phone.wait(lambda d: in_use(phone), "the tenant-level Twilio provider is not in use")

    assert phone.field("Auth token").get_attribute("value") == ""
    assert phone.find("#twilio-token-state").text == "set"
    (provider,) = api(phone, "GET", "/branding/phone/providers")["providers"]
    assert provider["name"] == "twilio" and provider["configuration"] == {
        "sid": "AC0123456789", "default_from": "+15550001111", "delivery_methods": ["text"]}
    assert api(phone, "GET", "/tenants/settings")["phone_consolidated_experience"] is True
    # The templates are now the tenant-level ones.
    assert [o.get_attribute("value") for o in Select(phone.field("Template")).options] == \
        list(DEFAULT_BODIES)

    open_phone_page(phone)
    assert phone.find("#twilio-token-state").text == "set"
    assert phone.field("Account SID").get_attribute("value") == "AC0123456789"
    assert AUTH_TOKEN not in phone.driver.page_source


def test_a_tenant_level_template_is_previewed_saved_and_reset(phone):
    api(phone, "POST", "/branding/phone/providers", json={
        "name": "custom", "configuration": {"delivery_methods": ["text"]}, "credentials": {}})
    api(phone, "PATCH", "/tenants/settings", json={"phone_consolidated_experience": True})
    open_phone_page(phone)
    assert phone.find("#provider-in-use").text == "in use"
    assert not phone.find("#outbox-panel").is_displayed()  # only the dev provider has one

    Select(phone.field("Template")).select_by_value("otp_enroll")
    text = phone.field("SMS text")
    text.clear()
    text.send_keys("Enrol with {{ friendly_name }}: {{ code }}")
    phone.wait_text("#preview-text", "Enrol with Acme: 123456")
    phone.field("From").send_keys("+15550002222")
    phone.button("Save template").click()
    phone.wait_text("#template-state", "Saved")

    (saved,) = [t for t in api(phone, "GET", "/branding/phone/templates")["templates"]
                if t["type"] == "otp_enroll"]
    assert saved["id"] and saved["content"]["from"] == "+15550002222"
    assert saved["content"]["body"] == {"text": "Enrol with {{ friendly_name }}: {{ code }}",
                                        "voice": DEFAULT_BODIES["otp_enroll"]["voice"]}

    phone.button("Reset to default").click()
    phone.driver.switch_to.alert.accept()
    phone.wait(lambda d: phone.field("SMS text").get_attribute("value") ==
               DEFAULT_BODIES["otp_enroll"]["text"], "the text did not go back to the default")
    phone.wait_text("#preview-text", "123456 is your verification code for Acme. Please enter")
    reset = api(phone, "GET", f"/branding/phone/templates/{saved['id']}")
    assert reset["content"]["body"] == DEFAULT_BODIES["otp_enroll"]
    assert reset["content"]["from"] == "+15550002222"  # Auth0's reset keeps the sender


def test_the_api_message_and_its_errors_are_shown(phone):
    Select(phone.field("Provider")).select_by_value("upe:twilio")
    phone.field("Default from").send_keys("+15550001111")
    phone.button("Save provider").click()
    alert = phone.wait_text('[role="alert"]', "Invalid phone provider")
    assert [item.text for item in alert.find_elements("css selector", "li")] == [
        "configuration: a twilio provider needs sid (the Account SID)",
        "credentials: a twilio provider needs auth_token"]
    assert phone.field("Default from").get_attribute("value") == "+15550001111"  # kept
    assert api(phone, "GET", "/branding/phone/providers") == {"providers": []}
    errors = [e["message"] for e in phone.console() if e["level"] == "SEVERE"]
    assert len(errors) == 1 and "/api/v2/branding/phone/providers" in errors[0] \
        and "400" in errors[0]  # the refused save, which the page expects


def test_what_the_token_cannot_change_is_disabled(page):
    reset_phone_settings(page)
    args = [arg for scope in READ_ONLY for arg in ("--scope", scope)]
    reader = hookengine("token", "create", *args, env=page.server.env).strip()
    # Straight to this page: the hooks page, where signing in lands, needs read:hooks.
    page.open("/ui/sign-in?next=/ui/phone")
    page.field("API token").send_keys(reader)
    page.button("Sign in").click()
    page.find('#phone[data-ready="true"]')
    for name in ("Phone factor", "SMS", "Voice", "Tenant name"):
        assert not page.field(name).is_enabled(), name
    for name in ("Save provider", "Save template", "Reset to default", "Send test"):
        button = page.button(name)
        assert not button.is_enabled() and "lacks" in button.get_attribute("title"), name
    # Reading is allowed: the preview works.
    page.field("Message").send_keys(" {{ code }}")
    page.wait_text("#preview-text", "for Acme 123456")
