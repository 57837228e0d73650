"""Phone MFA delivery: the identity platform's production path, and the development outbox."""

from __future__ import annotations

import time

from flask import Blueprint, request

from hookengine.api.routes import engine, json_body, route
from hookengine.errors import HookEngineError
from hookengine.phone.delivery import DELIVERY_BODY, Delivery, config_from
from hookengine.phone.errors import DeliveryRefused
from hookengine.phone.idempotency import IdempotencyKeys
from hookengine.phone.providers import DevOutbox

bp = Blueprint("phone", __name__, url_prefix="/api/v2")

DELIVERY_EXAMPLE = {"recipient": "+14155550123", "user_id": "auth0|5f7c8ec7c33c6c004bbafe82",
                    "message_type": "sms", "action": "enrollment", "code": "123456",
                    "ip": "203.0.113.7"}
DELIVERY_RESPONSE = {
    "type": "object", "required": ["status", "provider", "message_type", "rate_limit"],
    "properties": {
        "status": {"type": "string", "enum": ["sent"]},
        "provider": {"type": "string",
                     "enum": ["auth0", "twilio", "phone-message-hook", "custom"]},
        "message_type": {"type": "string", "enum": ["sms", "voice"]},
        "log_id": {"type": ["string", "null"]},
        "execution_id": {"type": "string", "description": "When a hook sent the message."},
        "rate_limit": {"type": "object", "properties": {
            "remaining": {"type": "integer"}, "reset": {"type": "integer"}}},
    },
}
OUTBOX = {"type": "array", "items": {"type": "object", "properties": {
    "id": {"type": "string"}, "recipient": {"type": "string"}, "text": {"type": "string"},
    "message_type": {"type": "string"}, "action": {"type": "string"},
    "user_id": {"type": "string"}, "created_at": {"type": "string"}}}}


@route(bp, "/guardian/factors/phone/deliveries", "POST", scope="send:phone_messages",
       tag="phone", body={**DELIVERY_BODY, "examples": [DELIVERY_EXAMPLE]},
       response=DELIVERY_RESPONSE, errors=(403, 404, 409, 429, 502),
       summary="Send an MFA code the identity platform generated, by SMS or voice")
def deliver():
    """Send the code through the configured provider; an Idempotency-Key retry gets the
    first answer back instead of a second message."""
    services = engine()
    config, delivery = config_from(services), Delivery.for_engine(services)
    try:
        body = json_body()
    except HookEngineError as error:  # every refusal is in the tenant logs, even this one
        delivery.refuse_unreadable(config, error, request.host)
        raise
    key = request.headers.get("Idempotency-Key")
    keys = IdempotencyKeys(services.store)
    if key is not None:
        replay = keys.begin(key, body, time.time())
        if replay is not None:
            return replay.response()
    try:
        answer, headers = delivery.deliver(config, body, request.host)
    except DeliveryRefused as refusal:
        if key is not None:
            keys.abandon(key)
        return refusal.to_dict(), refusal.status_code, refusal.headers
    except BaseException:
        if key is not None:
            keys.abandon(key)
        raise
    if key is not None:
        keys.finish(key, 200, answer, headers)
    return answer, 200, headers


@route(bp, "/guardian/factors/phone/dev-outbox", "GET", scope="read:guardian_factors",
       tag="phone", response=OUTBOX,
       summary="Messages the development provider (auth0) has sent, oldest first")
def dev_outbox():
    return DevOutbox(engine().store).messages()
