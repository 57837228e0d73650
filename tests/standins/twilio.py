"""Twilio stand-in: Messages and Calls (api.twilio.com) and Verify v2 (verify.twilio.com)."""
import hmac
import math
import re
import secrets
import uuid
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from email.utils import format_datetime

from flask import Flask, request

TEST_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
TEST_AUTH_TOKEN = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
TEST_SERVICE_SID = "VA" + "fedcba9876543210" * 2
TEST_MESSAGING_SERVICE_SID = "MG" + "00112233445566778899aabbccddeeff"
# What `python -m standins twilio` prints: an env file for the Twilio samples' secrets.
ENV = {"TWILIO_ACCOUNT_SID": TEST_ACCOUNT_SID, "TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN,
       "TWILIO_PHONE_NUMBER": "+15017122661", "TWILIO_VERIFY_SERVICE_SID": TEST_SERVICE_SID}

# Formats from twilio_api_v2010.json / twilio_verify_v2.json path parameter patterns.
ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
SERVICE_SID = re.compile(r"^VA[0-9a-fA-F]{32}$")
MESSAGING_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
E164 = re.compile(r"^\+[1-9]\d{1,14}$")
# Messages (not Calls) may come from an alphanumeric sender ID: up to 11 characters, one a letter.
ALPHANUMERIC_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
VERIFY_CHANNELS = {"sms", "call", "email", "whatsapp", "sna", "auto"}


class TwilioError(Exception):
    """An error answered in Twilio's JSON shape."""

    def __init__(self, status, code, message, detail=None):
        super().__init__(message)
        self.status, self.code, self.message, self.detail = status, code, message, detail

    def body(self):
        body = {
            "code": self.code,
            "message": self.message,
            "more_info": "https://www.twilio.com/docs/errors/%d" % self.code,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        return body


def new_sid(prefix):
    """Return a SID such as SM + 32 lower-case hex digits."""
    return prefix + uuid.uuid4().hex


def rfc2822_now():
    """Return the current time as the 2010 API writes dates ("Thu, 24 Aug 2023 05:01:45 +0000")."""
    return format_datetime(datetime.now(timezone.utc).replace(microsecond=0))


def iso_now():
    """Return the current time as Verify v2 writes dates ("2015-07-30T20:00:00Z")."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def not_found():
    return TwilioError(404, 20404, "The requested resource %s was not found" % request.path)


def create_app(accounts=None):
    """Build the stand-in; `accounts` maps AccountSid to auth token."""
    accounts = dict(accounts or {TEST_ACCOUNT_SID: TEST_AUTH_TOKEN})
    verifications = {}  # (ServiceSid, To) -> pending verification, as Verify keeps one per number
    app = Flask(__name__)
    app.extensions["twilio_standin"] = {"accounts": accounts, "verifications": verifications}

    @app.errorhandler(TwilioError)
    def twilio_error(err):
        return err.body(), err.status

    @app.errorhandler(404)
    def unknown_path(err):
        return not_found().body(), 404

    @app.errorhandler(405)
    def wrong_method(err):
        return TwilioError(405, 20004, "Method not allowed").body(), 405

    def authenticate():
        """Check HTTP Basic auth as Twilio does and return the authenticated AccountSid."""
        auth = request.authorization
        token = accounts.get(auth.username) if auth is not None and auth.type == "basic" else None
        if token is None or not hmac.compare_digest(token, auth.password or ""):
            raise TwilioError(401, 20003, "Authenticate",
                              "Your AccountSid or AuthToken was incorrect.")
        return auth.username

    def account_from_path(account_sid):
        user = authenticate()
        if not ACCOUNT_SID.match(account_sid):
            raise not_found()
        if account_sid != user:  # credentials of one account cannot act for another
            raise TwilioError(401, 20003, "Authenticate")
        return account_sid

    @app.post("/2010-04-01/Accounts/<account_sid>/Messages.json")
    def create_message(account_sid):
        account_sid = account_from_path(account_sid)
        form = request.form
        to, sender, service = form.get("To"), form.get("From"), form.get("MessagingServiceSid")
        body = form.get("Body")
        if not to:
            raise TwilioError(400, 21604, "A 'To' phone number is required.")
        if not E164.match(to):
            raise TwilioError(400, 21211, "The 'To' number %s is not a valid phone number." % to)
        if not sender and not service:
            raise TwilioError(400, 21603, "A 'From' phone number is required.")
        if service and not MESSAGING_SERVICE_SID.match(service):
            raise TwilioError(400, 21701, "The Messaging Service Sid %s is invalid." % service)
        if sender and not (E164.match(sender) or ALPHANUMERIC_SENDER.match(sender)):
            raise TwilioError(400, 21212, "The 'From' number %s is not a valid phone number, "
                                          "shortcode, or alphanumeric sender ID." % sender)
        if not body and not form.get("MediaUrl") and not form.get("ContentSid"):
            raise TwilioError(400, 21602, "Message body is required.")
        sid, now = new_sid("SM"), rfc2822_now()
        uri = "/2010-04-01/Accounts/%s/Messages/%s" % (account_sid, sid)
        # Field set and order as the spec's "create" example; `from` is null when a service sends.
        return {
            "account_sid": account_sid, "api_version": "2010-04-01", "body": body or "",
            "date_created": now, "date_sent": None, "date_updated": now,
            "direction": "outbound-api", "error_code": None, "error_message": None,
            "from": sender or None, "messaging_service_sid": service, "num_media": "0",
            "num_segments": str(segments(body or "")), "price": None, "price_unit": "USD",
            "sid": sid, "status": "accepted" if service and not sender else "queued",
            "subresource_uris": {"media": uri + "/Media.json"}, "to": to, "uri": uri + ".json",
        }, 201

    @app.post("/2010-04-01/Accounts/<account_sid>/Calls.json")
    def create_call(account_sid):
        account_sid = account_from_path(account_sid)
        form = request.form
        to, sender = form.get("To"), form.get("From")
        if not to:
            raise TwilioError(400, 21201, "No 'To' number is specified")
        if not E164.match(to):
            raise TwilioError(400, 21211, "The 'To' number %s is not a valid phone number." % to)
        if not sender:  # a call always needs a caller number, unlike a message
            raise TwilioError(400, 21213, "No 'From' number is specified")
        if not E164.match(sender):
            raise TwilioError(400, 21212,
                              "The 'From' number %s is not a valid phone number." % sender)
        if not (form.get("Url") or form.get("Twiml") or form.get("ApplicationSid")):
            raise TwilioError(400, 21205, "Url parameter is required.")
        if form.get("Twiml"):
            check_twiml(form["Twiml"])
        sid, now = new_sid("CA"), rfc2822_now()
        uri = "/2010-04-01/Accounts/%s/Calls/%s" % (account_sid, sid)
        return {
            "account_sid": account_sid, "answered_by": None, "api_version": "2010-04-01",
            "caller_name": None, "date_created": now, "date_updated": now,
            "direction": "outbound-api", "duration": None, "end_time": None,
            "forwarded_from": None, "from": sender, "from_formatted": sender, "group_sid": None,
            "parent_call_sid": None, "phone_number_sid": None, "price": None, "price_unit": "USD",
            "queue_time": "0", "sid": sid, "start_time": None, "status": "queued",
            "subresource_uris": {"notifications": uri + "/Notifications.json",
                                 "recordings": uri + "/Recordings.json"},
            "to": to, "to_formatted": to, "trunk_sid": None, "uri": uri + ".json",
        }, 201

    @app.post("/v2/Services/<service_sid>/Verifications")
    def create_verification(service_sid):
        account_sid = authenticate()
        if not SERVICE_SID.match(service_sid):
            raise not_found()
        form = request.form
        to, channel, code = form.get("To"), form.get("Channel"), form.get("CustomCode")
        if not to:
            raise TwilioError(400, 60200, "Invalid parameter: To")
        if channel not in VERIFY_CHANNELS:
            raise TwilioError(400, 60200, "Invalid parameter: Channel")
        valid_to = "@" in to if channel == "email" else bool(E164.match(to))
        if not valid_to:
            raise TwilioError(400, 60200, "Invalid parameter `To`: %s" % to)
        if code is not None and not 4 <= len(code) <= 10:
            raise TwilioError(400, 60200, "Invalid parameter: CustomCode")
        now = iso_now()
        verification = {
            "sid": new_sid("VE"), "service_sid": service_sid, "account_sid": account_sid,
            "to": to, "channel": channel, "status": "pending", "valid": False,
            "date_created": now, "date_updated": now, "lookup": {}, "amount": None,
            "payee": None, "sna": None,
            "send_code_attempts": [{"time": now, "channel": channel.upper(),
                                    "attempt_sid": new_sid("VL")}],
        }
        verification["url"] = "https://verify.twilio.com/v2/Services/%s/Verifications/%s" % (
            service_sid, verification["sid"])
        # The code stays server-side, as at Twilio; tests read it from app.extensions.
        verifications[(service_sid, to)] = dict(
            verification, code=code or "%06d" % secrets.randbelow(10**6))
        return verification, 201

    @app.post("/v2/Services/<service_sid>/VerificationCheck")
    def check_verification(service_sid):
        authenticate()
        if not SERVICE_SID.match(service_sid):
            raise not_found()
        form = request.form
        if not form.get("Code"):
            raise TwilioError(400, 60200, "Invalid parameter: Code")
        if not form.get("To") and not form.get("VerificationSid"):
            raise TwilioError(400, 60200,
                              "Either a 'To' number or 'VerificationSid' must be specified")
        found = [key for key, v in verifications.items() if key[0] == service_sid and (
            v["to"] == form.get("To") or v["sid"] == form.get("VerificationSid"))]
        if not found:  # never started, already approved, or expired
            raise not_found()
        verification = verifications[found[0]]
        approved = hmac.compare_digest(verification["code"], form["Code"])
        if approved:
            del verifications[found[0]]
        fields = ("sid", "service_sid", "account_sid", "to", "channel", "amount", "payee",
                  "date_created")
        answer = {name: verification[name] for name in fields}
        answer.update(status="approved" if approved else "pending", valid=approved,
                      sna_attempts_error_codes=[], date_updated=iso_now())
        return answer, 200

    return app


def segments(body):
    """Count SMS segments: 160 GSM characters in one, 153 per segment when concatenated."""
    return 1 if len(body) <= 160 else math.ceil(len(body) / 153)


def check_twiml(twiml):
    """Refuse TwiML that is not a <Response> document, as Twilio's 12100 parse failure."""
    try:
        root = ET.fromstring(twiml)
    except ET.ParseError:
        root = None
    if root is None or root.tag != "Response":
        raise TwilioError(400, 12100, "Document parse failure")
