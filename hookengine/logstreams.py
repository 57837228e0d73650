"""Log streams (Auth0's /api/v2/log-streams, type http): where tenant logs are pushed.

The credential in `sink.httpAuthorization` is encrypted at rest and returned in clear, as
Auth0 returns it. An endpoint must be https://, or a loopback http:// address that
HOOKENGINE_EGRESS_ALLOW covers (a receiver on this machine, for development and tests).
"""

from __future__ import annotations

import ipaddress
import json
import socket
from urllib.parse import urlsplit

from ulid import ULID

from hookengine.clock import as_utc_text, utc_now
from hookengine.errors import BadRequest, Conflict, NotFound, ValidationError
from hookengine.sandbox import EgressDenied, EgressGuard, EgressPolicy
from hookengine.tenantlogs import stream_wants
from hookengine.validation import schema_problems

FORMATS = ("JSONARRAY", "JSONLINES", "JSONOBJECT")
CATEGORIES = (
    "auth.login.fail", "auth.login.notification", "auth.login.success", "auth.logout.fail",
    "auth.logout.success", "auth.signup.fail", "auth.signup.success", "auth.silent_auth.fail",
    "auth.silent_auth.success", "auth.token_exchange.fail", "auth.token_exchange.success",
    "management.fail", "management.success", "scim.event", "system.notification",
    "user.fail", "user.notification", "user.success", "actions", "other")
# A header line's name (RFC 9110 token) and a value without line breaks.
_HEADER_NAME = "^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$"
_HEADER_VALUE = "^[^\\r\\n\\x00]{0,4096}$"
# Headers the engine sets itself from the sink's other fields, or that would break the request.
_RESERVED_HEADERS = {"authorization", "content-type", "content-length", "host",
                     "transfer-encoding", "connection"}

SINK = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "httpEndpoint": {"type": "string", "minLength": 1, "maxLength": 2048,
                         "x-hint": "an https:// URL"},
        "httpContentType": {"type": "string", "pattern": _HEADER_VALUE, "minLength": 1,
                            "default": "application/json"},
        "httpContentFormat": {"type": "string", "enum": list(FORMATS), "default": "JSONLINES"},
        "httpAuthorization": {"type": "string", "pattern": _HEADER_VALUE,
                              "description": "Sent verbatim as the Authorization header."},
        "httpCustomHeaders": {"type": "array", "maxItems": 20, "items": {
            "type": "object", "additionalProperties": False, "required": ["header", "value"],
            "properties": {"header": {"type": "string", "pattern": _HEADER_NAME},
                           "value": {"type": "string", "pattern": _HEADER_VALUE}}}},
    },
}
FILTERS = {"type": "array", "maxItems": len(CATEGORIES), "items": {
    "type": "object", "additionalProperties": False, "required": ["type", "name"],
    "properties": {"type": {"const": "category"}, "name": {"enum": list(CATEGORIES)}}},
    "description": "Categories of events to send; empty: every event."}
NAME = {"type": "string", "minLength": 1, "maxLength": 100}
PII_CONFIG = {"description": "Not supported: hookengine sends log fields as they are "
                             "(phone numbers are already masked)."}
CREATE = {
    "type": "object", "additionalProperties": False, "required": ["type", "sink"],
    "properties": {"name": NAME, "type": {"type": "string"}, "isPriority": {"type": "boolean"},
                   "filters": FILTERS, "sink": {**SINK, "required": ["httpEndpoint"]},
                   "startFrom": {"type": "string", "description": "ISO 8601: also send the "
                                                                 "logs recorded since then."},
                   "pii_config": PII_CONFIG},
    "examples": [{"name": "siem", "type": "http", "sink": {
        "httpEndpoint": "https://siem.example/ingest", "httpContentFormat": "JSONLINES",
        "httpAuthorization": "Bearer a-token"}}],
}
UPDATE = {
    "type": "object", "additionalProperties": False,
    "properties": {"name": NAME, "status": {"enum": ["active", "paused"]},
                   "isPriority": {"type": "boolean"}, "filters": FILTERS, "sink": SINK,
                   "pii_config": PII_CONFIG},
    "examples": [{"status": "paused"}],
}
STREAM = {"type": "object", "properties": {
    "id": {"type": "string"}, "name": {"type": "string"}, "type": {"const": "http"},
    "status": {"enum": ["active", "paused", "suspended"]}, "isPriority": {"type": "boolean"},
    "filters": FILTERS, "sink": SINK}}


class LogStreams:
    """Create, read, update and delete log streams; the delivery worker reads `sink()`."""

    def __init__(self, store, cipher, settings: dict):
        self.store = store
        self.cipher = cipher
        self.max_streams = settings["MAX_LOG_STREAMS"]
        self.guard = EgressGuard(EgressPolicy.for_hook((), settings["EGRESS_ALLOW"], {}))

    def list(self) -> list[dict]:
        return [self._public(row) for row in self.store.query(
            "SELECT * FROM log_streams ORDER BY seq")]

    def get(self, stream_id: str) -> dict:
        return self._public(self._row(stream_id))

    def create(self, body: dict) -> dict:
        _check(CREATE, body)
        if body["type"] != "http":
            raise BadRequest(f"Log stream type {body['type']!r} is not supported; hookengine "
                             "streams to type http only.", error_code="invalid_body")
        sink = {"httpContentType": "application/json", "httpContentFormat": "JSONLINES",
                **body["sink"]}
        self.check_endpoint(sink["httpEndpoint"])
        start = _start_from(body.get("startFrom"))
        with self.store.transaction() as db:
            self.store.lock(db, "log_streams")  # nodes creating at once count one by one
            count = db.execute("SELECT COUNT(*) FROM log_streams").fetchone()[0]
            if count >= self.max_streams:
                raise Conflict("You have reached the maximum number of log streams for your "
                               "account.", error_code="too_many_log_streams")
            seq = db.execute(
                "INSERT INTO log_streams (id, name, type, status, is_priority, filters, sink, "
                "created_at) VALUES (?, ?, 'http', 'active', ?, ?, ?, ?) RETURNING seq",
                (f"new {ULID()}", body.get("name") or "HTTP log stream",
                 bool(body.get("isPriority", False)), json.dumps(body.get("filters", [])),
                 self._sealed(sink), utc_now())).fetchone()[0]
            stream_id = f"lst_{seq:016d}"
            db.execute("UPDATE log_streams SET id = ? WHERE seq = ?", (stream_id, seq))
            if start is not None:
                # The logs since startFrom are queued now, as later ones are by record().
                db.executemany("INSERT INTO log_stream_outbox (stream_id, log_seq) "
                               "VALUES (?, ?)",
                               [(stream_id, row["seq"]) for row in db.execute(
                                   "SELECT seq, type FROM logs WHERE date >= ?", (start,))
                                if stream_wants(body.get("filters", []), row["type"])])
        return self.get(stream_id)

    def update(self, stream_id: str, body: dict) -> dict:
        _check(UPDATE, body)
        with self.store.transaction() as db:
            row = self._row(stream_id, db)
            sink = {**self._opened(row["sink"]), **body.get("sink", {})}
            if "httpEndpoint" in body.get("sink", {}):
                self.check_endpoint(sink["httpEndpoint"])
            changes = {"name": body.get("name", row["name"]),
                       "is_priority": bool(body.get("isPriority", row["is_priority"])),
                       "filters": json.dumps(body.get("filters", json.loads(row["filters"]))),
                       "sink": self._sealed(sink), "status": body.get("status", row["status"])}
            if body.get("status") == "active":
                # Resumed: try at once, and count failures from now on.
                changes.update(failing_since=None, retry_at=0, last_error=None)
            db.execute(f"UPDATE log_streams SET {', '.join(f'{k} = ?' for k in changes)} "
                       "WHERE id = ?", (*changes.values(), stream_id))
        return self.get(stream_id)

    def delete(self, stream_id: str) -> None:
        with self.store.transaction() as db:
            self._row(stream_id, db)
            db.execute("DELETE FROM log_streams WHERE id = ?", (stream_id,))

    def sink(self, row) -> dict:
        """A stream row's sink, its credential decrypted (for the delivery worker)."""
        return self._opened(row["sink"])

    def check_endpoint(self, url: str, resolve: bool = False) -> None:
        """400 unless `url` is https://, or http:// to a loopback address EGRESS_ALLOW covers.

        `resolve` (at delivery): an https host must also resolve only to public addresses,
        or to ones EGRESS_ALLOW covers, so a stream cannot reach the engine's own network.
        """
        parts = urlsplit(url)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            port = None
        if parts.scheme not in ("https", "http") or not parts.hostname or port is None:
            raise BadRequest(f"sink.httpEndpoint {url!r} is not an https:// URL.")
        if parts.scheme == "http":
            if not (_is_loopback(parts.hostname) and self._allowed(parts.hostname, port)):
                raise BadRequest(
                    f"sink.httpEndpoint {url!r}: only https:// endpoints are accepted, or "
                    "http:// to a loopback address that HOOKENGINE_EGRESS_ALLOW covers "
                    "(e.g. 127.0.0.1/32).")
        elif resolve:
            addresses = {info[4][0] for info in socket.getaddrinfo(
                parts.hostname, port, type=socket.SOCK_STREAM)}
            refused = sorted(a for a in addresses if not self._allowed(a, port))
            if refused:
                raise BadRequest(f"sink.httpEndpoint {url!r} resolves to "
                                 f"{', '.join(refused)}: loopback, private or link-local "
                                 "addresses need HOOKENGINE_EGRESS_ALLOW.")

    def _allowed(self, address: str, port: int) -> bool:
        ip = ipaddress.ip_address(address.split("%")[0])
        if ip.is_global and not ip.is_multicast:
            return True
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        try:
            self.guard.check_address(family, (address, port))  # EGRESS_ALLOW's networks
        except EgressDenied:
            return False
        return True

    def _row(self, stream_id: str, db=None):
        """The stream's row; read in `db`, it stays locked until that transaction writes
        what it read it for (the worker's failure record cannot come in between)."""
        sql, params = "SELECT * FROM log_streams WHERE id = ?", (stream_id,)
        row = (db.execute(sql + self.store.for_update, params).fetchone() if db is not None
               else self.store.query_one(sql, params))
        if row is None:
            raise NotFound("The log stream does not exist.", error_code="inexistent_log_stream")
        return row

    def _public(self, row) -> dict:
        return {"id": row["id"], "name": row["name"], "type": row["type"],
                "status": row["status"], "isPriority": bool(row["is_priority"]),
                "filters": json.loads(row["filters"]), "sink": self._opened(row["sink"])}

    def _sealed(self, sink: dict) -> str:
        sealed = dict(sink)
        if sealed.get("httpAuthorization") is not None:
            sealed["httpAuthorization"] = self.cipher.encrypt(
                sealed["httpAuthorization"].encode()).decode()
        return json.dumps(sealed)

    def _opened(self, text: str) -> dict:
        sink = json.loads(text)
        if sink.get("httpAuthorization") is not None:
            sink["httpAuthorization"] = self.cipher.decrypt(
                sink["httpAuthorization"].encode()).decode()
        return sink


def _check(schema: dict, body) -> None:
    problems = schema_problems(schema, body)
    if problems:
        raise ValidationError("Payload validation error", problems)
    if isinstance(body, dict) and "pii_config" in body:
        raise BadRequest("pii_config is not supported: hookengine sends log fields as they "
                         "are (phone numbers are masked when recorded); leave it out.")
    headers = [h["header"] for h in (body.get("sink") or {}).get("httpCustomHeaders", [])]
    reserved = [h for h in headers if h.lower() in _RESERVED_HEADERS]
    if reserved:
        raise BadRequest(f"sink.httpCustomHeaders may not set {', '.join(reserved)}; use "
                         "httpAuthorization and httpContentType.")


def _start_from(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return as_utc_text(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"startFrom {value!r} is not an ISO 8601 date-time.") from None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
