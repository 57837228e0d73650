# /// script
# dependencies = ["twilio>=9,<10"]
# [tool.hookengine]
# trigger = "send-phone-message"
# secrets = ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_VERIFY_SERVICE_SID"]
# ///
"""Deliver the MFA code with Twilio Verify v2, by SMS or, for voice, by a phone call.

The engine's code goes to Verify as `custom_code`, so the user receives the code the identity
platform checks; Verify sends its own template text. Custom codes must be enabled on the
Verify service (TWILIO_VERIFY_SERVICE_SID, "VA..."). Returns the verification SID.
"""
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

FRIENDLY_MESSAGE = "We could not send your verification code. Please try again later."
# Auth0 message types mapped to Verify channels.
CHANNELS = {"sms": "sms", "voice": "call"}


def send_phone_message(recipient, text, context):
    secrets = context.webtask.secrets
    client = Client(secrets.TWILIO_ACCOUNT_SID, secrets.TWILIO_AUTH_TOKEN,
                    http_client=TwilioHttpClient(timeout=10))
    channel = CHANNELS[context.message_type]
    service = client.verify.v2.services(secrets.TWILIO_VERIFY_SERVICE_SID)
    try:
        verification = service.verifications.create(to=recipient, channel=channel,
                                                     custom_code=context.code)
    except TwilioRestException as err:
        raise SendPhoneMessageError(twilio_error(err), FRIENDLY_MESSAGE) from None
    except OSError as err:  # requests' ConnectionError and Timeout are OSErrors
        raise SendPhoneMessageError(unreachable(err), FRIENDLY_MESSAGE) from None
    print("Twilio Verify " + verification.sid + " by " + channel
          + ", status " + verification.status)
    return {"MessageID": verification.sid}


def twilio_error(err):
    """Phrase a Twilio API error with its code, without the SDK's request prefix."""
    if err.code == err.status:  # no Twilio code in the body, e.g. a 503 from a load balancer
        return "Twilio answered HTTP " + str(err.status) + " without an error code"
    message = err.msg.replace("Unable to create record: ", "")
    return "Twilio error " + str(err.code) + ": " + message


def unreachable(err):
    """Describe a network failure without the URL, which names the account."""
    reason = "timed out" if "timed out" in str(err) else "connection failed"
    return "Twilio API unreachable (" + reason + ")"
