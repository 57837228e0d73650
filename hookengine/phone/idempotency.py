"""Idempotency-Key: a retried delivery gets the first answer instead of a second message."""

from __future__ import annotations

import hashlib
import json

from hookengine.errors import BadRequest, Conflict

KEEP_SECONDS = 24 * 3600
# A claim older than this was left by a request that never finished (the server was killed
# mid-delivery): longer than any provider timeout or hook run, so it is no longer in flight.
STALE_CLAIM_SECONDS = 120
MAX_KEY_LENGTH = 255


class Replay:
    """A stored answer: (body, status, headers) as Flask takes them."""

    def __init__(self, status: int, body: dict, headers: dict):
        self.status, self.body, self.headers = status, body, headers

    def response(self):
        return self.body, self.status, {**self.headers, "Idempotent-Replayed": "true"}


class IdempotencyKeys:
    """Key -> the first successful answer, for 24 hours.

    Only a delivery ("sent") is kept: a refusal or a provider failure sent nothing, so a
    retry with the same key is a new attempt (after Retry-After, say), as Stripe does for
    requests that did not execute.
    """

    def __init__(self, store):
        self.store = store

    def begin(self, key: str, body, now: float) -> Replay | None:
        """The stored answer for `key`, or None after claiming it for this request.

        409 when the key was used with another body, or its first request is still running
        (both would otherwise send a second message)."""
        if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
            raise BadRequest(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable "
                             "characters.")
        fingerprint = _fingerprint(body)
        with self.store.transaction() as db:
            db.execute("DELETE FROM phone_idempotency WHERE created < ?", (now - KEEP_SECONDS,))
            # The claim is one statement, so that of requests with one key arriving together
            # (on several nodes) exactly one gets it: a new key, or a claim gone stale.
            claimed = db.execute(
                "INSERT INTO phone_idempotency (key, fingerprint, created) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET fingerprint = excluded.fingerprint, "
                "created = excluded.created WHERE phone_idempotency.status IS NULL AND "
                "phone_idempotency.created < ? RETURNING key",
                (key, fingerprint, now, now - STALE_CLAIM_SECONDS)).fetchone()
            if claimed is not None:
                return None
            row = db.execute("SELECT fingerprint, status, body, headers FROM "
                             "phone_idempotency WHERE key = ?", (key,)).fetchone()
        if row is None:  # its request abandoned it between our two statements: free again
            return self.begin(key, body, now)
        if row["fingerprint"] != fingerprint:
            raise Conflict("This Idempotency-Key was used with a different request body; use "
                           "a new key for a new delivery.", error_code="idempotency_key_reused")
        if row["status"] is None:
            raise Conflict("A request with this Idempotency-Key is still being processed; "
                           "retry later.", error_code="idempotency_key_in_use")
        return Replay(row["status"], json.loads(row["body"]), json.loads(row["headers"]))

    def finish(self, key: str, status: int, body: dict, headers: dict) -> None:
        with self.store.transaction() as db:
            db.execute("UPDATE phone_idempotency SET status = ?, body = ?, headers = ? "
                       "WHERE key = ?", (status, json.dumps(body), json.dumps(headers), key))

    def abandon(self, key: str) -> None:
        """Forget a claimed key whose request sent nothing, so that a retry runs again."""
        with self.store.transaction() as db:
            db.execute("DELETE FROM phone_idempotency WHERE key = ? AND status IS NULL", (key,))


def _fingerprint(body) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"))
                          .encode()).hexdigest()
