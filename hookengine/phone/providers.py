"""The three ways a message leaves: the development outbox, Twilio, and the operator's
send-phone-message hook."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit
from xml.sax.saxutils import escape, quoteattr

from hookengine.clock import utc_now
from hookengine.errors import HookEngineError, NodeBusy
from hookengine.phone.errors import DeliveryRefused, ProviderFailed
from hookengine.phone.templates import PAUSE, plain
from hookengine.sandbox import EgressDenied, EgressGuard, EgressPolicy, Status

# Auth0: "a maximum of 100 messages per tenant during the entire tenant lifetime".
DEV_OUTBOX_CAP = 100
# A verification code is worth little after a few seconds: fail fast and let the caller retry.
TWILIO_TIMEOUT_SECONDS = 10


@dataclass
class Message:
    """One message, rendered and addressed; `context` is what a hook receives beside it."""

    recipient: str
    text: str              # may hold templates.PAUSE marks (voice)
    message_type: str      # sms | voice
    action: str            # enrollment | second-factor-authentication
    user_id: str
    sender: str | None = None
    language: str | None = None
    context: dict = field(default_factory=dict)


@dataclass
class Sent:
    """What the provider answered: its id for the message (a Twilio SID, an outbox number)
    and the hook's execution when one ran."""

    reference: str | None = None
    execution_id: str | None = None


class DevOutbox:
    """The `auth0` provider of a self-hosted engine: messages land in a table the operator
    reads (GET /guardian/factors/phone/dev-outbox), at most DEV_OUTBOX_CAP for the data
    directory's lifetime, as Auth0's evaluation provider."""

    def __init__(self, store, cap: int = DEV_OUTBOX_CAP):
        self.store = store
        self.cap = cap

    def send(self, message: Message) -> Sent:
        # Counted and written in one transaction, under a lock (nodes sending at once would
        # otherwise each count the same rows): concurrent sends cannot pass the cap.
        with self.store.transaction() as db:
            self.store.lock(db, "phone_dev_outbox")
            sent = db.execute("SELECT COUNT(*) FROM phone_dev_outbox").fetchone()[0]
            if sent >= self.cap:
                raise DeliveryRefused(
                    403, "too_many_sms_per_tenant",
                    f"The development provider has sent its {self.cap} messages for this data "
                    "directory's lifetime; select the twilio or phone-message-hook provider.")
            seq = db.execute(
                "INSERT INTO phone_dev_outbox (recipient, text, message_type, action, user_id, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING seq",
                (message.recipient, plain(message.text), message.message_type, message.action,
                 message.user_id, utc_now())).fetchone()[0]
        return Sent(reference=str(seq))

    def exhausted(self) -> bool:
        return self.count() >= self.cap

    def count(self) -> int:
        return self.store.query_one("SELECT COUNT(*) FROM phone_dev_outbox")[0]

    def messages(self) -> list[dict]:
        rows = self.store.query("SELECT seq, recipient, text, message_type, action, user_id, "
                                "created_at FROM phone_dev_outbox ORDER BY seq")
        return [{**dict(row), "id": str(row["seq"])} for row in rows]


class TwilioSender:
    """Twilio's Messages and Calls APIs through the official SDK, called by the engine itself
    under the hooks' egress policy: api.twilio.com (or HOOKENGINE_EGRESS_ALLOW), and
    HOOKENGINE_HOST_MAP sending it elsewhere (a stand-in)."""

    def __init__(self, settings: dict, timeout: float = TWILIO_TIMEOUT_SECONDS):
        self.policy = EgressPolicy.for_hook(["twilio"], settings["EGRESS_ALLOW"],
                                            settings["HOST_MAP"])
        self.timeout = timeout

    def send(self, twilio: dict, message: Message) -> Sent:
        from twilio.base.exceptions import TwilioException, TwilioRestException
        from twilio.rest import Client

        if not twilio.get("sid") or not twilio.get("auth_token"):
            raise ProviderFailed("twilio_not_configured", "The Twilio provider has no sid or "
                                 "auth_token (PUT /api/v2/guardian/factors/phone/providers/"
                                 "twilio).")
        client = Client(twilio["sid"], twilio["auth_token"],
                        http_client=_egress_client(self.policy, self.timeout))
        try:
            if message.message_type == "voice":
                sender = message.sender or twilio.get("from")
                if not sender:
                    raise ProviderFailed("twilio_no_from", "A voice call needs the Twilio "
                                         "provider's `from` number, even with a Messaging "
                                         "Service for SMS.")
                call = client.calls.create(to=message.recipient, from_=sender,
                                           twiml=twiml(message.text, message.language))
                return Sent(reference=call.sid)
            service = twilio.get("messaging_service_sid")
            sender = message.sender or twilio.get("from")
            if service:  # as Auth0: the Messaging Service, when set, picks the sender itself
                sent = client.messages.create(to=message.recipient, body=plain(message.text),
                                              messaging_service_sid=service)
            elif sender:
                sent = client.messages.create(to=message.recipient, body=plain(message.text),
                                              from_=sender)
            else:
                raise ProviderFailed("twilio_no_from", "The Twilio provider has neither `from` "
                                     "nor `messaging_service_sid`.")
            return Sent(reference=sent.sid)
        except TwilioRestException as error:
            raise ProviderFailed(f"twilio_{error.code or error.status}",
                                 str(error.msg)) from None
        except EgressDenied as error:
            raise ProviderFailed("egress_denied", str(error)) from None
        except (TwilioException, OSError) as error:
            raise ProviderFailed("twilio_unreachable", f"Twilio did not answer: {error}") \
                from None


def twiml(text: str, language: str | None) -> str:
    """A <Response> that says `text` (XML-escaped), a one-second <Pause> at each pause mark.

    <Pause> is a verb of its own, not something <Say> may hold, so the text is cut there."""
    lang = f" language={quoteattr(language)}" if language else ""
    parts = [" ".join(part.split()) for part in text.split(PAUSE)]
    verbs = '<Pause length="1"/>'.join(f"<Say{lang}>{escape(part)}</Say>" if part else ""
                                       for part in parts)
    return f"<Response>{verbs}</Response>"


def _egress_client(policy: EgressPolicy, timeout: float):
    """The SDK's HTTP client, held to `policy`: a mapped host goes to its target; any other
    must be allowed and resolve to public addresses (or allowed networks)."""
    from requests.exceptions import RequestException
    from twilio.base.exceptions import TwilioException
    from twilio.http.http_client import TwilioHttpClient

    guard = EgressGuard(policy)

    class EgressHttpClient(TwilioHttpClient):
        def request(self, method, url, *args, **kwargs):
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
            target = policy.host_map.get(host)
            if target:
                query = f"?{parts.query}" if parts.query else ""
                url = f"{target}{parts.path}{query}"
            else:
                # Raises EgressDenied for a host off the allowlist, or one that resolves only
                # to loopback, private or link-local addresses.
                guard.resolve(host, parts.port or 443)
            try:
                return super().request(method, url, *args, **kwargs)
            except RequestException as error:
                raise TwilioException(str(error)) from None

    return EgressHttpClient(timeout=timeout)


class HookSender:
    """The `phone-message-hook` provider: the enabled send-phone-message hook, run exactly as
    POST /triggers/send-phone-message/execute runs it."""

    TRIGGER = "send-phone-message"

    def __init__(self, hooks, runner):
        self.hooks, self.runner = hooks, runner

    def enabled_hook(self) -> dict:
        hook = self.hooks.enabled_for(self.TRIGGER)
        if hook is None:
            raise DeliveryRefused(
                404, "no_enabled_hook", f"No hook is enabled for trigger {self.TRIGGER!r}; "
                "enable one with PATCH /api/v2/hooks/{id} {\"enabled\": true}.")
        return hook

    def slot(self):
        """One of the node's run slots, for a delivery to hold from its start (Runner.slot)."""
        return self.runner.slot()

    def send(self, message: Message, held: bool = False) -> Sent:
        """Run the hook; `held`: the caller holds a run slot for it already."""
        hook = self.enabled_hook()
        payload = {"recipient": message.recipient, "text": plain(message.text),
                   "context": message.context}
        try:
            record = self.runner.run(hook, payload, source="trigger", held=held)
        except NodeBusy:
            raise  # not the provider's failure: this node's, and a retry elsewhere is safe
        except HookEngineError as error:  # a secret not set, dependencies not installable
            raise ProviderFailed(error.error_code, error.message) from None
        if record["status"] != Status.SUCCESS:
            error = record["error"] or {}
            raise ProviderFailed(error.get("name") or str(record["status"]),
                                 error.get("message") or f"The hook ended: {record['status']}",
                                 execution_id=record["id"])
        result = record["result"]
        reference = result.get("MessageID") if isinstance(result, dict) else None
        return Sent(reference=reference if isinstance(reference, str) else None,
                    execution_id=record["id"])
