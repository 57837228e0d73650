"""The five extensibility points: entry function, sample payload, payload checks, response."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlsplit

from hookengine.errors import NotFound, ValidationError

CONNECTION = {"id": "con_xxxxxxxxxxxxxxxx", "name": "Username-Password-Authentication",
              "tenant": "my-tenant"}


@dataclass(frozen=True)
class Trigger:
    """One extensibility point; `params` are the entry function's arguments, in order."""

    id: str
    entry_function: str
    params: tuple[str, ...]
    description: str
    sample_payload: dict
    blocking: bool
    check: Callable[[dict, list[str]], None] = field(repr=False)
    shape_response: Callable[[object], object] = field(repr=False, default=lambda r: r)
    # What a new hook's code returns (the editor's "New hook" starts from `template()`).
    starter_return: str = "{}"

    def signature(self) -> str:
        return f"{self.entry_function}({', '.join(self.params)})"

    def describe(self) -> dict:
        return {"id": self.id, "entry_function": self.entry_function,
                "signature": f"def {self.signature()}", "params": list(self.params),
                "blocking": self.blocking, "description": self.description,
                "payload": copy.deepcopy(self.sample_payload), "template": self.template()}

    def template(self) -> str:
        """A new hook's script: the PEP 723 block naming the trigger, and the entry function."""
        return (f'# /// script\n# dependencies = []\n# [tool.hookengine]\n'
                f'# trigger = "{self.id}"\n# secrets = []\n# ///\n\n\n'
                f'def {self.signature()}:\n    """{self.description}"""\n'
                f'    print("{self.entry_function} called")\n'
                f'    return {self.starter_return}\n')

    def validate(self, payload) -> dict:
        """Return the payload, or raise 400 listing every problem (like Auth0's harness)."""
        problems: list[str] = []
        if not isinstance(payload, dict):
            raise ValidationError(f"Invalid payload for {self.id}",
                                  [f"payload must be an object with {', '.join(self.params)}"])
        unknown = sorted(set(payload) - set(self.params))
        problems += [f"payload.{k} is not a parameter of {self.signature()}" for k in unknown]
        self.check(payload, problems)
        if problems:
            raise ValidationError(f"Invalid payload for {self.id}", problems)
        return payload

    def arguments(self, payload: dict) -> list:
        """Positional arguments for the entry function; a missing context is {}."""
        return [payload.get(p, {} if p == "context" else None) for p in self.params]


# --- payload checks: each appends "payload.x must ..." strings, so every problem is reported.

def _expect(problems, value, path, kinds, what, required=True):
    if value is None and not required:
        return False
    if not isinstance(value, kinds) or isinstance(value, bool) and bool not in _tuple(kinds):
        problems.append(f"{path} must be {what}")
        return False
    return True


def _tuple(kinds):
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _one_of(problems, value, path, choices):
    if value not in choices:
        problems.append(f"{path} must be one of {', '.join(choices)} (got {value!r})")


def _check_phone_message(payload, problems):
    _expect(problems, payload.get("recipient"), "payload.recipient", str, "a string")
    _expect(problems, payload.get("text"), "payload.text", str, "a string")
    context = payload.get("context")
    if not _expect(problems, context, "payload.context", dict, "an object"):
        return
    _one_of(problems, context.get("message_type"), "payload.context.message_type",
            ("sms", "voice"))
    _one_of(problems, context.get("action"), "payload.context.action",
            ("enrollment", "second-factor-authentication"))
    for name in ("language", "code", "ip", "user_agent"):
        _expect(problems, context.get(name), f"payload.context.{name}", str, "a string")
    _expect(problems, context.get("user"), "payload.context.user", dict, "an object")
    client = context.get("client")
    if _expect(problems, client, "payload.context.client", dict, "an object", required=False):
        _expect(problems, client.get("client_id"), "payload.context.client.client_id", str,
                "a string")
        _expect(problems, client.get("name"), "payload.context.client.name", str, "a string")
        _expect(problems, client.get("client_metadata"),
                "payload.context.client.client_metadata", dict, "an object", required=False)


def _check_credentials_exchange(payload, problems):
    client = payload.get("client")
    if _expect(problems, client, "payload.client", dict, "an object"):
        for name in ("id", "name"):
            _expect(problems, client.get(name), f"payload.client.{name}", str, "a string")
    scope = payload.get("scope")
    if scope is not None and not (isinstance(scope, list)
                                  and all(isinstance(s, str) for s in scope)):
        problems.append("payload.scope must be an array of strings or null")
    _expect(problems, payload.get("audience"), "payload.audience", str, "a string")
    _expect(problems, payload.get("context"), "payload.context", dict, "an object",
            required=False)


def _check_user_event(payload, problems):
    _expect(problems, payload.get("user"), "payload.user", dict, "an object")
    context = payload.get("context")
    if _expect(problems, context, "payload.context", dict, "an object"):
        _expect(problems, context.get("connection"), "payload.context.connection", dict,
                "an object")


# --- responses

RESERVED_CLAIM_HOSTS = ("auth0.com", "webtask.io", "webtask.run")


def _is_namespaced(claim: str) -> bool:
    parts = urlsplit(claim)
    host = (parts.hostname or "").lower()
    return parts.scheme in ("http", "https") and bool(host) and not any(
        host == h or host.endswith("." + h) for h in RESERVED_CLAIM_HOSTS)


def _shape_access_token(result):
    """Only `scope` and namespaced claims reach the access token (Auth0's rule)."""
    if not isinstance(result, dict):
        raise TypeError("credentials_exchange must return an object of access-token claims")
    return {k: v for k, v in result.items() if k == "scope" or _is_namespaced(k)}


def _shape_registration(result):
    """Only user.user_metadata and user.app_metadata are applied to the new user."""
    if result is None:
        return {}
    user = result.get("user") if isinstance(result, dict) else None
    if not isinstance(user, dict):
        raise TypeError('pre_user_registration must return {"user": {"user_metadata": ..., '
                        '"app_metadata": ...}} or None')
    shaped = {}
    for key in ("user_metadata", "app_metadata"):
        if key in user:
            metadata = user[key]
            if not isinstance(metadata, dict):
                raise TypeError(f"user.{key} must be an object")
            bad = [k for k in metadata if k.startswith("$") or "." in k]
            if bad:
                raise TypeError(f"user.{key} property names must not start with $ or contain "
                                f"'.': {', '.join(bad)}")
            shaped[key] = metadata
    return {"user": shaped}


TRIGGERS = {t.id: t for t in (
    Trigger(
        id="send-phone-message", entry_function="send_phone_message",
        params=("recipient", "text", "context"), blocking=True,
        description="Send the MFA code by SMS or voice through a provider of your choice.",
        sample_payload={
            "recipient": "+15558675310",
            "text": "Here is your one time password: 999111",
            "context": {
                "message_type": "sms", "action": "enrollment", "language": "en",
                "code": "999111", "ip": "127.0.0.1", "user_agent": "Mozilla/5.0",
                "client": {"client_id": "1235", "name": "Test Application",
                           "client_metadata": {}},
                "user": {"user_id": "auth0|test12345", "name": "Billie Magnusson",
                         "email": "billie@email.com", "app_metadata": {},
                         "user_metadata": {}},
            },
        },
        check=_check_phone_message),
    Trigger(
        id="credentials-exchange", entry_function="credentials_exchange",
        params=("client", "scope", "audience", "context"), blocking=True,
        description="Change the access token issued for the client credentials grant.",
        sample_payload={
            "audience": "https://my-tenant.auth0.com/api/v2/",
            "client": {"id": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "name": "client-name",
                       "tenant": "my-tenant", "metadata": {"plan": "full"}},
            "scope": ["read:connections"],
        },
        check=_check_credentials_exchange, shape_response=_shape_access_token),
    Trigger(
        id="pre-user-registration", entry_function="pre_user_registration",
        params=("user", "context"), blocking=True,
        description="Set metadata on a new user, or refuse the signup.",
        sample_payload={
            "user": {"tenant": "my-tenant", "username": "user1", "password": "xxxxxxx",
                     "email": "user1@foo.com", "emailVerified": False,
                     "phoneNumber": "+15558675310", "phoneNumberVerified": False,
                     "user_metadata": {"hobby": "surfing"}, "app_metadata": {"plan": "full"}},
            "context": {"requestLanguage": "en-us", "connection": dict(CONNECTION)},
        },
        check=_check_user_event, shape_response=_shape_registration,
        starter_return='{"user": {"user_metadata": {}, "app_metadata": {}}}'),
    Trigger(
        id="post-user-registration", entry_function="post_user_registration",
        params=("user", "context"), blocking=False,
        description="React to a new user (notify, sync); the response is logged and ignored.",
        sample_payload={
            "user": {"id": "abc123", "tenant": "my-tenant", "username": "user1",
                     "email": "user1@foo.com", "emailVerified": True,
                     "phoneNumber": "+15558675310", "phoneNumberVerified": True,
                     "user_metadata": {"hobby": "surfing"}, "app_metadata": {"plan": "full"}},
            "context": {"requestLanguage": "en-us", "connection": dict(CONNECTION)},
        },
        check=_check_user_event),
    Trigger(
        id="post-change-password", entry_function="post_change_password",
        params=("user", "context"), blocking=False,
        description="React to a password change; the response is logged and ignored.",
        sample_payload={
            "user": {"id": "abc123", "username": "user1", "email": "user1@foo.com",
                     "last_password_reset": "2019-02-27T14:14:29.206Z"},
            "context": {"connection": dict(CONNECTION)},
        },
        check=_check_user_event),
)}


def get_trigger(trigger_id: str) -> Trigger:
    try:
        return TRIGGERS[trigger_id]
    except KeyError:
        raise NotFound(f"Trigger {trigger_id!r} does not exist; triggers are "
                       f"{', '.join(TRIGGERS)}.", error_code="inexistent_trigger") from None
