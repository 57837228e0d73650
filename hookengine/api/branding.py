"""The Unified Phone Experience endpoints, shaped as Auth0's /api/v2/branding/phone/*: the
tenant's phone provider and its phone message templates, and test sends of each."""

from __future__ import annotations

from flask import Blueprint, url_for

from hookengine import branding
from hookengine.api.routes import engine, json_body, query_args, route
from hookengine.errors import BadRequest, Conflict
from hookengine.phone import templates
from hookengine.phone.delivery import Delivery, config_from

bp = Blueprint("branding", __name__, url_prefix="/api/v2")

PROVIDERS = "/branding/phone/providers"
TEMPLATES = "/branding/phone/templates"
# Not under /templates/: that path would also be /templates/{id} with the id "preview".
TEMPLATE_PREVIEW = "/branding/phone/template-preview"
# A delivery method of UPE is a message type of the Guardian phone factor.
MESSAGE_TYPES = {"text": "sms", "voice": "voice"}
SENT = {"code": 202, "message": "Test notification successfully sent for processing"}

DISABLED_QUERY = {"disabled": {"type": "boolean",
                               "description": "Only disabled (true) or enabled (false) ones."}}
_TRY_FIELDS = {
    # Auth0 takes numbers without their + (its recordings send 911234567890).
    "to": {"type": "string", "minLength": 1, "maxLength": 16, "pattern": r"^\+?[1-9][0-9]{1,14}$",
           "x-hint": "send a phone number with its country code, e.g. +14155550123"},
    "delivery_method": {"type": "string", "enum": list(branding.DELIVERY_METHODS),
                        "default": "text"},
}
PROVIDER_TRY = {"type": "object", "additionalProperties": False, "required": ["to"],
                "properties": _TRY_FIELDS,
                "examples": [{"to": "+14155550123", "delivery_method": "text"}]}
# Auth0's schema for a template's test allows other properties (additionalProperties: true).
TEMPLATE_TRY = {**PROVIDER_TRY, "additionalProperties": True}
TRY_RESPONSE = {"type": "object", "properties": {"code": {"const": 202},
                                                 "message": {"type": "string"}}}
PROVIDER_LIST = {"type": "object", "properties": {
    "providers": {"type": "array", "items": branding.PROVIDER}}}
TEMPLATE_LIST = {"type": "object", "properties": {
    "templates": {"type": "array", "items": branding.TEMPLATE}}}
PREVIEW_BODY = {
    "type": "object", "additionalProperties": False, "required": ["content"],
    "properties": {"content": branding.TEMPLATE_CONTENT},
    "examples": [{"content": {"body": {"text": "{{ code }} is your code for {{ friendly_name }}",
                                       "voice": "Your code is {{ pause }} {{ code }}"}}}],
}
_SHOWN = {"type": ["string", "null"], "description": "null when the part has problems."}
PREVIEW = {
    "type": "object", "additionalProperties": False, "required": ["body", "problems", "sample"],
    "properties": {
        "body": {"type": "object", "additionalProperties": False,
                 "properties": {"text": {**_SHOWN, "description": "The SMS, without pauses."},
                                "voice": {**_SHOWN, "description": "The call's words, "
                                          f"{templates.PAUSE_SHOWN} where it pauses."}}},
        "problems": {"type": "array", "items": {"type": "string"},
                     "description": "What a save would refuse, and what rendering found."},
        "sample": {"type": "object", "description": "The values rendered with: code, "
                   "language, user, and the tenant's friendly_name."}},
}


def deliver_test(engine, recipient: str, message_type: str, provider: dict,
                 template: dict) -> None:
    """Send one test message through the delivery pipeline's providers. `message_type` is
    "sms" or "voice"; `provider` is `BrandingStore.provider()` (credentials decrypted);
    `template` a template as `BrandingStore.template()` returns it."""
    Delivery.for_engine(engine).send_test(config_from(engine), recipient, message_type,
                                          provider, template)


# --- providers ------------------------------------------------------------------------------

@route(bp, PROVIDERS, "GET", summary="Get the phone provider", scope="read:phone_providers",
       response=PROVIDER_LIST, query=DISABLED_QUERY, tag="branding")
def get_phone_providers():
    """List the tenant's phone providers (at most one); credentials are never returned."""
    return {"providers": engine().branding.providers(query_args()["disabled"])}


@route(bp, PROVIDERS, "POST", summary="Configure the phone provider",
       scope="create:phone_providers", status=201, body=branding.PROVIDER_CREATE,
       response=branding.PROVIDER, tag="branding", errors=(409,))
def create_phone_provider():
    """Configure the tenant's one phone provider; 409 when it has one."""
    provider = engine().branding.create_provider(json_body())  # checked by the store
    return provider, 201, {"Location": url_for(".get_phone_provider", id=provider["id"])}


@route(bp, PROVIDERS + "/<id>", "GET", summary="Get a phone provider",
       scope="read:phone_providers", response=branding.PROVIDER, tag="branding")
def get_phone_provider(id):
    """Return the provider without its credentials."""
    return engine().branding.get_provider(id)


@route(bp, PROVIDERS + "/<id>", "PATCH", summary="Update the phone provider",
       scope="update:phone_providers", body=branding.PROVIDER_UPDATE,
       response=branding.PROVIDER, tag="branding")
def update_phone_provider(id):
    """Change the provider's name, disabled state, configuration or credentials."""
    return engine().branding.update_provider(id, json_body())


@route(bp, PROVIDERS + "/<id>", "DELETE", summary="Delete the phone provider",
       scope="delete:phone_providers", status=204, tag="branding")
def delete_phone_provider(id):
    """Delete the provider and its credentials."""
    engine().branding.delete_provider(id)
    return "", 204


@route(bp, PROVIDERS + "/<id>/try", "POST", summary="Send a test message through the provider",
       scope="create:phone_providers", status=202, body=PROVIDER_TRY, response=TRY_RESPONSE,
       tag="branding", errors=(409, 502))
def try_phone_provider(id):
    """Send the otp_verify template to `to` through this provider."""
    engine().branding.get_provider(id)  # 404 for an unknown id before looking at the body
    body = json_body(PROVIDER_TRY)
    provider = engine().branding.provider()
    deliver_test(engine(), body["to"], _message_type(provider, body), provider,
                 engine().branding.template("otp_verify"))
    return SENT, 202


# --- templates ------------------------------------------------------------------------------

@route(bp, TEMPLATES, "GET", summary="Get the phone templates", scope="read:phone_templates",
       response=TEMPLATE_LIST, query=DISABLED_QUERY, tag="branding")
def get_phone_templates():
    """Every type's template: the configured ones, and the defaults (without id) of others."""
    return {"templates": engine().branding.templates(query_args()["disabled"])}


@route(bp, TEMPLATES, "POST", summary="Configure a phone template",
       scope="create:phone_templates", status=201, body=branding.TEMPLATE_CREATE,
       response=branding.TEMPLATE, tag="branding", errors=(409,))
def create_phone_template():
    """Configure the template of a type; 409 when that type has one."""
    template = engine().branding.create_template(json_body())  # checked by the store
    return template, 201, {"Location": url_for(".get_phone_template", id=template["id"])}


@route(bp, TEMPLATES + "/<id>", "GET", summary="Get a phone template",
       scope="read:phone_templates", response=branding.TEMPLATE, tag="branding")
def get_phone_template(id):
    """Return one configured template."""
    return engine().branding.get_template(id)


@route(bp, TEMPLATES + "/<id>", "PATCH", summary="Update a phone template",
       scope="update:phone_templates", body=branding.TEMPLATE_UPDATE,
       response=branding.TEMPLATE, tag="branding")
def update_phone_template(id):
    """Change the template's disabled state, sender or body (its type never changes)."""
    return engine().branding.update_template(id, json_body())


@route(bp, TEMPLATES + "/<id>", "DELETE", summary="Delete a phone template",
       scope="delete:phone_templates", status=204, tag="branding")
def delete_phone_template(id):
    """Delete the template: its type goes back to the default."""
    engine().branding.delete_template(id)
    return "", 204


# hookengine's own (Auth0 has no such route); its scope lets the Guardian templates' editor use
# it too, since their Liquid and variables are the same.
@route(bp, TEMPLATE_PREVIEW, "POST", summary="Render a template's content without sending",
       scope=("read:phone_templates", "read:guardian_factors"), body=PREVIEW_BODY,
       response=PREVIEW, tag="branding")
def preview_phone_template():
    """Render each part of `content.body` as a delivery would, with sample values; Liquid
    problems are answered as data (200), for an editor to show while the user types."""
    content = json_body(PREVIEW_BODY)["content"]
    friendly_name = engine().phoneconfig.tenant().get("friendly_name") or ""
    body, problems = templates.preview(content.get("body", {}), friendly_name)
    return {"body": body, "problems": problems,
            "sample": {**templates.SAMPLE, "friendly_name": friendly_name}}


# No body schema: the SDK sends {} and Auth0 ignores what is sent.
@route(bp, TEMPLATES + "/<id>/reset", "PATCH", summary="Reset a phone template's body",
       scope="update:phone_templates", response=branding.TEMPLATE, tag="branding")
def reset_phone_template(id):
    """Restore the type's default body, keeping the template's sender."""
    return engine().branding.reset_template(id)


@route(bp, TEMPLATES + "/<id>/try", "POST", summary="Send a test message with a template",
       scope="create:phone_templates", status=202, body=TEMPLATE_TRY, response=TRY_RESPONSE,
       tag="branding", errors=(409, 502))
def try_phone_template(id):
    """Send this template to `to` through the tenant's provider."""
    template = engine().branding.get_template(id)
    body = json_body(TEMPLATE_TRY)
    provider = engine().branding.provider()
    if provider is None:
        raise Conflict("Phone provider has not been configured: configure one (POST "
                       f"/api/v2{PROVIDERS}) to send a test.",
                       error_code="phone_provider_not_configured")
    deliver_test(engine(), body["to"], _message_type(provider, body), provider, template)
    return SENT, 202


def _message_type(provider: dict, body: dict) -> str:
    """The test's message type; 409/400 when this provider cannot send it now."""
    if provider["disabled"]:
        raise Conflict("The phone provider is disabled; enable it to send a test.",
                       error_code="phone_provider_disabled")
    method = body.get("delivery_method", "text")
    if method not in provider["delivery_methods"]:
        raise BadRequest(f"The phone provider does not deliver {method}; its delivery_methods "
                         f"are {', '.join(provider['delivery_methods'])}.",
                         error_code="invalid_body")
    return MESSAGE_TYPES[method]
