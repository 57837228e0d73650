"""The log stream delivery worker: empties each stream's outbox, at least once, one worker
at a time among every engine sharing the store.

A batch is sent up to three times (with backoff); a row leaves the outbox only after the
receiver answered 2xx, so a receiver outage or an engine killed mid-request loses nothing:
the batch is sent again later (the receiver may see it twice). A stream whose deliveries have
failed for LOG_STREAM_SUSPEND_DAYS is suspended (Auth0 pauses it after 7 days).
"""

from __future__ import annotations

import json
import logging
import threading
import time

import requests

from hookengine.errors import BadRequest

log = logging.getLogger(__name__)

BATCH = 100                 # logs per request
ATTEMPT_BACKOFF = (0.5, 1.0)  # seconds before the second and third attempt
REQUEST_TIMEOUT = 10.0
POLL_SECONDS = 1.0          # how often the outboxes are looked at when nothing wakes us
# Held (store.exclusive) by the one worker delivering, among every engine on the store.
DELIVERY_LOCK = "log-delivery"


def encode(entries: list[dict], content_format: str) -> bytes:
    """The request body: each entry as {"log_id", "data"}, framed as the stream asks."""
    envelopes = [{"log_id": entry["log_id"], "data": entry} for entry in entries]
    if content_format == "JSONARRAY":
        return json.dumps(envelopes).encode()
    if content_format == "JSONOBJECT":
        return json.dumps({"logs": envelopes}).encode()
    return "\n".join(json.dumps(envelope) for envelope in envelopes).encode()


class LogDelivery:
    """One background thread delivering every active stream's outbox in batches."""

    def __init__(self, store, logs, log_streams, settings: dict):
        self.store = store
        self.logs = logs
        self.log_streams = log_streams
        self.retry_seconds = settings["LOG_STREAM_RETRY_SECONDS"]
        self.suspend_seconds = settings["LOG_STREAM_SUSPEND_DAYS"] * 86400
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy from the environment between us and a SIEM

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="log-delivery", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stopping.set()
        self.logs.recorded.set()
        if self.thread is not None:
            # A request in flight may hold it up to REQUEST_TIMEOUT; its batch stays queued.
            self.thread.join(timeout=REQUEST_TIMEOUT + 1)
        self.session.close()

    def _run(self) -> None:
        while not self.stopping.is_set():
            self.logs.recorded.clear()  # before looking: a record() from now on wakes us
            try:
                busy = self.deliver_due()
            except Exception:  # the worker must outlive any one fault (a locked database)
                if self.stopping.is_set():
                    return
                log.exception("Log stream delivery failed; trying again shortly")
                busy = False
            if not busy:
                self.logs.recorded.wait(POLL_SECONDS)

    def deliver_due(self) -> bool:
        """One batch for each active stream that is due; whether any batch was sent. Only
        while no other worker on the same store (another node, another engine) delivers: two
        would send the same rows at once, and a receiver would see every batch twice."""
        with self.store.exclusive(DELIVERY_LOCK) as alone:
            if not alone:
                return False
            busy = False
            for stream in self.store.query(
                    "SELECT * FROM log_streams WHERE status = 'active' AND retry_at <= ? "
                    "ORDER BY is_priority DESC, seq", (time.time(),)):
                if self.stopping.is_set():
                    break
                busy |= self._deliver_batch(stream)
            return busy

    def _deliver_batch(self, stream) -> bool:
        rows = self.store.query(
            "SELECT l.seq, l.log_id, l.date, l.data FROM log_stream_outbox AS o "
            "JOIN logs AS l ON l.seq = o.log_seq WHERE o.stream_id = ? "
            "ORDER BY o.log_seq LIMIT ?", (stream["id"], BATCH))
        if not rows:
            return False
        entries = [{"_id": r["log_id"], "log_id": r["log_id"], "date": r["date"],
                    **json.loads(r["data"])} for r in rows]
        failed_at = time.time()
        error = self._send(self.log_streams.sink(stream), entries)
        if error is None:
            with self.store.transaction() as db:
                db.executemany("DELETE FROM log_stream_outbox WHERE stream_id = ? AND "
                               "log_seq = ?", [(stream["id"], r["seq"]) for r in rows])
                db.execute("UPDATE log_streams SET failing_since = NULL, last_error = NULL "
                           "WHERE id = ?", (stream["id"],))
            return True
        self._failed(stream["id"], failed_at, error)
        return False

    def _send(self, sink: dict, entries: list[dict]) -> str | None:
        """None once the receiver took the batch, else the last attempt's error."""
        headers = {"Content-Type": sink.get("httpContentType") or "application/json"}
        if sink.get("httpAuthorization"):
            headers["Authorization"] = sink["httpAuthorization"]
        headers.update({h["header"]: h["value"] for h in sink.get("httpCustomHeaders", [])})
        body = encode(entries, sink.get("httpContentFormat", "JSONLINES"))
        error = None
        for attempt in range(1 + len(ATTEMPT_BACKOFF)):
            if attempt and self.stopping.wait(ATTEMPT_BACKOFF[attempt - 1]):
                return error or "stopped"
            try:
                # Checked before every attempt: the settings or the name's addresses may
                # have changed since the stream was saved.
                self.log_streams.check_endpoint(sink["httpEndpoint"], resolve=True)
                response = self.session.post(sink["httpEndpoint"], data=body, headers=headers,
                                             timeout=REQUEST_TIMEOUT, allow_redirects=False)
                response.close()
            except BadRequest as refused:
                return refused.message  # retrying at once will not change the answer
            except (requests.RequestException, OSError) as failure:
                error = f"{type(failure).__name__}: {failure}"
                continue
            if 200 <= response.status_code < 300:
                return None
            error = f"the receiver answered HTTP {response.status_code}"
        return error

    def _failed(self, stream_id: str, failed_at: float, error: str) -> None:
        with self.store.transaction() as db:
            # Locked till the write: a status the API sets meanwhile (paused) is not undone.
            row = db.execute("SELECT status, failing_since FROM log_streams WHERE id = ?"
                             + self.store.for_update, (stream_id,)).fetchone()
            if row is None:
                return  # deleted meanwhile
            since = row["failing_since"] or failed_at
            suspend = row["status"] == "active" and time.time() - since >= self.suspend_seconds
            db.execute("UPDATE log_streams SET failing_since = ?, retry_at = ?, last_error = ?, "
                       "status = ? WHERE id = ?",
                       (since, time.time() + self.retry_seconds, error,
                        "suspended" if suspend else row["status"], stream_id))
        log.warning("Log stream %s: delivery failed (%s)%s", stream_id, error,
                    "; suspended" if suspend else "; retrying later")
