"""POST /guardian/factors/phone/deliveries: each provider and message type, each refusal with
its code and its gd_send_*_failure event, the bucket, Idempotency-Key and the templates."""

from __future__ import annotations

import pytest
from standins import twilio as twilio_standin

from hookengine.errors import Conflict
from hookengine.phone.delivery import Delivery, DeliveryConfig, config_from
from hookengine.phone.idempotency import KEEP_SECONDS, STALE_CLAIM_SECONDS, IdempotencyKeys
from hookengine.phone.providers import DevOutbox
from hookengine.phone.ratelimit import Buckets
from hookengine.phone.templates import PAUSE, TemplateError, render, variables

# The store's own behaviour: the same on SQLite and on PostgreSQL.
pytestmark = pytest.mark.backends

DELIVERIES = "/api/v2/guardian/factors/phone/deliveries"
OUTBOX = "/api/v2/guardian/factors/phone/dev-outbox"
RECIPIENT = "+14155550123"
TWILIO = {"sid": twilio_standin.TEST_ACCOUNT_SID, "auth_token": twilio_standin.TEST_AUTH_TOKEN,
          "from": "+15017122661", "messaging_service_sid": None}


class Events:
    """The tenant log as the tests read it: every event so far, oldest first."""

    def __init__(self, engine):
        self.engine = engine

    @property
    def events(self) -> list[dict]:
        return self.engine.logs.search(per_page=100, ascending=True)[1]

    @property
    def types(self) -> list[str]:
        return [event["type"] for event in self.events]


@pytest.fixture
def app_settings(app_settings, twilio):
    return {**app_settings, "HOST_MAP": {"api.twilio.com": twilio.url}}


@pytest.fixture
def logs(engine):
    return Events(engine)


@pytest.fixture
def configure(engine):
    """configure(**fields) writes a configuration through the stores the API writes (factor
    on, SMS and voice allowed, unless the fields say otherwise) and returns what delivery
    reads of it. `upe_provider` and `upe_templates` are created in the branding store."""
    def make(**fields) -> DeliveryConfig:
        fields = {"sms_enabled": True, "message_types": ["sms", "voice"],
                  "friendly_name": "Acme", **fields}
        phone, branding = engine.phoneconfig, engine.branding
        phone.set_factor("sms", fields.pop("sms_enabled"))
        phone.set_message_types(fields.pop("message_types"))
        for name, write in (("provider", phone.set_provider), ("twilio", phone.set_twilio)):
            if name in fields:
                write(fields.pop(name))
        if "templates" in fields:  # a PUT takes both: the one not given stays as it is
            phone.set_templates({**phone.templates(), **fields.pop("templates")})
        tenant = {"friendly_name": fields.pop("friendly_name")}
        if "consolidated" in fields:
            tenant["phone_consolidated_experience"] = fields.pop("consolidated")
        if "show_phone_numbers" in fields:
            tenant["flags"] = {"disable_management_api_sms_obfuscation":
                               fields.pop("show_phone_numbers")}
        phone.update_tenant(tenant)
        limits = {name: fields.pop(name) for name in
                  ("allowed_countries", "bucket_size", "refill_seconds") if name in fields}
        if limits:
            phone.update_delivery_settings(limits)
        provider = fields.pop("upe_provider", None)
        if provider is not None:
            branding.create_provider({"credentials": {}, **provider})
        for kind, template in fields.pop("upe_templates", {}).items():
            branding.create_template({"type": kind, "disabled": template.get("disabled", False),
                                      "content": template["content"]})
        assert not fields, f"not a configuration field: {fields}"
        return config_from(engine)
    return make


@pytest.fixture
def send(client, auth):
    headers = auth("send:phone_messages")

    def post(extra_headers=None, **fields):
        body = {"recipient": RECIPIENT, "user_id": "auth0|user1", "message_type": "sms",
                "action": "enrollment", "code": "123456", "ip": "203.0.113.7", **fields}
        return client.post(DELIVERIES, json=body, headers={**headers, **(extra_headers or {})})
    return post


def outbox(client, auth):
    return client.get(OUTBOX, headers=auth("read:guardian_factors")).json


def test_dev_provider_writes_the_outbox_and_logs_gd_send_sms(client, auth, configure, send,
                                                             logs):
    configure(provider="auth0")
    response = send(language="fr-CA", client={"client_id": "c1", "name": "App"},
                    user_agent="Mozilla/5.0 (iPhone) Mobile")
    assert response.status_code == 200, response.json
    assert response.json == {"status": "sent", "provider": "auth0", "message_type": "sms",
                             "log_id": logs.events[0]["log_id"],
                             "rate_limit": {"remaining": 9,
                                            "reset": response.json["rate_limit"]["reset"]}}
    assert response.headers["X-RateLimit-Limit"] == "10"
    assert response.headers["X-RateLimit-Remaining"] == "9"
    [message] = outbox(client, auth)
    assert message["recipient"] == RECIPIENT
    assert message["text"] == ("123456 is your verification code for Acme. Please enter this "
                               "code to verify your enrollment.")
    [event] = logs.events
    assert event["type"] == "gd_send_sms"
    assert event["details"]["authenticator"] == {"type": "phone",
                                                 "phone_number": "+XXXXXXX0123"}
    assert (event["client_id"], event["client_name"], event["isMobile"]) == ("c1", "App", True)
    assert event["details"]["provider"] == "auth0"
    assert event["details"]["first_factor"] is False


def test_phone_numbers_are_shown_when_the_tenant_flag_says_so(configure, send, logs):
    configure(show_phone_numbers=True)
    assert send().status_code == 200
    assert logs.events[0]["details"]["authenticator"]["phone_number"] == RECIPIENT


def test_dev_provider_cannot_call(configure, send, logs):
    configure(provider="auth0")
    response = send(message_type="voice", action="authentication")
    assert response.status_code == 403
    assert (response.json["errorCode"], response.json["method"]) == ("auth_method_disabled",
                                                                     "voice")
    assert logs.types == ["gd_send_voice_failure"]


def test_dev_outbox_stops_at_its_lifetime_cap(engine, configure, send, logs):
    configure(provider="auth0", bucket_size=1000)
    outbox = DevOutbox(engine.store)
    # Fill it to one short of the cap directly: 99 HTTP requests would say nothing more.
    for number in range(outbox.cap - 1):
        engine.store.connection().execute(
            "INSERT INTO phone_dev_outbox (recipient, text, message_type, action, user_id, "
            "created_at) VALUES (?, 'x', 'sms', 'enrollment', 'u', 'now')", (RECIPIENT,))
    assert send().status_code == 200  # the 100th
    sms = [f for f in engine.phoneconfig.factors() if f["name"] == "sms"][0]
    assert sms["trial_expired"] is True  # GET /guardian/factors says so too
    refused = send()
    assert refused.status_code == 403
    assert refused.json["errorCode"] == "too_many_sms_per_tenant"
    assert outbox.count() == outbox.cap
    assert logs.types == ["gd_send_sms", "gd_send_sms_failure"]


@pytest.mark.parametrize("settings, sender_field, sender", [
    (TWILIO, "From", "+15017122661"),
    ({**TWILIO, "messaging_service_sid": twilio_standin.TEST_MESSAGING_SERVICE_SID},
     "MessagingServiceSid", twilio_standin.TEST_MESSAGING_SERVICE_SID),
], ids=["from", "messaging-service"])
def test_twilio_sms(twilio, configure, send, logs, settings, sender_field, sender):
    configure(provider="twilio", twilio=settings,
              templates={"verification_message": "{{code}} for {{tenant.friendlyName}}"})
    response = send(action="authentication")
    assert response.status_code == 200, response.json
    [request] = twilio.requests
    assert request.path == f"/2010-04-01/Accounts/{TWILIO['sid']}/Messages.json"
    assert request.auth_user == TWILIO["sid"]
    assert request.form["To"] == RECIPIENT
    assert request.form["Body"] == "123456 for Acme"
    assert request.form[sender_field] == sender
    assert ("From" in request.form) == (sender_field == "From")
    assert logs.types == ["gd_send_sms"]


def test_twilio_voice_says_the_code_digit_by_digit(twilio, configure, send, logs):
    configure(provider="twilio", twilio=TWILIO, templates={
        "enrollment_message": "{% if message_type == 'voice' %}Hi <{{ tenant.friendly_name }}>"
                              " & co, {{ locale }}, your code is {{pause}} {{code}}"
                              "{% else %}{{code}}{% endif %}"})
    response = send(message_type="voice", language="fr-CA")
    assert response.status_code == 200, response.json
    [request] = twilio.requests
    assert request.path.endswith("/Calls.json")
    assert request.form["From"] == TWILIO["from"]
    assert request.form["Twiml"] == (
        '<Response><Say language="fr-CA">Hi &lt;Acme&gt; &amp; co, fr-CA, your code is</Say>'
        '<Pause length="1"/><Say language="fr-CA">1.2.3.4.5.6</Say></Response>')
    assert logs.types == ["gd_send_voice"]


def test_twilio_voice_needs_a_from_number(twilio, configure, send, logs):
    configure(provider="twilio", twilio={**TWILIO, "from": None,
                                         "messaging_service_sid":
                                             twilio_standin.TEST_MESSAGING_SERVICE_SID})
    response = send(message_type="voice")
    assert response.status_code == 502
    assert response.json["errorCode"] == "error_sending_voice"
    assert response.json["provider_error"]["errorCode"] == "twilio_no_from"
    assert twilio.requests == []
    assert logs.types == ["gd_send_voice_failure"]


def test_a_provider_failure_is_502_and_keeps_the_token_taken(twilio, configure, send, logs):
    configure(provider="twilio", twilio={**TWILIO, "auth_token": "wrong"})
    response = send()
    assert response.status_code == 502
    assert response.json["errorCode"] == "error_sending_sms"
    assert response.json["provider_error"]["errorCode"] == "twilio_20003"
    assert response.headers["X-RateLimit-Remaining"] == "9"
    event = logs.events[0]
    assert event["type"] == "gd_send_sms_failure"
    assert event["details"]["provider_error"]["errorCode"] == "twilio_20003"
    assert send(user_id="auth0|user1").headers["X-RateLimit-Remaining"] == "8"


def test_the_hook_provider_runs_the_enabled_send_phone_message_hook(engine, configure, send,
                                                                    logs, make_hook):
    script = ("def send_phone_message(recipient, text, context):\n"
              "    return {'MessageID': recipient + '|' + text + '|' + context['action']}\n")
    make_hook(script=script)
    configure(provider="phone-message-hook",
              templates={"verification_message": "Code {{ code }} ({{ message_type }})"})
    response = send(message_type="voice", action="authentication",
                    client={"client_id": "c1", "name": "App"})
    assert response.status_code == 200, response.json
    execution = engine.executions.get(response.json["execution_id"])
    assert execution["result"] == {
        "MessageID": f"{RECIPIENT}|Code 1.2.3.4.5.6 (voice)|second-factor-authentication"}
    assert execution["payload"]["context"]["client"] == {"client_id": "c1", "name": "App"}
    assert logs.events[0]["details"]["execution_id"] == response.json["execution_id"]


def test_a_failing_hook_is_502_with_its_execution(configure, send, logs, make_hook):
    make_hook(script="def send_phone_message(recipient, text, context):\n"
                     "    raise SendPhoneMessageError('carrier refused')\n")
    configure(provider="phone-message-hook")
    response = send()
    assert response.status_code == 502
    assert response.json["provider_error"] == {"errorCode": "SendPhoneMessageError",
                                               "message": "carrier refused"}
    assert response.json["execution_id"]
    assert logs.types == ["gd_send_sms_failure"]


def test_a_busy_node_refuses_a_hook_delivery_before_taking_or_logging_anything(
        engine, configure, send, logs, make_hook):
    make_hook(script="def send_phone_message(recipient, text, context):\n    return {}\n")
    configure(provider="phone-message-hook", bucket_size=1)
    slots = [engine.runner.slot() for _ in range(engine.runner.max_runs)]
    for slot in slots:  # every run slot busy
        slot.__enter__()
    try:
        busy = send(extra_headers={"Idempotency-Key": "k3"})
    finally:
        for slot in slots:
            slot.__exit__(None, None, None)
    assert (busy.status_code, busy.json["errorCode"]) == (503, "node_busy")
    assert busy.headers["Retry-After"] == "1"
    assert logs.types == []  # nothing logged, and no token of the bucket of one taken:
    sent = send(extra_headers={"Idempotency-Key": "k3"})  # the key was not kept either
    assert sent.status_code == 200 and sent.headers["X-RateLimit-Remaining"] == "0"
    assert logs.types == ["gd_send_sms"]


def test_no_enabled_hook_is_404(configure, send, logs, make_hook):
    make_hook(enabled=False)
    configure(provider="phone-message-hook")
    response = send()
    assert response.status_code == 404
    assert response.json["errorCode"] == "no_enabled_hook"
    assert logs.types == ["gd_send_sms_failure"]


def test_upe_twilio_uses_the_branding_provider_and_templates(twilio, configure, send, logs):
    configure(consolidated=True, provider="auth0", upe_provider={
        "name": "twilio", "disabled": False,
        "configuration": {"sid": TWILIO["sid"], "default_from": "+15017122661",
                          "delivery_methods": ["text"]},
        "credentials": {"auth_token": TWILIO["auth_token"]}},
        upe_templates={"otp_verify": {"type": "otp_verify", "disabled": False, "content": {
            "from": "+15550001111", "body": {"text": "{{ code }} for {{ friendly_name }}, "
                                                     "{{ user.name }}"}}}})
    response = send(action="authentication", user={"name": "Billie"})
    assert response.status_code == 200, response.json
    [request] = twilio.requests
    assert (request.form["Body"], request.form["From"]) == ("123456 for Acme, Billie",
                                                            "+15550001111")
    refused = send(message_type="voice")
    assert refused.status_code == 403
    assert refused.json["errorCode"] == "enrollment_method_disabled"


def test_upe_disabled_template_falls_back_to_the_default(configure, send, engine, make_hook):
    make_hook(script="def send_phone_message(recipient, text, context):\n"
                     "    return {'MessageID': text}\n")
    configure(consolidated=True, upe_provider={"name": "custom", "disabled": False,
                                               "configuration": {"delivery_methods": ["text"]}},
              upe_templates={"otp_enroll": {"disabled": True, "content": {
                  "body": {"text": "ignored"}}}})
    response = send()
    assert response.status_code == 200, response.json
    assert engine.executions.get(response.json["execution_id"])["result"]["MessageID"] == (
        "123456 is your verification code for Acme. Please enter this code to verify your "
        "enrollment.")


@pytest.mark.parametrize("config, fields, status, code", [
    ({"sms_enabled": False}, {}, 403, "feature_disabled_by_admin"),
    ({"message_types": ["voice"]}, {}, 403, "enrollment_method_disabled"),
    ({}, {"recipient": "+15558675310"}, 400, "invalid_phone_number"),
    ({}, {"recipient": "14155550123"}, 400, "invalid_phone_number"),
    ({}, {"code": ""}, 400, "invalid_body"),
    ({}, {"ip": "not-an-ip"}, 400, "invalid_body"),
    ({"allowed_countries": ["FR"]}, {}, 403, "country_not_allowed"),
    ({"consolidated": True, "upe_provider": None}, {}, 403, "feature_disabled_by_admin"),
])
def test_each_refusal_has_its_code_and_event(configure, send, logs, config, fields, status,
                                             code):
    configure(**config)
    response = send(**fields)
    assert (response.status_code, response.json["errorCode"]) == (status, code)
    assert logs.types == ["gd_send_sms_failure"]
    assert logs.events[0]["details"]["failure_details"]["errorCode"] == code


def test_an_unreadable_body_is_logged_too(client, auth, configure, logs):
    configure()
    response = client.post(DELIVERIES, data=b"{", content_type="application/json",
                           headers=auth("send:phone_messages"))
    assert response.status_code == 400
    assert logs.types == ["gd_send_sms_failure"]


def test_an_empty_bucket_is_429_with_retry_after(configure, send, logs):
    configure(bucket_size=2, provider="twilio", twilio=TWILIO)
    assert [send().status_code for _ in range(2)] == [200, 200]
    refused = send(message_type="voice")
    assert refused.status_code == 429
    assert refused.json["errorCode"] == "too_many_voice"
    assert refused.headers["Retry-After"] == "3600"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert send(user_id="auth0|someone-else").status_code == 200  # per user
    assert logs.types[2] == "gd_send_voice_failure"


def test_the_bucket_refills_one_token_per_period(engine):
    buckets = Buckets(engine.store)
    assert [buckets.take("u", 2, 3600, now=0).allowed for _ in range(3)] == [True, True, False]
    assert buckets.take("u", 2, 3600, now=1800).allowed is False  # half a token
    taken = buckets.take("u", 2, 3600, now=3600)
    assert (taken.allowed, taken.remaining) == (True, 0)
    assert buckets.take("u", 2, 3600, now=100 * 3600).remaining == 1  # never above the size


def test_an_idempotency_key_retry_sends_one_message(client, auth, configure, send, logs):
    configure()
    first = send(extra_headers={"Idempotency-Key": "k1"})
    again = send(extra_headers={"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 200
    assert again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["X-RateLimit-Remaining"] == "9"
    assert len(outbox(client, auth)) == 1
    assert logs.types == ["gd_send_sms"]
    other = send(extra_headers={"Idempotency-Key": "k1"}, code="654321")
    assert (other.status_code, other.json["errorCode"]) == (409, "idempotency_key_reused")


def test_a_refused_delivery_does_not_keep_its_idempotency_key(client, auth, configure, send):
    configure(sms_enabled=False)
    assert send(extra_headers={"Idempotency-Key": "k2"}).status_code == 403
    configure()
    assert send(extra_headers={"Idempotency-Key": "k2"}).status_code == 200


def test_execute_hooks_does_not_allow_sending(client, auth, configure):
    configure()
    response = client.post(DELIVERIES, json={}, headers=auth("execute:hooks", "read:hooks"))
    assert response.status_code == 403
    assert response.json["message"] == ("Insufficient scope; expected any of: "
                                        "send:phone_messages.")


def test_an_unconfigured_engine_refuses_as_a_disabled_factor(engine, send):
    assert send().json["errorCode"] == "feature_disabled_by_admin"


def test_templates_have_both_dialects_variables():
    values = variables(code="4321", message_type="voice", language="es-AR",
                       friendly_name="Acme", user={"name": "Ana"}, user_id="u1")
    text = render("{{tenant.friendly_name}}/{{tenant.friendlyName}}/{{friendly_name}} "
                  "{{code}} {{locale}} {{language}} {{requestInfo.lang}} {{user.name}} "
                  "{{user.user_id}} {{message_type}}{{pause}}", values)
    assert text == f"Acme/Acme/Acme 4.3.2.1 es-AR es-AR es-AR Ana u1 voice{PAUSE}"



@pytest.mark.parametrize("source", [
    "{% for i in (1..99999999) %}x{% endfor %}",
    "{% for i in (1..5000) %}{{ '012345678901234567890123456789' }}{% endfor %}",
    '{% assign s = "x" %}{% for i in (1..40) %}{% assign s = s | append: s %}{% endfor %}{{ s }}',
], ids=["iterations", "output", "assign"])
def test_a_runaway_template_fails_at_once(source):
    """Unbounded, these run for minutes (the first) or take gigabytes (the last)."""
    with pytest.raises(TemplateError, match="limit reached"):
        render(source, {})

def test_delivery_takes_a_configuration_and_a_clock(engine, logs):
    """The pipeline is usable without HTTP (config_from feeds it the same way)."""
    delivery = Delivery(engine.store, engine.settings, engine.hooks, engine.runner, engine.logs,
                        clock=lambda: 1000.0)
    config = DeliveryConfig(sms_enabled=True, message_types=["sms"], friendly_name="Acme")
    answer, headers = delivery.deliver(config, {
        "recipient": "+33612345678", "user_id": "u", "message_type": "sms",
        "action": "authentication", "code": "99", "ip": "::1"})
    assert answer["rate_limit"] == {"remaining": 9, "reset": 1000 + 3600}
    assert headers["X-RateLimit-Reset"] == "4600"


def test_a_claim_left_by_a_killed_request_expires(engine):
    keys = IdempotencyKeys(engine.store)
    assert keys.begin("k", {"a": 1}, now=0) is None  # claimed; never finished
    with pytest.raises(Conflict):
        keys.begin("k", {"a": 1}, now=10)
    assert keys.begin("k", {"a": 1}, now=10 + STALE_CLAIM_SECONDS) is None
    keys.finish("k", 200, {"status": "sent"}, {})
    assert keys.begin("k", {"a": 1}, now=20 + STALE_CLAIM_SECONDS).body == {"status": "sent"}
    assert keys.begin("k", {"a": 1}, now=KEEP_SECONDS + 200) is None  # a day later: forgotten
