# /// script
# dependencies = ["vonage>=4,<5"]
# [tool.hookengine]
# trigger = "send-phone-message"
# secrets = ["VONAGE_APPLICATION_ID", "VONAGE_PRIVATE_KEY", "VONAGE_FROM"]
# ///
"""Call the user with the Vonage Voice API and read the MFA code aloud with a talk action.

VONAGE_PRIVATE_KEY is the PEM text of the Vonage application's key ("-----BEGIN PRIVATE
KEY-----..."), never a file path; newlines written as "\\n" are accepted. VONAGE_FROM is a
Vonage number linked to the application, without "+". Voice API errors become
"Vonage error 401: Unauthorized ...".
"""
import re

from vonage import Auth, HttpClientOptions, Vonage, VonageError
from vonage_http_client.errors import HttpRequestError
from vonage_voice import CreateCallRequest, Talk

FRIENDLY_MESSAGE = "We could not call you with your verification code. Please try again later."
PEM_HEADER = "-----BEGIN PRIVATE KEY-----"


def send_phone_message(recipient, text, context):
    secrets = context.webtask.secrets
    private_key = secrets.VONAGE_PRIVATE_KEY.replace("\\n", "\n")
    # The SDK opens anything that looks like a file name; only PEM text may reach it.
    if PEM_HEADER not in private_key:
        raise SendPhoneMessageError("VONAGE_PRIVATE_KEY must be the PEM text of a PKCS#8 key "
                                    "starting with " + PEM_HEADER, FRIENDLY_MESSAGE)
    auth = Auth(application_id=secrets.VONAGE_APPLICATION_ID, private_key=private_key)
    client = Vonage(auth, HttpClientOptions(timeout=10, max_retries=0))
    digits = ", ".join([digit for digit in context.code])
    call = CreateCallRequest(
        to=[{"type": "phone", "number": vonage_number(recipient)}],
        from_={"type": "phone", "number": vonage_number(secrets.VONAGE_FROM)},
        ncco=[Talk(text="Your verification code is " + digits + ".", loop=2)],
    )
    try:
        response = client.voice.create_call(call)
    except HttpRequestError as err:
        raise SendPhoneMessageError(http_error(err.response), FRIENDLY_MESSAGE) from None
    except VonageError as err:
        raise SendPhoneMessageError("Vonage error: " + str(err), FRIENDLY_MESSAGE) from None
    except OSError as err:  # requests' ConnectionError and Timeout are OSErrors
        raise SendPhoneMessageError(unreachable(err), FRIENDLY_MESSAGE) from None
    print("Vonage call " + response.uuid + " " + response.status)
    return {"MessageID": response.uuid}


def vonage_number(number):
    """Turn "+44 7700 900000" into the digits-only form Vonage expects."""
    digits = re.sub("[^0-9]", "", number)
    return digits[2:] if digits.startswith("00") else digits


def http_error(response):
    """Phrase a Voice API error body ({type, title, detail}) with its HTTP status."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    title = body.get("title") or response.reason
    detail = body.get("detail")
    message = "Vonage error " + str(response.status_code) + ": " + str(title)
    return message + " (" + detail + ")" if detail else message


def unreachable(err):
    """Describe a network failure in a line an operator can act on."""
    reason = "timed out" if "timed out" in str(err) else "connection failed"
    return "Vonage API unreachable (" + reason + ")"
