"""Infobip stand-in: SMS API `POST /sms/2/text/advanced` with `Authorization: App <api key>`."""
import hmac
import re
import uuid

from flask import Flask, request

TEST_API_KEY = "0123456789abcdef0123456789abcdef-01234567-89ab-cdef-0123-456789abcdef"
# What `python -m standins infobip` prints: an env file for infobip_sms.py's secrets.
ENV = {"INFOBIP_API_KEY": TEST_API_KEY, "INFOBIP_SENDER": "InfoSMS"}

# Infobip takes international numbers with or without the "+".
NUMBER = re.compile(r"^\+?[1-9]\d{6,14}$")
PENDING = {"groupId": 1, "groupName": "PENDING", "id": 26, "name": "PENDING_ACCEPTED",
           "description": "Message sent to next instance"}


def request_error(status, message_id, text, **extra):
    """Answer in Infobip's error shape: {"requestError": {"serviceException": {...}}}."""
    exception = {"messageId": message_id, "text": text}
    exception.update(extra)
    return {"requestError": {"serviceException": exception}}, status


def create_app(api_keys=None):
    """Build the stand-in; `api_keys` is the set of accepted API keys."""
    api_keys = set(api_keys if api_keys is not None else {TEST_API_KEY})
    app = Flask(__name__)

    @app.errorhandler(404)
    def unknown_path(err):
        return request_error(404, "NOT_FOUND", "Requested URL not found: " + request.path)

    @app.errorhandler(405)
    def wrong_method(err):
        return request_error(405, "METHOD_NOT_ALLOWED", "Request method not supported")

    @app.post("/sms/2/text/advanced")
    def send_sms():
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme != "App" or not any(hmac.compare_digest(key, k) for k in api_keys):
            return request_error(401, "UNAUTHORIZED", "Invalid login details")
        body = request.get_json(silent=True)
        problems = validation_errors(body)
        if problems:
            return request_error(400, "BAD_REQUEST", "Bad request", validationErrors=problems)
        sent = [{"messageId": uuid.uuid4().hex, "status": dict(PENDING), "to": d["to"]}
                for m in body["messages"] for d in m["destinations"]]
        return {"bulkId": uuid.uuid4().hex, "messages": sent}, 200

    return app


def validation_errors(body):
    """Map each bad field path to its problems, as Infobip's validationErrors does."""
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not messages:
        return {"messages": ["must not be empty"]}
    problems = {}
    for i, message in enumerate(body["messages"]):
        destinations = message.get("destinations")
        if not isinstance(destinations, list) or not destinations:
            problems["messages[%d].destinations" % i] = ["must not be empty"]
            continue
        for j, destination in enumerate(destinations):
            if not NUMBER.match(str(destination.get("to", ""))):
                problems["messages[%d].destinations[%d].to" % (i, j)] = [
                    "invalid destination address"]
        if not message.get("text"):
            problems["messages[%d].text" % i] = ["must not be blank"]
    return problems
