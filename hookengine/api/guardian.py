"""Guardian (MFA) factor endpoints, shaped as Auth0's, for the phone factor.

The `/phone/` endpoints and their deprecated `/sms/` twins read and write the same records:
Terraform writes the provider through one and the Twilio settings through the other.
"""

from __future__ import annotations

from flask import Blueprint

from hookengine import phoneconfig as rules
from hookengine.api.routes import engine, json_body, route
from hookengine.secrets import HIDDEN

bp = Blueprint("guardian", __name__, url_prefix="/api/v2")

READ, UPDATE = "read:guardian_factors", "update:guardian_factors"
FACTORS = "/guardian/factors"
TAG = "guardian"

FACTOR_LIST = {"type": "array", "items": {
    "type": "object", "additionalProperties": False,
    "properties": {"name": {"type": "string", "enum": list(rules.FACTORS)},
                   "enabled": {"type": "boolean"}, "trial_expired": {"type": "boolean"}}}}


def config():
    return engine().phoneconfig


@route(bp, FACTORS, "GET", summary="List the MFA factors", scope=READ,
       response=FACTOR_LIST, tag=TAG)
def list_factors():
    """Return every factor with its enabled flag (only sms has behaviour here)."""
    return config().factors()


@route(bp, f"{FACTORS}/<name>", "PUT", summary="Enable or disable an MFA factor",
       scope=UPDATE, body=rules.FACTOR_SET, response=rules.FACTOR_SET, tag=TAG)
def set_factor(name):
    """Set `enabled` of the factor `name`; 400 for a name that is not a factor."""
    enabled = json_body(rules.FACTOR_SET)["enabled"]
    config().set_factor(name, enabled)
    return {"enabled": enabled}


@route(bp, f"{FACTORS}/phone/message-types", "GET", summary="Get the phone message types",
       scope=READ, response=rules.MESSAGE_TYPES_SET, tag=TAG)
def get_message_types():
    return {"message_types": config().message_types()}


@route(bp, f"{FACTORS}/phone/message-types", "PUT", summary="Set the phone message types",
       scope=UPDATE, body=rules.MESSAGE_TYPES_SET, response=rules.MESSAGE_TYPES_SET, tag=TAG)
def set_message_types():
    """Accepted while sms is disabled too: Auth0's condition for its 404 is undocumented."""
    types = json_body(rules.MESSAGE_TYPES_SET)["message_types"]
    config().set_message_types(types)
    return {"message_types": types}


def _both(rule: str) -> tuple[str, str]:
    return f"{FACTORS}/phone{rule}", f"{FACTORS}/sms{rule}"


def _twin_routes(rule, method, summary, scope, body, response, view):
    """Declare `view` under /phone/ and under the deprecated /sms/ path."""
    for path in _both(rule):
        deprecated = " (deprecated twin of the /phone/ route)" if "/sms/" in path else ""
        named = _named(view, f"{view.__name__}_{path.split('/')[3]}")
        route(bp, path, method, summary=summary + deprecated, scope=scope, body=body,
              response=response, tag=TAG)(named)


def _named(view, name):
    def wrapper():
        return view()
    wrapper.__name__ = name
    wrapper.__doc__ = view.__doc__
    return wrapper


def get_provider():
    return {"provider": config().selected_provider()}


def set_provider():
    provider = json_body(rules.PROVIDER_SET)["provider"]
    config().set_provider(provider)
    return {"provider": provider}


def get_twilio():
    """The Twilio record; the auth token shows as _VALUE_NOT_SHOWN_ when set."""
    return config().twilio_masked()


def set_twilio():
    """Replace the record whole; echo the keys sent (the token masked), as Auth0 does."""
    sent = json_body(rules.TWILIO_SET)
    config().set_twilio(sent)
    if sent.get("auth_token") is not None:
        sent["auth_token"] = HIDDEN
    return sent


def get_templates():
    return config().templates()


def set_templates():
    """Both templates, each checked as Liquid (400 with Liquid's message and position)."""
    templates = json_body(rules.TEMPLATES_SET)
    config().set_templates(templates)
    return templates


_PROVIDER = rules.PROVIDER_SET
_twin_routes("/selected-provider", "GET", "Get the phone factor's provider", READ, None,
             _PROVIDER, get_provider)
_twin_routes("/selected-provider", "PUT", "Set the phone factor's provider", UPDATE,
             _PROVIDER, _PROVIDER, set_provider)
_twin_routes("/providers/twilio", "GET", "Get the Twilio settings", READ, None,
             rules.TWILIO, get_twilio)
_twin_routes("/providers/twilio", "PUT", "Replace the Twilio settings", UPDATE,
             rules.TWILIO_SET, rules.TWILIO, set_twilio)
_twin_routes("/templates", "GET", "Get the enrollment and verification templates", READ,
             None, rules.TEMPLATES_SET, get_templates)
_twin_routes("/templates", "PUT", "Set the enrollment and verification templates", UPDATE,
             rules.TEMPLATES_SET, rules.TEMPLATES_SET, set_templates)


@route(bp, f"{FACTORS}/phone/settings", "GET", summary="Get the phone OTP settings",
       scope=READ, response=rules.PHONE_SETTINGS_SET, tag=TAG)
def get_phone_settings():
    """Stored for the identity platform that generates codes; hookengine does not."""
    return config().phone_settings()


@route(bp, f"{FACTORS}/phone/settings", "PUT", summary="Set the phone OTP settings",
       scope=UPDATE, body=rules.PHONE_SETTINGS_SET, response=rules.PHONE_SETTINGS_SET,
       tag=TAG)
def set_phone_settings():
    settings = json_body(rules.PHONE_SETTINGS_SET)
    config().set_phone_settings(settings)
    return settings


DELIVERY = f"{FACTORS}/phone/delivery-settings"
DELIVERY_SETTINGS = {"type": "object", "properties": rules.DELIVERY_PATCH["properties"]}


@route(bp, DELIVERY, "GET", summary="Get the phone delivery settings (hookengine's own)",
       scope=READ, response=DELIVERY_SETTINGS, tag=TAG)
def get_delivery_settings():
    """Allowed countries and the per-user token bucket of the delivery endpoint."""
    return config().delivery_settings()


@route(bp, DELIVERY, "PATCH", summary="Change the phone delivery settings (hookengine's own)",
       scope=UPDATE, body=rules.DELIVERY_PATCH, response=DELIVERY_SETTINGS, tag=TAG)
def update_delivery_settings():
    return config().update_delivery_settings(json_body(rules.DELIVERY_PATCH))


@route(bp, "/guardian/policies", "GET", summary="Get the MFA policies", scope=READ,
       response=rules.POLICIES_SET, tag=TAG)
def get_policies():
    return config().policies()


@route(bp, "/guardian/policies", "PUT", summary="Set the MFA policies", scope=UPDATE,
       body=rules.POLICIES_SET, response=rules.POLICIES_SET, tag=TAG)
def set_policies():
    """Stored only: Terraform's auth0_guardian reads and writes them on every apply."""
    policies = json_body(rules.POLICIES_SET)
    config().set_policies(policies)
    return policies
