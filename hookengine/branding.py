"""The Unified Phone Experience (Auth0's /branding/phone/*): the tenant's phone provider and
its phone message templates, and the rules of their fields.

There is at most one provider (Auth0: "one phone provider for all SMS and voice communications
per tenant"). Its credentials are encrypted with the engine's Fernet key and never leave this
module except through `provider()`, which the delivery pipeline calls. A template type without
a stored template uses its built-in default; the list shows those defaults without an id.
"""

from __future__ import annotations

import json
import secrets as stdlib_secrets
import string

from cryptography.fernet import Fernet, InvalidToken

from hookengine.clock import utc_now
from hookengine.errors import BadRequest, ConfigError, Conflict, NotFound, ValidationError
from hookengine.phone.templates import DEFAULT_BODIES, liquid_problems
from hookengine.validation import schema_problems

CHANNEL = "phone"
PROVIDER_NAMES = ("twilio", "custom")
DELIVERY_METHODS = ("text", "voice")
# Each kind of row: its table, and the error code of an id it does not hold.
_KINDS = {"provider": ("phone_providers", "inexistent_phone_provider"),
          "template": ("phone_templates", "inexistent_phone_template")}
TEMPLATE_TYPES = ("otp_verify", "otp_enroll", "change_password", "blocked_account",
                  "password_breach")

# --- the fields' rules (the API serves the same schemas in its OpenAPI document) -------------

_DELIVERY = {"type": "array", "minItems": 1, "uniqueItems": True,
             "items": {"type": "string", "enum": list(DELIVERY_METHODS)},
             "description": "Channels the provider sends: text (SMS) and/or voice."}
PROVIDER_CONFIGURATION = {
    "type": "object",
    "additionalProperties": False,
    "required": ["delivery_methods"],
    "properties": {
        "sid": {"type": "string", "minLength": 1, "maxLength": 255,
                "description": "Twilio Account SID (twilio)."},
        "default_from": {"type": "string", "minLength": 1, "maxLength": 64,
                         "description": "Sender number; required for voice (twilio)."},
        "mssid": {"type": "string", "minLength": 1, "maxLength": 255,
                  "description": "Twilio Messaging Service SID, used for SMS instead of "
                                 "default_from (twilio)."},
        "delivery_methods": _DELIVERY},
}
PROVIDER_CREDENTIALS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"auth_token": {"type": "string", "minLength": 1, "maxLength": 255}},
    "description": "twilio: {auth_token}; custom: {}. Write-only: never returned.",
}
_PROVIDER_FIELDS = {
    "name": {"type": "string", "enum": list(PROVIDER_NAMES),
             "description": "twilio: sent through Twilio; custom: through the enabled "
                            "send-phone-message hook."},
    "disabled": {"type": "boolean"},
    "configuration": PROVIDER_CONFIGURATION,
    "credentials": PROVIDER_CREDENTIALS,
}
PROVIDER_CREATE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "credentials", "configuration"],
    "properties": _PROVIDER_FIELDS,
    "examples": [{"name": "twilio", "disabled": False,
                  "configuration": {"sid": "AC0123456789", "default_from": "+15550001111",
                                    "delivery_methods": ["text", "voice"]},
                  "credentials": {"auth_token": "an auth token"}}],
}
PROVIDER_UPDATE = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": _PROVIDER_FIELDS,
    "examples": [{"disabled": True}],
}
PROVIDER = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string"}, "channel": {"const": CHANNEL},
        "name": _PROVIDER_FIELDS["name"], "disabled": {"type": "boolean"},
        "configuration": PROVIDER_CONFIGURATION,
        "created_at": {"type": "string"}, "updated_at": {"type": "string"}},
}

_BODY_TEXT = {"type": "string", "minLength": 1, "maxLength": 20000}
TEMPLATE_BODY = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {"text": {**_BODY_TEXT, "description": "Liquid, for text messages."},
                   "voice": {**_BODY_TEXT, "description": "Liquid, for voice calls."}},
}
TEMPLATE_CONTENT = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "syntax": {"const": "liquid"},
        # "" is what Auth0 shows on defaults: no sender of the template's own.
        "from": {"type": "string", "maxLength": 16,
                 "description": "Sender number; the provider's default_from when empty."},
        "body": TEMPLATE_BODY},
}
_TYPE = {"type": "string", "enum": list(TEMPLATE_TYPES)}
TEMPLATE_CREATE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type"],
    "properties": {"type": _TYPE, "disabled": {"type": "boolean"}, "content": TEMPLATE_CONTENT},
    "examples": [{"type": "otp_verify", "disabled": False, "content": {
        "from": "+15550001111", "body": {"text": "{{ code }} is your code",
                                         "voice": "Your code is {{ pause }} {{ code }}"}}}],
}
TEMPLATE_UPDATE = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {"disabled": {"type": "boolean"}, "content": TEMPLATE_CONTENT},
    "examples": [{"content": {"body": {"text": "{{ code }} is your code"}}}],
}
TEMPLATE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "disabled", "content"],
    "properties": {
        "id": {"type": "string", "description": "Absent on a built-in default."},
        "channel": {"const": CHANNEL}, "customizable": {"type": "boolean"}, "type": _TYPE,
        "disabled": {"type": "boolean"}, "content": TEMPLATE_CONTENT,
        "created_at": {"type": "string"}, "updated_at": {"type": "string"}},
}

# Liquid, to check bodies when they are saved (rendering is the delivery pipeline's).


class BrandingStore:
    """The tenant's phone provider (credentials encrypted) and its phone templates."""

    def __init__(self, store, cipher: Fernet):
        self.store = store
        self.cipher = cipher

    # --- provider ---------------------------------------------------------------------------

    def provider(self) -> dict | None:
        """The one provider with its credentials decrypted (for delivery only), or None."""
        row = self.store.query_one("SELECT * FROM phone_providers WHERE channel = ?",
                                   (CHANNEL,))
        if row is None:
            return None
        return {**_provider(row), "credentials": self._decrypt(row["credentials"]),
                "delivery_methods": json.loads(row["configuration"])["delivery_methods"]}

    def providers(self, disabled: bool | None = None) -> list[dict]:
        rows = self.store.query("SELECT * FROM phone_providers ORDER BY id")
        return [_provider(row) for row in rows if disabled in (None, bool(row["disabled"]))]

    def get_provider(self, provider_id: str) -> dict:
        return _provider(self._row(self.store.connection(), "provider", provider_id,
                                   locked=False))

    def create_provider(self, data: dict) -> dict:
        """Store the tenant's provider; 409 when it has one (update that one instead)."""
        _check(PROVIDER_CREATE, data, "Invalid phone provider")
        _check_provider(data["name"], data["configuration"], data["credentials"])
        now = utc_now()
        provider_id = _new_id("pro_")
        with self.store.transaction() as db:
            self.store.lock(db, "phone_providers")  # creates at once: one 201, then 409s
            if db.execute("SELECT 1 FROM phone_providers WHERE channel = ?",
                          (CHANNEL,)).fetchone():
                raise Conflict("Custom phone provider conflict: the tenant already has a phone "
                               "provider (one per tenant); update or delete it.",
                               error_code="phone_provider_conflict")
            db.execute("INSERT INTO phone_providers (id, channel, name, disabled, "
                       "configuration, credentials, created_at, updated_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (provider_id, CHANNEL, data["name"], bool(data.get("disabled", False)),
                        json.dumps(data["configuration"]),
                        self._encrypt(data["credentials"]), now, now))
        return self.get_provider(provider_id)

    def update_provider(self, provider_id: str, data: dict) -> dict:
        """Change the fields sent; the result must still be a usable provider."""
        _check(PROVIDER_UPDATE, data, "Invalid phone provider")
        with self.store.transaction() as db:
            row = self._row(db, "provider", provider_id)
            name = data.get("name", row["name"])
            configuration = data.get("configuration", json.loads(row["configuration"]))
            # Credentials belong to the kind of provider: a new kind starts without them.
            kept = self._decrypt(row["credentials"]) if name == row["name"] else {}
            credentials = data.get("credentials", kept)
            _check_provider(name, configuration, credentials)
            db.execute("UPDATE phone_providers SET name = ?, disabled = ?, configuration = ?, "
                       "credentials = ?, updated_at = ? WHERE id = ?",
                       (name, bool(data.get("disabled", row["disabled"])),
                        json.dumps(configuration), self._encrypt(credentials), utc_now(),
                        provider_id))
        return self.get_provider(provider_id)

    def delete_provider(self, provider_id: str) -> None:
        with self.store.transaction() as db:
            self._row(db, "provider", provider_id)
            db.execute("DELETE FROM phone_providers WHERE id = ?", (provider_id,))

    def _row(self, db, kind: str, row_id: str, locked: bool = True):
        """The row of a provider or template (`kind`); `locked` (read to be changed in
        `db`): until `db` ends."""
        table, error_code = _KINDS[kind]
        row = db.execute(f"SELECT * FROM {table} WHERE id = ?"
                         + (self.store.for_update if locked else ""), (row_id,)).fetchone()
        if row is None:
            # Auth0's text for an unknown provider or template (the OAS says otherwise).
            raise NotFound("Notification Resource not found", error_code=error_code)
        return row

    def _encrypt(self, credentials: dict) -> bytes:
        return self.cipher.encrypt(json.dumps(credentials).encode())

    def _decrypt(self, token: bytes) -> dict:
        try:
            return json.loads(self.cipher.decrypt(token))
        except InvalidToken:
            raise ConfigError("The phone provider's credentials cannot be decrypted with the "
                              "configured key; was HOOKENGINE_SECRET_KEY changed?") from None

    # --- templates --------------------------------------------------------------------------

    def template(self, type: str) -> dict:
        """The stored template of `type`, or its built-in default (no id); `content.from` is
        "" when the template has no sender of its own."""
        if type not in TEMPLATE_TYPES:
            raise ValueError(f"unknown phone template type {type!r}")
        row = self.store.query_one("SELECT * FROM phone_templates WHERE type = ?", (type,))
        template = _template(row) if row else default_template(type)
        template["content"].setdefault("from", "")  # always there for the pipeline
        return template

    def templates(self, disabled: bool | None = None) -> list[dict]:
        """Every type's template: the stored ones, then the defaults of the others."""
        rows = self.store.query("SELECT * FROM phone_templates ORDER BY id")
        stored = [_template(row) for row in rows]
        taken = {template["type"] for template in stored}
        listed = stored + [default_template(t) for t in TEMPLATE_TYPES if t not in taken]
        return [t for t in listed if disabled in (None, t["disabled"])]

    def get_template(self, template_id: str) -> dict:
        return _template(self._row(self.store.connection(), "template", template_id,
                                   locked=False))

    def create_template(self, data: dict) -> dict:
        """Store the template of a type; parts of the body not sent are the default's."""
        _check(TEMPLATE_CREATE, data, "Invalid phone template")
        content = data.get("content", {})
        body = {**DEFAULT_BODIES[data["type"]], **content.get("body", {})}
        _check_liquid(body)
        now = utc_now()
        template_id = _new_id("tem_")
        with self.store.transaction() as db:
            self.store.lock(db, f"phone_templates {data['type']}")  # one 201, then 409s
            if db.execute("SELECT 1 FROM phone_templates WHERE type = ?",
                          (data["type"],)).fetchone():
                raise Conflict("Phone template already configured for tenant: a "
                               f"{data['type']} template exists; update or delete it.",
                               error_code="phone_template_conflict")
            db.execute("INSERT INTO phone_templates (id, type, disabled, content, created_at, "
                       "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                       (template_id, data["type"], bool(data.get("disabled", False)),
                        json.dumps(_stored_content(content.get("from"), body)), now, now))
        return self.get_template(template_id)

    def update_template(self, template_id: str, data: dict) -> dict:
        """Change `disabled`, `from` or parts of the body; the type never changes."""
        _check(TEMPLATE_UPDATE, data, "Invalid phone template")
        sent = data.get("content", {})
        with self.store.transaction() as db:
            row = self._row(db, "template", template_id)
            content = json.loads(row["content"])
            body = {**content["body"], **sent.get("body", {})}
            _check_liquid(body)
            sender = sent["from"] if "from" in sent else content.get("from")
            self._write_template(db, template_id, _stored_content(sender, body),
                                 data.get("disabled", bool(row["disabled"])))
        return self.get_template(template_id)

    def reset_template(self, template_id: str) -> dict:
        """Back to the type's default body; `from` and `disabled` are kept (as Auth0)."""
        with self.store.transaction() as db:
            row = self._row(db, "template", template_id)
            content = json.loads(row["content"])
            self._write_template(db, template_id, _stored_content(
                content.get("from"), dict(DEFAULT_BODIES[row["type"]])), bool(row["disabled"]))
        return self.get_template(template_id)

    def delete_template(self, template_id: str) -> None:
        with self.store.transaction() as db:
            self._row(db, "template", template_id)
            db.execute("DELETE FROM phone_templates WHERE id = ?", (template_id,))

    def _write_template(self, db, template_id: str, content: dict, disabled: bool) -> None:
        db.execute("UPDATE phone_templates SET content = ?, disabled = ?, updated_at = ? "
                   "WHERE id = ?", (json.dumps(content), bool(disabled), utc_now(), template_id))

def default_template(type: str) -> dict:
    """The built-in template of `type`, as Auth0 lists one: no id, `from` empty."""
    return {"channel": CHANNEL, "customizable": True, "type": type, "disabled": False,
            "content": {"syntax": "liquid", "from": "",
                        "body": dict(DEFAULT_BODIES[type])}}


def _check_liquid(body: dict) -> None:
    problems = [p for key, text in body.items() for p in liquid_problems(f"content/body/{key}",
                                                                          text)]
    if problems:
        raise ValidationError("Invalid Liquid template", problems,
                              error_code="invalid_template")


def _check(schema: dict, data, message: str) -> None:
    problems = schema_problems(schema, data)
    if problems:
        raise ValidationError(message, problems)


def _check_provider(name: str, configuration: dict, credentials: dict) -> None:
    """What the schema cannot say: what each kind of provider needs."""
    problems = []
    if name == "twilio":
        if "sid" not in configuration:
            problems.append("configuration: a twilio provider needs sid (the Account SID)")
        if "auth_token" not in credentials:
            problems.append("credentials: a twilio provider needs auth_token")
    elif credentials:
        problems.append("credentials: a custom provider takes none; send {} (its hook's "
                        "secrets hold what it needs)")
    if problems:
        raise ValidationError("Invalid phone provider", problems)
    if name == "twilio" and "voice" in configuration["delivery_methods"] \
            and "default_from" not in configuration:
        # Auth0's answer; Twilio places calls only from a number, never a Messaging Service.
        raise BadRequest("Bad Operation on Notification Resource: a twilio provider that "
                         "delivers voice needs configuration.default_from (calls cannot use "
                         "a Messaging Service).", error_code="invalid_body")


def _stored_content(sender: str | None, body: dict) -> dict:
    return {"from": sender, "body": body} if sender else {"body": body}


def _provider(row) -> dict:
    return {"id": row["id"], "channel": row["channel"], "name": row["name"],
            "disabled": bool(row["disabled"]),
            "configuration": json.loads(row["configuration"]),
            "created_at": row["created_at"], "updated_at": row["updated_at"]}


def _template(row) -> dict:
    content = json.loads(row["content"])
    return {"id": row["id"], "channel": CHANNEL, "customizable": True, "type": row["type"],
            "disabled": bool(row["disabled"]),
            "content": {"syntax": "liquid", **content},
            "created_at": row["created_at"], "updated_at": row["updated_at"]}


_ALPHABET = string.ascii_letters + string.digits


def _new_id(prefix: str) -> str:
    # Auth0's ids look like pro_6n3tVjusDnQuuf9f3S8L8Q: a prefix and 22 base62 characters.
    return prefix + "".join(stdlib_secrets.choice(_ALPHABET) for _ in range(22))
