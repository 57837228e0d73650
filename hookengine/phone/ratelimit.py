"""The per-user token bucket of phone messages, kept in the store so a restart refills nothing."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Take:
    """One attempt to take a token: whether it was granted, and the headers' numbers."""

    allowed: bool
    limit: int
    remaining: int       # whole tokens left after this take
    reset: int           # POSIX second at which the bucket is full again
    retry_after: int     # seconds until one token is back (0 when allowed)

    def headers(self) -> dict[str, str]:
        headers = {"X-RateLimit-Limit": str(self.limit),
                   "X-RateLimit-Remaining": str(self.remaining),
                   "X-RateLimit-Reset": str(self.reset)}
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class Buckets:
    """Auth0's "SMS sent per user: burst 10, sustained 1 per hour": a bucket of `size`
    tokens per user id that refills continuously, one token per `refill_seconds`.

    A token is taken before the provider is called and never given back, so a number that
    always fails cannot be used to make the engine call a provider without limit.
    """

    def __init__(self, store):
        self.store = store

    def take(self, user_id: str, size: int, refill_seconds: float, now: float) -> Take:
        # One transaction, and the bucket's row locked from the read to the write: two
        # concurrent requests of one user cannot both take the last token. A new user's
        # bucket is made full first, so that there is always a row to lock (two first
        # requests at once would otherwise both start from a full bucket).
        with self.store.transaction() as db:
            db.execute("INSERT INTO phone_buckets (user_id, tokens, updated) VALUES (?, ?, ?) "
                       "ON CONFLICT (user_id) DO NOTHING", (user_id, float(size), now))
            row = db.execute("SELECT tokens, updated FROM phone_buckets WHERE user_id = ?"
                             + self.store.for_update, (user_id,)).fetchone()
            tokens = _refilled(row["tokens"], row["updated"], size, refill_seconds, now)
            allowed = tokens >= 1
            if allowed:
                tokens -= 1
            db.execute("UPDATE phone_buckets SET tokens = ?, updated = ? WHERE user_id = ?",
                       (tokens, now, user_id))
        return Take(allowed=allowed, limit=size, remaining=int(tokens),
                    reset=math.ceil(now + (size - tokens) * refill_seconds),
                    retry_after=0 if allowed else math.ceil((1 - tokens) * refill_seconds))


def _refilled(tokens: float, updated: float, size: int, refill_seconds: float,
              now: float) -> float:
    # A clock that went backwards refills nothing rather than taking tokens away.
    elapsed = max(0.0, now - updated)
    rate = 1 / refill_seconds if refill_seconds > 0 else math.inf
    return min(float(size), tokens + elapsed * rate)
