"""Vonage stand-in: SMS (rest.nexmo.com /sms/json) and Voice (api.nexmo.com /v1/calls)."""
import hmac
import math
import re
import uuid
from decimal import Decimal

import jwt
from flask import Flask, request

TEST_API_KEY = "abcd1234"
TEST_API_SECRET = "abcdef0123456789"
TEST_APPLICATION_ID = "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab"
# What `python -m standins vonage` prints (vonage_voice.py's private key is made per test run).
ENV = {"VONAGE_API_KEY": TEST_API_KEY, "VONAGE_API_SECRET": TEST_API_SECRET,
       "VONAGE_FROM": "447700900001"}

# Vonage numbers are E.164 without the "+" (sms.yml NewMessage.to, vonage_utils PhoneNumber).
NUMBER = re.compile(r"^[1-9]\d{6,14}$")
ALPHANUMERIC_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
PRICE = Decimal("0.03330000")


def sms_error(status, text):
    """Answer as the SMS API does: HTTP 200 with a non-zero status in the body."""
    return {"message-count": "1", "messages": [{"status": status, "error-text": text}]}, 200


def api_error(status, slug, title, detail, **extra):
    """Answer as the newer Vonage APIs (Voice) do: {type, title, detail, instance}."""
    body = {"type": "https://developer.nexmo.com/api-errors#" + slug, "title": title,
            "detail": detail, "instance": str(uuid.uuid4())}
    body.update(extra)
    return body, status


def create_app(api_keys=None, applications=None, balance="10.00000000"):
    """Build the stand-in.

    `api_keys` maps API key to secret (SMS); `applications` maps application id to the
    public key PEM that verifies its JWTs (Voice).
    """
    api_keys = dict(api_keys if api_keys is not None else {TEST_API_KEY: TEST_API_SECRET})
    applications = dict(applications or {})
    state = {"balance": Decimal(balance)}
    app = Flask(__name__)

    @app.errorhandler(404)
    def unknown_path(err):
        return api_error(404, "not-found", "Not Found", "The requested resource does not exist")

    @app.errorhandler(405)
    def wrong_method(err):
        return api_error(405, "method-not-allowed", "Method Not Allowed",
                         "The method is not allowed for this resource")

    @app.post("/sms/json")
    def send_sms():
        # vonage 4.x sends a form body with Basic auth; older clients put api_key and
        # api_secret in the form or a JSON body, as sms.yml describes. Accept all three.
        params = request.form.to_dict() or request.get_json(silent=True) or {}
        auth = request.authorization
        if auth is not None and auth.type == "basic":
            key, secret = auth.username, auth.password
        else:
            key, secret = params.get("api_key"), params.get("api_secret")
        if not key or not secret:
            return sms_error("2", "Missing api_key" if not key else "Missing api_secret")
        if key not in api_keys or not hmac.compare_digest(api_keys[key], secret):
            return sms_error("4", "Bad Credentials")
        for name in ("from", "to", "text"):
            if not params.get(name):
                return sms_error("2", "Missing %s param" % name)
        to, sender, text = str(params["to"]), str(params["from"]), str(params["text"])
        if not NUMBER.match(to):
            return sms_error("3", "Invalid to address")
        if not (NUMBER.match(sender) or ALPHANUMERIC_SENDER.match(sender)):
            return sms_error("15", "Illegal Sender Address - rejected")
        parts = 1 if len(text) <= 160 else math.ceil(len(text) / 153)
        messages = []
        for _ in range(parts):  # a long text is split and each part is billed
            state["balance"] -= PRICE
            messages.append({
                "to": to, "message-id": uuid.uuid4().hex[:16].upper(), "status": "0",
                "remaining-balance": "%.8f" % state["balance"], "message-price": str(PRICE),
                "network": "23410",
            })
        return {"message-count": str(parts), "messages": messages}, 200

    @app.post("/v1/calls")
    def create_call():
        application_id = verified_application(applications)
        if application_id is None:
            return api_error(401, "unauthorized", "Unauthorized",
                             "You did not provide correct credentials.")
        call = request.get_json(silent=True)
        if not isinstance(call, dict):
            return api_error(400, "invalid-json", "Invalid JSON",
                             "The request body did not contain valid JSON")
        problems = call_problems(call)
        if problems:
            return api_error(400, "validation", "Bad Request", "The request failed due to "
                             "validation errors", invalid_parameters=problems)
        return {"uuid": str(uuid.uuid4()), "status": "started", "direction": "outbound",
                "conversation_uuid": "CON-" + str(uuid.uuid4())}, 201

    return app


def verified_application(applications):
    """Return the application id of a valid RS256 Bearer JWT, or None."""
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer "):
        return None
    token = auth[len("Bearer "):]
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
        public_key = applications.get(claims.get("application_id"))
        if public_key is None:
            return None
        # The signature, expiry and issue time all have to hold, as at Vonage.
        jwt.decode(token, public_key, algorithms=["RS256"], options={"require": ["exp", "iat"]})
    except jwt.PyJWTError:
        return None
    return claims["application_id"]


def call_problems(call):
    """List what is wrong with a create-call body, as Vonage's invalid_parameters."""
    problems = []
    to = call.get("to")
    if not isinstance(to, list) or not to:
        problems.append({"name": "to", "reason": "is required"})
    else:
        for endpoint in to:
            if endpoint.get("type") == "phone" and not NUMBER.match(str(endpoint.get("number"))):
                problems.append({"name": "to.number", "reason": "must be E.164 without '+'"})
    sender = call.get("from") or {}
    if not call.get("random_from_number") and not NUMBER.match(str(sender.get("number"))):
        problems.append({"name": "from.number", "reason": "must be E.164 without '+'"})
    ncco = call.get("ncco")
    if ncco is None and not call.get("answer_url"):
        problems.append({"name": "ncco", "reason": "ncco or answer_url is required"})
    elif ncco is not None and not any(
            a.get("action") == "talk" and a.get("text") for a in ncco if isinstance(a, dict)):
        problems.append({"name": "ncco", "reason": "needs a talk action with text"})
    return problems
