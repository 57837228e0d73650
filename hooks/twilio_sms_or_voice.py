# /// script
# dependencies = ["twilio>=9,<10"]
# [tool.hookengine]
# trigger = "send-phone-message"
# secrets = ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_PHONE_NUMBER"]
# ///
"""Send the MFA code by SMS, or for message_type "voice" place a Twilio call that reads it.

The call's TwiML <Say> reads the code digit by digit ("1, 2, 3, 4, 5, 6") twice. A call always
needs a caller number, so both channels use TWILIO_PHONE_NUMBER rather than a Messaging Service.
"""
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

FRIENDLY_MESSAGE = "We could not send your verification code. Please try again later."


def send_phone_message(recipient, text, context):
    secrets = context.webtask.secrets
    client = Client(secrets.TWILIO_ACCOUNT_SID, secrets.TWILIO_AUTH_TOKEN,
                    http_client=TwilioHttpClient(timeout=10))
    sender = secrets.TWILIO_PHONE_NUMBER
    try:
        if context.message_type == "voice":
            sent = client.calls.create(to=recipient, from_=sender, twiml=spoken_code(context.code))
        else:
            sent = client.messages.create(to=recipient, from_=sender, body=text)
    except TwilioRestException as err:
        raise SendPhoneMessageError(twilio_error(err), FRIENDLY_MESSAGE) from None
    except OSError as err:  # requests' ConnectionError and Timeout are OSErrors
        raise SendPhoneMessageError(unreachable(err), FRIENDLY_MESSAGE) from None
    print("Twilio " + context.message_type + " " + sent.sid + ", status " + sent.status)
    return {"MessageID": sent.sid}


def spoken_code(code):
    """Return TwiML that reads the code one digit at a time, then once more after a pause."""
    digits = ", ".join([digit for digit in code])
    response = VoiceResponse()
    response.say("Your verification code is " + digits + ".")
    response.pause(length=1)
    response.say("Again, your code is " + digits + ".")
    return str(response)


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
