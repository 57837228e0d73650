# /// script
# dependencies = ["requests>=2,<3"]
# [tool.hookengine]
# trigger = "send-phone-message"
# secrets = ["INFOBIP_API_KEY", "INFOBIP_SENDER"]
# ///
"""Send the MFA code by SMS through Infobip's HTTP API with plain `requests` (no SDK).

Infobip gives each account its own base URL (xxxxx.api.infobip.com); change BASE_URL to it
and add that host to the egress allowlist (HOOKENGINE_EGRESS_ALLOW). INFOBIP_SENDER is the
sender number or name. Errors become e.g. "Infobip error 401 UNAUTHORIZED: Invalid login
details"; a host missing from the allowlist gives "Infobip API unreachable: connection to
'api.infobip.com' refused: not on this hook's egress allowlist (...)".
"""
import re

import requests

BASE_URL = "https://api.infobip.com"
FRIENDLY_MESSAGE = "We could not send your verification code. Please try again later."
# Infobip status groups that mean the message will not be delivered.
FAILED_GROUPS = ["REJECTED", "UNDELIVERABLE", "EXPIRED"]
# How the engine's egress layer words a refused host, inside requests' ConnectionError text.
EGRESS_REFUSAL = re.compile("connection to '[^']*' refused: [^(\"]*[^ (\"]")


def send_phone_message(recipient, text, context):
    secrets = context.webtask.secrets
    body = {"messages": [{
        "destinations": [{"to": re.sub("[^0-9]", "", recipient)}],
        "from": secrets.INFOBIP_SENDER,
        "text": text,
    }]}
    headers = {"Authorization": "App " + secrets.INFOBIP_API_KEY, "Accept": "application/json"}
    try:
        # The timeout keeps a slow Infobip from using up the hook's whole time limit.
        response = requests.post(BASE_URL + "/sms/2/text/advanced", json=body, headers=headers,
                                 timeout=10)
    except requests.RequestException as err:
        raise SendPhoneMessageError(unreachable(err), FRIENDLY_MESSAGE) from None
    if response.status_code != 200:
        raise SendPhoneMessageError(infobip_error(response), FRIENDLY_MESSAGE)
    sent = response.json()["messages"][0]
    status = sent["status"]
    if status["groupName"] in FAILED_GROUPS:
        error = "Infobip status " + status["name"] + ": " + status["description"]
        raise SendPhoneMessageError(error, FRIENDLY_MESSAGE)
    print("Infobip accepted " + sent["messageId"] + ", status " + status["name"])
    return {"MessageID": sent["messageId"]}


def unreachable(err):
    """Describe a network failure; a host the egress allowlist refused is named as such."""
    refused = EGRESS_REFUSAL.search(str(err))
    if refused:  # the engine, not Infobip, refused: the operator has to allow the host
        return ("Infobip API unreachable: " + refused.group(0)
                + " (add the host to HOOKENGINE_EGRESS_ALLOW)")
    reason = "timed out" if "timed out" in str(err) else "connection failed"
    return "Infobip API unreachable (" + reason + ")"


def infobip_error(response):
    """Phrase Infobip's {"requestError": {"serviceException": ...}} body with the HTTP status."""
    prefix = "Infobip error " + str(response.status_code)
    try:
        exception = response.json()["requestError"]["serviceException"]
    except (ValueError, KeyError, TypeError):
        return prefix + ": " + response.text[:200]
    message = prefix + " " + exception["messageId"] + ": " + exception["text"]
    problems = exception.get("validationErrors") or {}
    details = [field + " " + ", ".join(problems[field]) for field in problems]
    return message + " (" + "; ".join(details) + ")" if details else message
