"""Message texts: the operator's Liquid templates rendered with Auth0's variables."""

from __future__ import annotations

import functools
import re

from liquid import Environment
from liquid.exceptions import LiquidError

# What {{ pause }} renders to: a character no template or code contains. The Twilio voice
# call turns it into <Pause/>; every other channel drops it (an SMS cannot pause).
PAUSE = "\ue000"
# How a preview shows the voice call's pauses.
PAUSE_SHOWN = "[pause]"

# The Guardian templates' defaults (OAS), used when the configuration has none.
ENROLLMENT_DEFAULT = ("{{code}} is your verification code for {{tenant.friendly_name}}. "
                      "Please enter this code to verify your enrollment.")
VERIFICATION_DEFAULT = "{{code}} is your verification code for {{tenant.friendly_name}}"

# The UPE templates' default bodies, one per type, as a real tenant lists and resets them
# (reference §5.2); a disabled template falls back to its type's.
_VOICE_OTP = ("Hello. Your verification code for {{ friendly_name | escape }} is {{ pause }} "
              "{{ code | escape }}. I repeat, your verification code is {{ pause }} "
              "{{ code | escape }}")
_BLOCKED = ("We detected suspicious activity on your account from the ip {{user.source_ip}}"
            "{% if user.city %} from {{user.city}}, {{user.country}}{% elsif user.country %} "
            "from {{user.country}}{% endif %}. Logins from this IP have been blocked on your "
            "account. If this is your IP, please reset your password to unblock your account. "
            "Otherwise, disregard this message.")
# Auth0's default bodies as a real tenant lists and resets them. password_breach was never
# seen in Auth0's recordings: its text is hookengine's own.
_BREACH = ("We detected that the password of your {{ friendly_name | escape }} account "
           "appeared in a data breach. Please reset your password.")
DEFAULT_BODIES = {
    "otp_verify": {
        "text": "{{ code | escape }} is your verification code for {{ friendly_name | escape }}",
        "voice": _VOICE_OTP},
    "otp_enroll": {
        "text": "{{ code | escape }} is your verification code for {{ friendly_name | escape }}. "
                "Please enter this code to verify your enrollment.",
        "voice": _VOICE_OTP},
    "change_password": {
        "text": "{{ code | escape }} is your password change code for "
                "{{ friendly_name | escape }}",
        "voice": "Hello. Your password change code for {{ friendly_name | escape }} is "
                 "{{ pause }} {{ code | escape }}. I repeat, your password change code is "
                 "{{ pause }} {{ code | escape }}"},
    "blocked_account": {"text": _BLOCKED, "voice": _BLOCKED},
    "password_breach": {"text": _BREACH, "voice": _BREACH},
}

class _Environment(Environment):
    # Limits on what one render may do. A template is the operator's, but a slip such as
    # (1..99999999) or a doubling {% assign %} in a loop would hold a server thread for
    # minutes and gigabytes, in a delivery or in the editor's live preview. An SMS is at
    # most 1,600 characters at Twilio, and a body at most 20,000: these never get in the way.
    loop_iteration_limit = 10_000
    output_stream_limit = 100_000
    local_namespace_limit = 100_000


_ENVIRONMENT = _Environment()


def liquid_problems(where: str, source: str) -> list[str]:
    """What stops `source` from being a Liquid template: the parser's message with its line
    and column, and each filter Liquid does not have (found only at render time otherwise)."""
    try:
        parsed = _ENVIRONMENT.parse(source)
    except LiquidError as error:
        return [f"{where}: {_described(source, error)}"]
    return [f"{where}: unknown filter {name!r} ({_position(source, span.index)})"
            for name, spans in parsed.analyze().filters.items()
            if name not in _ENVIRONMENT.filters for span in spans]


def _described(source: str, error: LiquidError) -> str:
    """Liquid's message and where in `source` it points."""
    index = error.token.start_index if error.token and error.token.start_index >= 0 \
        else len(source)  # "found end of ..." errors point nowhere: the end
    return f"{error.message} ({_position(source, index)})"


def _position(source: str, index: int) -> str:
    line_start = source.rfind("\n", 0, index) + 1
    return f"line {source.count(chr(10), 0, index) + 1}, column {index - line_start + 1}"


class TemplateError(Exception):
    """A stored template that does not parse or render; the message says where, and
    `problem` says it in one line (Liquid's message, line and column)."""

    def __init__(self, message: str, problem: str):
        super().__init__(message)
        self.problem = problem


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
        raise TemplateError(f"The message template cannot be rendered: {error}",
                            _described(source, error)) from None


def plain(text: str) -> str:
    """The text without its pause marks, for every channel that cannot pause."""
    return re.sub(f" *{PAUSE} *", " ", text).strip()


# What a preview renders with: a made-up code and user, in English; the tenant's own
# friendly_name is added by the caller. A delivery has the platform's code, language and user.
SAMPLE = {"code": "123456", "language": "en",
          "user": {"user_id": "auth0|5f7c8ec7c33c6c004bbafe82", "name": "Jane Doe",
                   "email": "jane@example.com", "phone_number": "+14155550123",
                   "source_ip": "203.0.113.7", "city": "Paris", "country": "France"}}


def preview(body: dict[str, str], friendly_name: str) -> tuple[dict, list[str]]:
    """Each part of a template body ("text", "voice") as it would be sent, rendered with the
    SAMPLE values; a part with problems (the check a save makes, or what rendering found) is
    None instead, and the problems say why."""
    shown, problems = {}, []
    for part, source in body.items():
        shown[part], found = _preview_part(part, source, friendly_name)
        problems += found
    return shown, problems


def _preview_part(part: str, source: str, friendly_name: str) -> tuple[str | None, list[str]]:
    where = f"content/body/{part}"
    found = liquid_problems(where, source)
    if found:
        return None, found
    voice = part == "voice"
    values = variables(code=SAMPLE["code"], message_type="voice" if voice else "sms",
                       language=SAMPLE["language"], friendly_name=friendly_name,
                       user=SAMPLE["user"], user_id=SAMPLE["user"]["user_id"])
    try:
        text = render(source, values)
    except TemplateError as error:
        return None, [f"{where}: {error.problem}"]
    # An SMS drops the pauses, as it is sent; a call shows where it pauses.
    return (re.sub(f" *{PAUSE} *", f" {PAUSE_SHOWN} ", text).strip() if voice
            else plain(text)), []


@functools.lru_cache(maxsize=64)
def _parsed(source: str):
    return _ENVIRONMENT.from_string(source)
