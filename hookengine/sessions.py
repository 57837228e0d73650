"""Browser sessions of the web editor: an API token exchanged once for an HttpOnly cookie.

A session stands in for its token: every request reads the token's current scopes, and
revoking the token ends its sessions. The cookie's value is kept only as a hash, like tokens.
Each session has a CSRF token the page sends back in `X-CSRF-Token` on every unsafe request
(the cookie alone, sent by the browser on its own, never authorises a change).
"""

from __future__ import annotations

import hmac
import secrets as stdlib_secrets
import time
from dataclasses import dataclass

from hookengine.auth import SCOPES, hash_token

# Methods that change nothing: a cookie alone may make them (they need no CSRF token).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The cookie's name: under TLS the __Host- prefix makes browsers refuse it unless it is
# Secure, for this host only and for every path; plain HTTP (loopback) cannot use it.
COOKIE = "hookengine_session"
SECURE_COOKIE = "__Host-hookengine_session"
# A sign-in link printed by `hookengine ui` is good for this long, and for one use.
LINK_SECONDS = 60
# The token behind `hookengine ui`'s links: one per data directory, made on first use.
UI_TOKEN_DESCRIPTION = "hookengine ui (sign-in links)"
# Writing seen_at on every request would make each page load a write: once a minute is
# precise enough for an idle timeout counted in minutes.
SEEN_PRECISION_SECONDS = 60


@dataclass(frozen=True)
class Session:
    token_id: str
    scopes: frozenset[str]
    csrf: str


class SessionStore:
    """Create, check and end browser sessions; make and redeem one-time sign-in links."""

    def __init__(self, store, tokens, settings: dict):
        self.store = store
        self.tokens = tokens
        self.idle_seconds = settings["SESSION_IDLE_MINUTES"] * 60
        self.max_seconds = settings["SESSION_MAX_HOURS"] * 3600

    def sign_in(self, token: str) -> str | None:
        """A new session's cookie value for a valid API token; None for an unknown or revoked
        one. Always a new id: a session id planted before sign-in is never promoted."""
        row = self.store.query_one("SELECT id FROM tokens WHERE token_hash = ? AND "
                                   "revoked_at IS NULL", (hash_token(token),))
        return None if row is None else self._create(row["id"])

    def redeem_link(self, link: str) -> str | None:
        """A new session's cookie value for an unused, unexpired sign-in link (used up now)."""
        with self.store.transaction() as db:
            row = db.execute("DELETE FROM sign_in_links WHERE id_hash = ? RETURNING token_id, "
                             "expires_at", (hash_token(link),)).fetchone()
            db.execute("DELETE FROM sign_in_links WHERE expires_at < ?", (time.time(),))
        if row is None or row["expires_at"] < time.time():
            return None
        return self._create(row["token_id"])

    def create_link(self) -> str:
        """A one-time sign-in link's secret, good for LINK_SECONDS, for the UI's own token
        (every scope; made on first use, and again after it is revoked)."""
        link = stdlib_secrets.token_urlsafe(32)
        with self.store.transaction() as db:
            # Looked up and made under a lock: first uses at once make one token, not several.
            self.store.lock(db, UI_TOKEN_DESCRIPTION)
            row = db.execute("SELECT id FROM tokens WHERE description = ? AND "
                             "revoked_at IS NULL ORDER BY id DESC",
                             (UI_TOKEN_DESCRIPTION,)).fetchone()
            token_id = (row["id"] if row is not None  # its value is never shown
                        else self.tokens.add(db, SCOPES, UI_TOKEN_DESCRIPTION)[0])
            db.execute("INSERT INTO sign_in_links (id_hash, token_id, expires_at) "
                       "VALUES (?, ?, ?)", (hash_token(link), token_id,
                                            time.time() + LINK_SECONDS))
        return link

    def check(self, cookie: str) -> Session | None:
        """The live session behind a cookie value, with its token's scopes now; None when
        it is unknown, idle too long, past its cap, or its token was revoked."""
        now = time.time()
        row = self.store.query_one(
            "SELECT s.token_id, s.csrf, s.seen_at, s.expires_at, t.scopes FROM sessions s "
            "JOIN tokens t ON t.id = s.token_id AND t.revoked_at IS NULL "
            "WHERE s.id_hash = ?", (hash_token(cookie),))
        if row is None or now > row["expires_at"] or now > row["seen_at"] + self.idle_seconds:
            return None
        if now - row["seen_at"] > SEEN_PRECISION_SECONDS:
            with self.store.transaction() as db:
                db.execute("UPDATE sessions SET seen_at = ? WHERE id_hash = ?",
                           (now, hash_token(cookie)))
        return Session(row["token_id"], frozenset(row["scopes"].split()), row["csrf"])

    def sign_out(self, cookie: str) -> None:
        with self.store.transaction() as db:
            db.execute("DELETE FROM sessions WHERE id_hash = ?", (hash_token(cookie),))

    def _create(self, token_id: str) -> str:
        cookie = stdlib_secrets.token_urlsafe(32)
        now = time.time()
        with self.store.transaction() as db:
            # Ended sessions are deleted as new ones begin, so the table stays small.
            db.execute("DELETE FROM sessions WHERE expires_at < ? OR seen_at < ?",
                       (now, now - self.idle_seconds))
            db.execute("INSERT INTO sessions (id_hash, token_id, csrf, created_at, seen_at, "
                       "expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                       (hash_token(cookie), token_id, stdlib_secrets.token_urlsafe(32), now,
                        now, now + self.max_seconds))
        return cookie


def cookie_name(request) -> str:
    return SECURE_COOKIE if request.is_secure else COOKIE


def session_cookie(request) -> str | None:
    """The request's session cookie value, if it sent one."""
    return request.cookies.get(cookie_name(request))


def csrf_matches(session: Session, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(session.csrf.encode(), sent.encode())

