"""Message texts: the operator's Liquid templates rendered with Auth0's variables."""

from __future__ import annotations

import functools

from liquid import Environment
from liquid.exceptions import LiquidError

# What {{ pause }} renders to: a character no template or code contains. The Twilio voice
# call turns it into <Pause/>; every other channel drops it (an SMS cannot pause).
PAUSE = "\ue000"

# The Guardian templates' defaults (OAS), used when the configuration has none.
ENROLLMENT_DEFAULT = ("{{code}} is your verification code for {{tenant.friendly_name}}. "
                      "Please enter this code to verify your enrollment.")
VERIFICATION_DEFAULT = "{{code}} is your verification code for {{tenant.friendly_name}}"

# The UPE templates' default bodies (a real tenant's, reference §5.2): a disabled template
# falls back to these.
_UPE_VOICE = ("Hello. Your verification code for {{ friendly_name | escape }} is {{ pause }} "
              "{{ code | escape }}. I repeat, your verification code is {{ pause }} "
              "{{ code | escape }}")
UPE_DEFAULTS = {
    "otp_verify": {"text": "{{ code | escape }} is your verification code for "
                           "{{ friendly_name | escape }}", "voice": _UPE_VOICE},
    "otp_enroll": {"text": "{{ code | escape }} is your verification code for "
                           "{{ friendly_name | escape }}. Please enter this code to verify "
                           "your enrollment.", "voice": _UPE_VOICE},
}

_ENVIRONMENT = Environment()


class TemplateError(Exception):
    """A stored template that does not parse or render; the message says where."""


def spoken(code: str) -> str:
    """The code as Auth0 gives it to a voice template, "1.2.3.4.5.6", so that a speech
    engine reads it digit by digit rather than as one number."""
    return ".".join(code)


def variables(*, code: str, message_type: str, language: str | None, friendly_name: str,
              user: dict | None, user_id: str) -> dict:
    """Both template dialects' variables: the Guardian ones (tenant.friendlyName,
    requestInfo.lang, ...) and the UPE ones (friendly_name, user.*)."""
    language = language or ""
    return {
        "code": spoken(code) if message_type == "voice" else code,
        "message_type": message_type,
        "locale": language, "language": language,
        "requestInfo": {"lang": language},
        "tenant": {"friendly_name": friendly_name, "friendlyName": friendly_name},
        "friendly_name": friendly_name,
        "pause": PAUSE,
        "user": {"user_id": user_id, **(user or {})},
    }


def render(source: str, values: dict) -> str:
    """`source` rendered with `values`, whitespace at either end trimmed."""
    try:
        return _parsed(source).render(**values).strip()
    except LiquidError as error:
        raise TemplateError(f"The message template cannot be rendered: {error}") from None


@functools.lru_cache(maxsize=64)
def _parsed(source: str):
    return _ENVIRONMENT.from_string(source)
