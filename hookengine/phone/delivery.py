"""The delivery pipeline of POST /guardian/factors/phone/deliveries, in the contract's order:
validate, check the factor, rate-limit, choose the provider, render, deliver, log."""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import secrets
import time
from dataclasses import dataclass, field
from typing import Callable

import phonenumbers

from hookengine.errors import HookEngineError
from hookengine.phone import templates
from hookengine.phone.errors import DeliveryRefused, ProviderFailed
from hookengine.phone.providers import DevOutbox, HookSender, Message, TwilioSender
from hookengine.phone.ratelimit import Buckets
from hookengine.validation import schema_problems

# The body the identity platform sends (contract §B). The recipient's format is checked
# after the schema, so that a bad number gets its own code (invalid_phone_number).
DELIVERY_BODY = {
    "type": "object", "additionalProperties": False,
    "required": ["recipient", "user_id", "message_type", "action", "code", "ip"],
    "properties": {
        "recipient": {"type": "string", "maxLength": 64,
                      "description": "E.164, e.g. +14155550123."},
        "user_id": {"type": "string", "minLength": 1, "maxLength": 255},
        "message_type": {"type": "string", "enum": ["sms", "voice"]},
        "action": {"type": "string",
                   "enum": ["enrollment", "authentication", "second-factor-authentication"]},
        "language": {"type": "string", "maxLength": 35,
                     "pattern": "^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*$",
                     "x-hint": "send a BCP-47 tag such as fr-CA"},
        "code": {"type": "string", "minLength": 1, "maxLength": 20},
        "ip": {"type": "string", "maxLength": 45, "description": "IPv4 or IPv6."},
        "user_agent": {"type": "string", "maxLength": 1024},
        "client": {"type": "object", "required": ["client_id", "name"], "properties": {
            "client_id": {"type": "string"}, "name": {"type": "string"},
            "client_metadata": {"type": "object"}}},
        "user": {"type": "object"},
    },
}
E164_PATTERN = r"^\+[1-9][0-9]{1,14}$"
# The providers that send through the send-phone-message hook (Guardian's name, and the
# Unified Phone Experience's).
HOOK_PROVIDERS = ("phone-message-hook", "custom")


@dataclass
class DeliveryConfig:
    """What the pipeline reads of the phone factor's configuration (parts A and B).

    Guardian mode uses provider/twilio/templates; with `consolidated` (UPE) the branding
    provider and its otp_enroll/otp_verify templates replace them. `message_types` applies
    in both. `on_trial_expired` is called when the development outbox reaches its cap.
    """

    sms_enabled: bool = False
    message_types: list[str] = field(default_factory=list)
    provider: str = "auth0"                # auth0 | twilio | phone-message-hook
    twilio: dict = field(default_factory=dict)  # sid, auth_token, from, messaging_service_sid
    templates: dict = field(default_factory=dict)  # enrollment_message, verification_message
    friendly_name: str = ""
    consolidated: bool = False
    upe_provider: dict | None = None       # BrandingStore.provider()
    upe_templates: dict = field(default_factory=dict)  # otp_enroll/otp_verify -> template
    allowed_countries: list[str] = field(default_factory=list)  # ISO codes; [] allows all
    bucket_size: int = 10
    refill_seconds: float = 3600
    show_phone_numbers: bool = False       # flags.disable_management_api_sms_obfuscation
    on_trial_expired: Callable[[], None] | None = None


def config_from(engine) -> DeliveryConfig:
    """The phone factor's configuration as delivery reads it, from the stores the API writes:
    the Guardian records (PhoneConfig) and, with the Unified Phone Experience, the branding
    provider and templates (BrandingStore)."""
    phone, branding = engine.phoneconfig, engine.branding
    tenant, limits = phone.tenant(), phone.delivery_settings()
    return DeliveryConfig(
        sms_enabled=phone.factor_enabled("sms"), message_types=phone.message_types(),
        provider=phone.selected_provider(), twilio=phone.twilio(),
        templates=phone.templates(), friendly_name=tenant.get("friendly_name") or "",
        consolidated=bool(tenant.get("phone_consolidated_experience")),
        upe_provider=branding.provider(),
        upe_templates={kind: branding.template(kind) for kind in ("otp_enroll", "otp_verify")},
        allowed_countries=list(limits["allowed_countries"]),
        bucket_size=limits["bucket_size"], refill_seconds=limits["refill_seconds"],
        show_phone_numbers=bool((tenant.get("flags") or {}).get(
            "disable_management_api_sms_obfuscation")),
        on_trial_expired=lambda: phone.set_trial_expired(True))


class Delivery:
    """The pipeline over the engine's stores: buckets, the outbox, Twilio and the hook."""

    def __init__(self, store, settings: dict, hooks, runner, tenant_logs=None,
                 clock: Callable[[], float] = time.time):
        self.buckets = Buckets(store)
        self.outbox = DevOutbox(store)
        self.twilio = TwilioSender(settings)
        self.hook = HookSender(hooks, runner)
        self.tenant_logs = tenant_logs
        self.clock = clock

    @classmethod
    def for_engine(cls, engine) -> "Delivery":
        return cls(engine.store, engine.settings, engine.hooks, engine.runner, engine.logs)

    def deliver(self, config: DeliveryConfig, body, hostname: str = "") -> tuple[dict, dict]:
        """Deliver one code: (answer, headers), or DeliveryRefused (its failure logged).

        A delivery through the hook holds its run slot from the start: on a node whose
        slots are all busy it is NodeBusy (503) before a token is taken or anything sent or
        logged, so the caller may send it to another node."""
        attempt = Attempt(config, body if isinstance(body, dict) else {}, hostname,
                          held=provider_of(config) in HOOK_PROVIDERS)
        with self.hook.slot() if attempt.held else contextlib.nullcontext():
            try:
                return self._deliver(attempt)
            except DeliveryRefused as refusal:
                refusal.headers = refusal.headers or attempt.headers  # X-RateLimit-* once taken
                self.log_failure(attempt, refusal)
                raise

    def refuse_unreadable(self, config: DeliveryConfig, error: HookEngineError,
                          hostname: str = "") -> None:
        """Log a body that could not even be read (not JSON, wrong Content-Type)."""
        refusal = DeliveryRefused(error.status_code, error.error_code, error.message)
        self.log_failure(Attempt(config, {}, hostname), refusal)

    def _deliver(self, attempt: Attempt) -> tuple[dict, dict]:
        config, body = attempt.config, attempt.body
        validate(body)
        country = recipient_country(body["recipient"])
        check_channel(config, body, country)
        take = self.buckets.take(body["user_id"], config.bucket_size, config.refill_seconds,
                                 self.clock())
        attempt.headers = take.headers()
        if not take.allowed:
            kind = "voice" if body["message_type"] == "voice" else "sms"
            raise DeliveryRefused(
                429, f"too_many_{kind}", "You have exceeded the maximum number of phone "
                "messages per hour. Wait a few minutes and try again.", headers=attempt.headers)
        attempt.provider = provider_of(config)
        if attempt.provider in HOOK_PROVIDERS:
            self.hook.enabled_hook()  # 404 before rendering, as the trigger route answers
        message = compose(config, body)
        try:
            sent = self._send(attempt, config, message)
        except ProviderFailed as failed:
            kind = "voice" if body["message_type"] == "voice" else "sms"
            raise DeliveryRefused(
                502, f"error_sending_{kind}", f"The {attempt.provider} provider did not take "
                f"the message: {failed.message}",
                extra={"provider_error": failed.as_dict(),
                       **({"execution_id": failed.execution_id} if failed.execution_id
                          else {})},
                execution_id=failed.execution_id) from None
        event = self.log(attempt, success=True, execution_id=sent.execution_id,
                         description=f"{'Voice call' if message.message_type == 'voice' else 'SMS'}"
                                     f" sent via {attempt.provider}")
        answer = {"status": "sent", "provider": attempt.provider,
                  "message_type": body["message_type"],
                  "log_id": event.get("log_id") if event else None,
                  "rate_limit": {"remaining": take.remaining, "reset": take.reset}}
        if sent.execution_id:
            answer["execution_id"] = sent.execution_id
        return answer, attempt.headers

    def send_test(self, config: DeliveryConfig, recipient: str, message_type: str,
                  provider: dict, template: dict) -> None:
        """A test message (POST /branding/phone/.../try): through `provider` with `template`
        and a made-up code; no bucket taken and no tenant log (no user asked for it). A
        provider's refusal is a 502 saying what it answered."""
        config = dataclasses.replace(config, consolidated=True, upe_provider=provider,
                                     upe_templates={"otp_enroll": template,
                                                    "otp_verify": template})
        body = {"recipient": recipient if recipient.startswith("+") else f"+{recipient}",
                "user_id": "test", "message_type": message_type, "action": "authentication",
                "code": f"{secrets.randbelow(10**6):06d}", "ip": "127.0.0.1"}
        attempt = Attempt(config, body, "")
        attempt.provider = provider_of(config)
        try:
            self._send(attempt, config, compose(config, body))
        except ProviderFailed as failed:
            raise DeliveryRefused(502, f"error_sending_{message_type}",
                                  f"The {attempt.provider} provider did not take the test "
                                  f"message: {failed.message}",
                                  extra={"provider_error": failed.as_dict()}) from None

    def _send(self, attempt, config: DeliveryConfig, message: Message):
        provider = attempt.provider
        if provider == "auth0":
            try:
                return self.outbox.send(message)
            finally:
                # The last message allowed, or one past it: GET /guardian/factors then shows
                # sms.trial_expired, as Auth0 shows for an evaluation tenant.
                if self.outbox.exhausted():
                    self._trial_expired(config)
        if provider == "twilio":
            return self.twilio.send(twilio_settings(config), message)
        return self.hook.send(message, held=attempt.held)

    @staticmethod
    def _trial_expired(config: DeliveryConfig) -> None:
        if config.on_trial_expired is not None:
            config.on_trial_expired()

    def log_failure(self, attempt: Attempt, refusal: DeliveryRefused) -> None:
        failure = {"errorCode": refusal.error_code, "message": refusal.message}
        self.log(attempt, success=False, description=refusal.message, failure=failure,
                 provider_error=refusal.extra.get("provider_error"),
                 execution_id=refusal.execution_id)

    def log(self, attempt: Attempt, *, success: bool, description: str,
            execution_id: str | None = None, failure: dict | None = None,
            provider_error: dict | None = None) -> dict | None:
        """Record the tenant log event (gd_send_sms, gd_send_voice_failure, ...) when the
        engine keeps tenant logs; returns it as recorded (with its log_id)."""
        if self.tenant_logs is None:
            return None
        return self.tenant_logs.record(event(attempt, success=success, description=description,
                                             execution_id=execution_id, failure=failure,
                                             provider_error=provider_error))


@dataclass
class Attempt:
    """One request as the pipeline learns about it, for its log event."""

    config: DeliveryConfig
    body: dict
    hostname: str
    held: bool = False  # a run slot, for a delivery through the hook (see deliver)
    provider: str | None = None
    headers: dict = field(default_factory=dict)


def validate(body) -> None:
    problems = schema_problems(DELIVERY_BODY, body)
    if not problems:
        try:
            ipaddress.ip_address(body["ip"])
        except ValueError:
            problems = [f"ip: {body['ip']!r} is not an IPv4 or IPv6 address"]
    if problems:
        raise DeliveryRefused(400, "invalid_body", "Payload validation error: "
                              + "; ".join(problems), extra={"errors": problems})


def recipient_country(recipient: str) -> str | None:
    """The recipient's ISO country (None for a non-geographic number); 400
    invalid_phone_number unless it is an E.164 number libphonenumber knows to be valid."""
    from hookengine.validation import matches

    number = None
    if matches(E164_PATTERN, recipient):
        try:
            number = phonenumbers.parse(recipient, None)
        except phonenumbers.NumberParseException:
            number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise DeliveryRefused(400, "invalid_phone_number",
                              "The recipient is not a valid phone number in E.164 format "
                              "(+ and the country code, e.g. +14155550123).")
    region = phonenumbers.region_code_for_number(number)
    return None if region in (None, "001", "ZZ") else region


def check_channel(config: DeliveryConfig, body: dict, country: str | None) -> None:
    """Step 2: the factor is on and allows this message type, with this provider, to this
    country; 403 otherwise."""
    kind = body["message_type"]
    if not config.sms_enabled:
        raise DeliveryRefused(403, "feature_disabled_by_admin",
                              "The phone (sms) factor is disabled.")
    if config.consolidated and (config.upe_provider is None
                                or config.upe_provider.get("disabled")):
        raise DeliveryRefused(403, "feature_disabled_by_admin",
                              "No enabled phone provider is configured (/branding/phone/"
                              "providers) and the tenant uses the Unified Phone Experience.")
    method_code = ("enrollment_method_disabled" if body["action"] == "enrollment"
                   else "auth_method_disabled")
    why = None
    if kind not in config.message_types:
        why = f"the phone factor's message types do not include {kind}"
    elif config.consolidated and _upe_method(kind) not in (
            config.upe_provider.get("configuration") or {}).get("delivery_methods", []):
        why = f"the phone provider's delivery methods do not include {_upe_method(kind)}"
    elif not config.consolidated and config.provider == "auth0" and kind == "voice":
        why = "the development provider (auth0) cannot place voice calls"
    if why:
        raise DeliveryRefused(403, method_code, f"This method is disabled: {why}.",
                              extra={"method": kind})
    allowed = [code.upper() for code in config.allowed_countries]
    if allowed and country not in allowed:
        raise DeliveryRefused(403, "country_not_allowed",
                              f"Messages to {country or 'this number'} are not allowed; the "
                              f"allowed countries are {', '.join(allowed)}.")


def _upe_method(message_type: str) -> str:
    return "text" if message_type == "sms" else "voice"


def provider_of(config: DeliveryConfig) -> str | None:
    """The provider's name; None when the tenant-level one is not configured (check_channel
    refuses a delivery then)."""
    return (config.upe_provider or {}).get("name") if config.consolidated else config.provider


def twilio_settings(config: DeliveryConfig) -> dict:
    """The Twilio account in the Guardian record's shape, from either mode."""
    if not config.consolidated:
        return config.twilio
    configuration = config.upe_provider.get("configuration") or {}
    credentials = config.upe_provider.get("credentials") or {}
    return {"sid": configuration.get("sid"), "auth_token": credentials.get("auth_token"),
            "from": configuration.get("default_from"),
            "messaging_service_sid": configuration.get("mssid")}


def hook_action(action: str) -> str:
    """The hook's spelling of the action (its validator takes only these two)."""
    return "enrollment" if action == "enrollment" else "second-factor-authentication"


def compose(config: DeliveryConfig, body: dict) -> Message:
    """Step 5: the text from the mode's template, and its sender."""
    kind, enrolling = body["message_type"], body["action"] == "enrollment"
    values = templates.variables(code=body["code"], message_type=kind,
                                 language=body.get("language"),
                                 friendly_name=config.friendly_name, user=body.get("user"),
                                 user_id=body["user_id"])
    sender = None
    if config.consolidated:
        kind_name = "otp_enroll" if enrolling else "otp_verify"
        template = config.upe_templates.get(kind_name) or {}
        content = template.get("content") or {}
        source = (content.get("body") or {}).get("text" if kind == "sms" else "voice")
        if template.get("disabled") or not source:
            source = templates.DEFAULT_BODIES[kind_name]["text" if kind == "sms" else "voice"]
        sender = content.get("from") or None
    else:
        key, default = (("enrollment_message", templates.ENROLLMENT_DEFAULT) if enrolling
                        else ("verification_message", templates.VERIFICATION_DEFAULT))
        source = config.templates.get(key) or default
    try:
        text = templates.render(source, values)
    except templates.TemplateError as error:
        # The operator's template, not the provider: still the message could not be sent.
        raise ProviderFailed("template_error", str(error)) from None
    context = {"message_type": kind, "action": hook_action(body["action"]),
               "language": body.get("language") or "", "code": body["code"],
               "ip": body["ip"], "user_agent": body.get("user_agent") or "",
               "user": {"user_id": body["user_id"], **(body.get("user") or {})}}
    if body.get("client"):
        context["client"] = body["client"]
    return Message(recipient=body["recipient"], text=text, message_type=kind,
                   action=hook_action(body["action"]), user_id=body["user_id"], sender=sender,
                   language=body.get("language"), context=context)


def mask(number: str) -> str:
    """A phone number with all but its last four digits hidden: +XXXXXXX0123."""
    if len(number) <= 4:
        return "X" * len(number)
    keep = number[-4:]
    hidden = number[:-4]
    return (hidden[0] if hidden.startswith("+") else "X") + "X" * (len(hidden) - 1) + keep


def event(attempt: Attempt, *, success: bool, description: str,
          execution_id: str | None = None, failure: dict | None = None,
          provider_error: dict | None = None) -> dict:
    """The gd_send_* tenant log event of an attempt (contract §B step 7)."""
    body = attempt.body
    kind = "voice" if body.get("message_type") == "voice" else "sms"
    recipient = body.get("recipient") if isinstance(body.get("recipient"), str) else None
    if recipient is not None and not attempt.config.show_phone_numbers:
        recipient = mask(recipient)
    client = body.get("client") if isinstance(body.get("client"), dict) else {}
    user_agent = body.get("user_agent") if isinstance(body.get("user_agent"), str) else ""
    details = {"authenticator": {"type": "phone", "phone_number": recipient},
               "first_factor": False, "action": _text(body.get("action")),
               "message_type": _text(body.get("message_type")), "provider": attempt.provider}
    if execution_id:
        details["execution_id"] = execution_id
    if failure:
        details["failure_details"] = failure
    if provider_error:
        details["provider_error"] = provider_error
    return {"type": f"gd_send_{kind}" + ("" if success else "_failure"),
            "description": description, "ip": _text(body.get("ip")),
            "user_agent": user_agent, "client_id": _text(client.get("client_id")),
            "client_name": _text(client.get("name")), "user_id": _text(body.get("user_id")),
            "isMobile": "mobi" in user_agent.lower(), "hostname": attempt.hostname,
            "details": details}


def _text(value) -> str | None:
    return value if isinstance(value, str) else None
