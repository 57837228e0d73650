# /// script
# dependencies = ["vonage>=4,<5"]
# [tool.hookengine]
# trigger = "send-phone-message"
# secrets = ["VONAGE_API_KEY", "VONAGE_API_SECRET", "VONAGE_FROM"]
# ///
"""Send the MFA code by SMS with the Vonage SMS API (API key and secret).

VONAGE_FROM is a Vonage number without "+" (447700900000) or an alphanumeric sender ID.
The recipient is reduced to digits, as Vonage wants E.164 without "+". The SMS API answers
HTTP 200 with a non-zero status on failure; that becomes "Vonage status 4: Bad Credentials".
"""
import re

from vonage import Auth, HttpClientOptions, Vonage
from vonage_http_client.errors import HttpRequestError
from vonage_sms import PartialFailureError, SmsError, SmsMessage

FRIENDLY_MESSAGE = "We could not send your verification code. Please try again later."


def send_phone_message(recipient, text, context):
    secrets = context.webtask.secrets
    auth = Auth(api_key=secrets.VONAGE_API_KEY, api_secret=secrets.VONAGE_API_SECRET)
    # No retries: a second attempt could deliver the code twice; a timeout bounds the wait.
    client = Vonage(auth, HttpClientOptions(timeout=10, max_retries=0))
    # Text outside ASCII (GSM, roughly) has to go as unicode or it arrives garbled.
    kind = "unicode" if re.search(r"[^\x00-\x7f]", text) else "text"
    message = SmsMessage(to=vonage_number(recipient), from_=secrets.VONAGE_FROM, text=text,
                         type=kind)
    try:
        response = client.sms.send(message)
    except PartialFailureError as err:  # a long text where some parts failed
        failed = [part for part in err.response["messages"] if part["status"] != "0"][0]
        error = "Vonage status " + failed["status"] + ": " + failed.get("error-text", "")
        raise SendPhoneMessageError(error, FRIENDLY_MESSAGE) from None
    except SmsError as err:
        raise SendPhoneMessageError(status_message(str(err)), FRIENDLY_MESSAGE) from None
    except HttpRequestError as err:
        error = "Vonage answered HTTP " + str(err.response.status_code) + " to the SMS request"
        raise SendPhoneMessageError(error, FRIENDLY_MESSAGE) from None
    except OSError as err:  # requests' ConnectionError and Timeout are OSErrors
        raise SendPhoneMessageError(unreachable(err), FRIENDLY_MESSAGE) from None
    first = response.messages[0]
    print("Vonage accepted SMS " + first.message_id + " in " + response.message_count + " part(s)")
    return {"MessageID": first.message_id}


def vonage_number(number):
    """Turn "+1 808-555-5555" or "0044..." into the digits-only form Vonage expects."""
    digits = re.sub("[^0-9]", "", number)
    return digits[2:] if digits.startswith("00") else digits


def status_message(sdk_message):
    """Rewrite the SDK's "failed with error code 4: Bad Credentials" as "Vonage status 4: ..."."""
    found = re.search("error code ([0-9]+): (.*)", sdk_message)
    if found is None:
        return "Vonage SMS failed: " + sdk_message
    return "Vonage status " + found.group(1) + ": " + found.group(2)


def unreachable(err):
    """Describe a network failure in a line an operator can act on."""
    reason = "timed out" if "timed out" in str(err) else "connection failed"
    return "Vonage API unreachable (" + reason + ")"
