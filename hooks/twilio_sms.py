# /// script
# dependencies = ["twilio>=9,<10"]
# [tool.hookengine]
# trigger = "send-phone-message"
# secrets = ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"]
# optional_secrets = ["TWILIO_PHONE_NUMBER", "TWILIO_MESSAGING_SERVICE_SID"]
# enabled = true
# ///
"""Send the MFA code by SMS with Twilio Programmable Messaging.

The sender is the Messaging Service TWILIO_MESSAGING_SERVICE_SID when that secret is set,
otherwise the number TWILIO_PHONE_NUMBER (E.164, e.g. +15017122661): set one of the two, both
are optional secrets. Twilio errors become SendPhoneMessageError with Twilio's error code, e.g.
"Twilio error 21211: The 'To' number ... is not a valid phone number.". `hookengine push`
makes this the enabled hook of send-phone-message (`enabled = true`).
"""
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

FRIENDLY_MESSAGE = "We could not send your verification code. Please try again later."


def send_phone_message(recipient, text, context):
    secrets = context.webtask.secrets
    # An explicit timeout keeps a slow Twilio from using up the hook's whole time limit.
    client = Client(secrets.TWILIO_ACCOUNT_SID, secrets.TWILIO_AUTH_TOKEN,
                    http_client=TwilioHttpClient(timeout=10))
    # Optional secrets that are not set are absent, hence get(); an empty one counts as unset.
    service_sid = secrets.get("TWILIO_MESSAGING_SERVICE_SID")
    sender = secrets.get("TWILIO_PHONE_NUMBER")
    if not service_sid and not sender:
        raise SendPhoneMessageError("set the secret TWILIO_PHONE_NUMBER or "
                                    "TWILIO_MESSAGING_SERVICE_SID (the sender)", FRIENDLY_MESSAGE)
    try:
        if service_sid:
            message = client.messages.create(to=recipient, body=text,
                                             messaging_service_sid=service_sid)
        else:
            message = client.messages.create(to=recipient, body=text, from_=sender)
    except TwilioRestException as err:
        raise SendPhoneMessageError(twilio_error(err), FRIENDLY_MESSAGE) from None
    except OSError as err:  # requests' ConnectionError and Timeout are OSErrors
        raise SendPhoneMessageError(unreachable(err), FRIENDLY_MESSAGE) from None
    print("Twilio accepted SMS " + message.sid + " to " + masked(recipient)
          + ", status " + message.status)
    return {"MessageID": message.sid}


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


def masked(number):
    """Keep only the last digits of a phone number in the log."""
    return "***" + number[-4:]
