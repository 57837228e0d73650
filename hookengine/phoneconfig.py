"""The phone factor's configuration (Guardian) and the tenant settings it depends on.

One row per key in `phone_config`, its value JSON, so each endpoint reads and writes one
document. The `/phone/` and deprecated `/sms/` Guardian endpoints share these rows, as they
share state on Auth0. The Twilio auth token is kept Fernet-encrypted and only `twilio()`
(the delivery pipeline) sees it in clear; the API shows it masked.

The request rules are JSON Schemas (the routes validate bodies with them and the OpenAPI
document shows them); what a schema cannot say (Liquid syntax, region codes, duplicates
after case folding) is checked here, on every write.
"""

from __future__ import annotations

import copy
import json

import phonenumbers
from cryptography.fernet import Fernet, InvalidToken

from hookengine.errors import ConfigError, ValidationError
from hookengine.phone.templates import liquid_problems
from hookengine.secrets import HIDDEN

# Auth0's order on a fresh tenant (GET /guardian/factors); `sms` is the phone factor.
FACTORS = ("sms", "push-notification", "otp", "email", "duo", "webauthn-roaming",
           "webauthn-platform", "recovery-code")
MESSAGE_TYPES = ("sms", "voice")
PROVIDERS = ("auth0", "twilio", "phone-message-hook")
POLICIES = ("all-applications", "confidence-score")
TWILIO_FIELDS = ("sid", "auth_token", "from", "messaging_service_sid")
TEMPLATE_FIELDS = ("enrollment_message", "verification_message")
# No limit is documented; this keeps one message well under what any provider accepts.
MAX_TEMPLATE_CHARS = 4096

DEFAULT_TEMPLATES = {  # Auth0's OpenAPI defaults
    "enrollment_message": "{{code}} is your verification code for {{tenant.friendly_name}}. "
                          "Please enter this code to verify your enrollment.",
    "verification_message": "{{code}} is your verification code for {{tenant.friendly_name}}",
}

DEFAULTS = {
    "factors": {name: False for name in FACTORS},
    "trial_expired": False,
    "message_types": [],
    # Auth0's default is not documented; the dev provider is the one that works untouched.
    "provider": "auth0",
    "twilio": {name: None for name in TWILIO_FIELDS},
    "templates": DEFAULT_TEMPLATES,
    "phone_settings": {"otp_length": 6, "otp_expiration_time": 300},
    "policies": [],
    "tenant": {
        "friendly_name": "",
        "picture_url": None,
        "support_email": None,
        "support_url": None,
        "enabled_locales": ["en"],
        # false, not absent: Terraform assumes the Unified Phone Experience when the key is
        # missing and then refuses to configure the Guardian provider.
        "phone_consolidated_experience": False,
        "flags": {"disable_management_api_sms_obfuscation": False},
    },
    "delivery": {"allowed_countries": [], "bucket_size": 10, "refill_seconds": 3600},
    "phone_provider_protection": {"type": "default"},
}

# --- request schemas (Auth0's OpenAPI shapes, additionalProperties false) ---------------

_NULLABLE = {"type": ["string", "null"], "minLength": 1, "maxLength": 1000}
FACTOR_SET = {
    "type": "object", "additionalProperties": False, "required": ["enabled"],
    "properties": {"enabled": {"type": "boolean"}},
}
MESSAGE_TYPES_SET = {
    "type": "object", "additionalProperties": False, "required": ["message_types"],
    "properties": {"message_types": {
        "type": "array", "uniqueItems": True,
        "items": {"type": "string", "enum": list(MESSAGE_TYPES)},
        "x-hint": "send a list of distinct message types, each sms or voice ([] allowed)"}},
}
PROVIDER_SET = {
    "type": "object", "additionalProperties": False, "required": ["provider"],
    "properties": {"provider": {"type": "string", "enum": list(PROVIDERS)}},
}
TWILIO_SET = {
    "type": "object", "additionalProperties": False,
    "description": "The whole record: a field left out becomes null. An auth_token of "
                   f"{HIDDEN!r} (what GET shows) keeps the stored token.",
    "properties": {"from": {"type": ["string", "null"], "maxLength": 64},
                   "messaging_service_sid": _NULLABLE, "auth_token": _NULLABLE,
                   "sid": _NULLABLE},
}
TWILIO = {
    "type": "object", "additionalProperties": False,
    "properties": {**TWILIO_SET["properties"], "auth_token": {
        "type": ["string", "null"], "enum": [HIDDEN, None],
        "description": f"{HIDDEN!r} when a token is stored (it is never returned), else null."}},
}
_TEMPLATE = {"type": "string", "minLength": 1, "maxLength": MAX_TEMPLATE_CHARS,
             "description": "Liquid; see README 'Deliver MFA codes by SMS or voice'."}
TEMPLATES_SET = {
    "type": "object", "additionalProperties": False, "required": list(TEMPLATE_FIELDS),
    "properties": {name: _TEMPLATE for name in TEMPLATE_FIELDS},
}
PHONE_SETTINGS_SET = {
    "type": "object", "additionalProperties": False,
    "required": ["otp_length", "otp_expiration_time"],
    "properties": {
        "otp_length": {"type": "integer", "minimum": 4, "maximum": 10},
        "otp_expiration_time": {"type": "integer", "minimum": 30, "maximum": 86400,
                                "description": "Seconds."}},
}
POLICIES_SET = {
    "type": "array", "uniqueItems": True, "maxItems": 1,
    "items": {"type": "string", "enum": list(POLICIES)},
    "x-hint": "send [], [\"all-applications\"] or [\"confidence-score\"]",
}
_LOCALE = {"type": "string", "pattern": "^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$",
           "x-hint": "locales are language tags such as en, fr-CA, pt-BR"}
TENANT_PATCH = {
    "type": "object", "additionalProperties": False, "minProperties": 1,
    "properties": {
        "friendly_name": {"type": "string", "maxLength": 255},
        "picture_url": {"type": ["string", "null"], "maxLength": 2048},
        "support_email": {"type": ["string", "null"], "maxLength": 255},
        "support_url": {"type": ["string", "null"], "maxLength": 2048},
        "enabled_locales": {"type": "array", "minItems": 1, "uniqueItems": True,
                            "items": _LOCALE},
        "phone_consolidated_experience": {"type": "boolean"},
        "flags": {"type": "object", "additionalProperties": {"type": "boolean"},
                  "description": "Merged into the stored flags; hookengine acts on "
                                 "disable_management_api_sms_obfuscation."},
    },
}
TENANT = {"type": "object", "properties": {
    **TENANT_PATCH["properties"],
    "flags": {"type": "object", "additionalProperties": {"type": "boolean"}}}}
DELIVERY_PATCH = {
    "type": "object", "additionalProperties": False, "minProperties": 1,
    "properties": {
        "allowed_countries": {
            "type": "array",
            "items": {"type": "string", "pattern": "^[A-Za-z]{2}$",
                      "x-hint": "send two-letter ISO 3166-1 country codes such as US, FR, GB"},
            "description": "ISO 3166-1 alpha-2 codes of the countries codes may be sent to; "
                           "[] allows every country."},
        "bucket_size": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1,
                        "description": "Messages a user may receive in a burst."},
        "refill_seconds": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1,
                           "description": "Seconds for one message to come back."},
    },
}


PROTECTION_SET = {
    "type": "object", "additionalProperties": False, "required": ["type"],
    "properties": {"type": {
        "type": "string", "enum": ["exponential", "default", "none"],
        "description": "Stored only. Auth0's OpenAPI says none and its SDK default for the "
                       "non-exponential value; both are taken and returned as sent."}},
}


class PhoneConfig:
    """Read and write the phone factor's configuration and the tenant settings."""

    def __init__(self, store, cipher: Fernet):
        self.store = store
        self.cipher = cipher

    # --- what the delivery pipeline reads ------------------------------------------------

    def factors(self) -> list[dict]:
        enabled = self._get("factors")
        expired = self._get("trial_expired")
        return [{"name": name, "enabled": enabled[name],
                 "trial_expired": expired if name == "sms" else False} for name in FACTORS]

    def factor_enabled(self, name: str) -> bool:
        return self._get("factors").get(name, False)

    def message_types(self) -> list[str]:
        return self._get("message_types")

    def selected_provider(self) -> str:
        return self._get("provider")

    def twilio(self) -> dict:
        """{sid, auth_token, from, messaging_service_sid}, the token decrypted; None unset."""
        record = self._get("twilio")
        if record["auth_token"] is not None:
            record["auth_token"] = self._decrypt(record["auth_token"])
        return record

    def templates(self) -> dict:
        return self._get("templates")

    def tenant(self) -> dict:
        return self._get("tenant")

    def delivery_settings(self) -> dict:
        return self._get("delivery")

    def set_trial_expired(self, expired: bool) -> None:
        """Shown as sms.trial_expired (the dev provider's lifetime cap was reached)."""
        self._put("trial_expired", bool(expired))

    # --- what the management API writes ---------------------------------------------------

    def set_factor(self, name: str, enabled: bool) -> None:
        if name not in FACTORS:
            hint = " The phone factor is named sms." if name in ("phone", "voice") else ""
            raise ValidationError(f"Unknown factor {name!r}; factors are "
                                  f"{', '.join(FACTORS)}.{hint}")
        with self.store.transaction() as db:
            factors = self._get("factors", db)
            factors[name] = enabled
            self._put("factors", factors, db)

    def set_message_types(self, message_types: list[str]) -> None:
        self._put("message_types", list(message_types))

    def set_provider(self, provider: str) -> None:
        self._put("provider", provider)

    def twilio_masked(self) -> dict:
        """The Twilio record as the API shows it: the token is HIDDEN when set."""
        record = self._get("twilio")
        if record["auth_token"] is not None:
            record["auth_token"] = HIDDEN
        return record

    def set_twilio(self, values: dict) -> None:
        """Replace the whole record (an omitted field becomes None), as Auth0's PUT does;
        the token HIDDEN keeps the stored one, so a read-modify-write does not erase it."""
        with self.store.transaction() as db:
            record = {name: values.get(name) for name in TWILIO_FIELDS}
            token = record["auth_token"]
            if token == HIDDEN:
                record["auth_token"] = self._get("twilio", db)["auth_token"]
            elif token is not None:
                record["auth_token"] = self.cipher.encrypt(token.encode()).decode()
            self._put("twilio", record, db)

    def set_templates(self, templates: dict) -> None:
        problems = [problem for name in TEMPLATE_FIELDS
                    for problem in liquid_problems(name, templates[name])]
        if problems:
            raise ValidationError("Invalid template", problems)
        self._put("templates", {name: templates[name] for name in TEMPLATE_FIELDS})

    def phone_settings(self) -> dict:
        return self._get("phone_settings")

    def set_phone_settings(self, settings: dict) -> None:
        self._put("phone_settings", dict(settings))

    def policies(self) -> list[str]:
        return self._get("policies")

    def set_policies(self, policies: list[str]) -> None:
        self._put("policies", list(policies))

    def phone_provider_protection(self) -> dict:
        return self._get("phone_provider_protection")

    def set_phone_provider_protection(self, protection: dict) -> None:
        self._put("phone_provider_protection", {"type": protection["type"]})

    def update_tenant(self, changes: dict) -> dict:
        """Apply a PATCH: the sent fields replace the stored ones; flags are merged."""
        with self.store.transaction() as db:
            tenant = self._get("tenant", db)
            for name, value in changes.items():
                if name == "flags":
                    tenant["flags"].update(value)
                else:
                    tenant[name] = value
            self._put("tenant", tenant, db)
        return tenant

    def update_delivery_settings(self, changes: dict) -> dict:
        """Apply a PATCH; country codes are checked against the regions phonenumbers knows
        and stored upper-case."""
        changes = dict(changes)
        if "allowed_countries" in changes:
            changes["allowed_countries"] = _countries(changes["allowed_countries"])
        with self.store.transaction() as db:
            settings = self._get("delivery", db)
            settings.update(changes)
            self._put("delivery", settings, db)
        return settings

    # --- storage ---------------------------------------------------------------------------

    def _get(self, key: str, db=None):
        """The document `key`; read in `db` (to be changed and written back), under a lock
        that keeps other changes of it out until `db` ends, so none is lost. (A lock rather
        than FOR UPDATE: a document still at its default has no row to lock.)"""
        sql, params = "SELECT value FROM phone_config WHERE key = ?", (key,)
        if db is not None:
            self.store.lock(db, f"phone_config {key}")
        row = (db.execute(sql, params).fetchone() if db is not None
               else self.store.query_one(sql, params))
        if row is None:
            return copy.deepcopy(DEFAULTS[key])
        value = json.loads(row["value"])
        if isinstance(value, dict) and isinstance(DEFAULTS[key], dict):
            # keys added to a default after a row was written read as their default
            return {**copy.deepcopy(DEFAULTS[key]), **value}
        return value

    def _put(self, key: str, value, db=None) -> None:
        sql = ("INSERT INTO phone_config (key, value) VALUES (?, ?) "
               "ON CONFLICT (key) DO UPDATE SET value = excluded.value")
        if db is not None:
            db.execute(sql, (key, json.dumps(value)))
            return
        with self.store.transaction() as db:
            db.execute(sql, (key, json.dumps(value)))

    def _decrypt(self, token: str) -> str:
        try:
            return self.cipher.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ConfigError("The stored Twilio auth token cannot be decrypted with the "
                              "configured key; was HOOKENGINE_SECRET_KEY changed?") from None


def _countries(codes: list[str]) -> list[str]:
    """Upper-cased, each a region phonenumbers knows, no duplicates; else one 400 naming
    every bad code."""
    upper = [code.upper() for code in codes]
    unknown = [code for code in codes if code.upper() not in phonenumbers.SUPPORTED_REGIONS]
    repeated = sorted({code for code in upper if upper.count(code) > 1})
    problems = [f"allowed_countries: {code!r} is not an ISO 3166-1 alpha-2 country code with "
                "phone numbers (e.g. US, FR, GB)" for code in unknown]
    problems += [f"allowed_countries: {code} is listed more than once" for code in repeated]
    if problems:
        raise ValidationError("Invalid delivery settings", problems)
    return upper
