"""API tokens (stored as hashes) and the scopes each route requires."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets as stdlib_secrets

from ulid import ULID

from hookengine.clock import utc_now
from hookengine.errors import Forbidden, Unauthorized, ValidationError

# send:phone_messages is implied by no other scope: whoever may run hooks (execute:hooks)
# must not thereby be able to text arbitrary numbers through the tenant's provider.
SCOPES = ("read:hooks", "create:hooks", "update:hooks", "delete:hooks", "execute:hooks",
          "read:guardian_factors", "update:guardian_factors",
          "read:tenant_settings", "update:tenant_settings",
          "read:attack_protection", "update:attack_protection",
          "read:logs", "read:logs_users", "read:log_streams", "create:log_streams",
          "update:log_streams", "delete:log_streams",
          # The Unified Phone Experience (/branding/phone/*), with Auth0's scope names.
          "read:phone_providers", "create:phone_providers", "update:phone_providers",
          "delete:phone_providers", "read:phone_templates", "create:phone_templates",
          "update:phone_templates", "delete:phone_templates",
          "send:phone_messages")
TOKEN_PREFIX = "he_"



def hash_token(token: str) -> str:
    # Tokens are 256 random bits, so a plain SHA-256 is enough: there is nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Create, list, revoke and check bearer tokens."""

    def __init__(self, store):
        self.store = store

    def create(self, scopes: list[str] | tuple[str, ...] = (), description: str = "") -> str:
        """Return a new token (shown once) holding `scopes`, or every scope when none."""
        with self.store.transaction() as db:
            return self.add(db, scopes, description)[1]

    def add(self, db, scopes: list[str] | tuple[str, ...] = (),
            description: str = "") -> tuple[str, str]:
        """`create` within the caller's transaction `db`: (the new token's id, the token)."""
        scopes = list(scopes) or list(SCOPES)
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown:
            raise ValidationError("Unknown scope", [f"{s!r} is not one of {', '.join(SCOPES)}"
                                                    for s in unknown])
        token_id, token = str(ULID()), TOKEN_PREFIX + stdlib_secrets.token_urlsafe(32)
        db.execute("INSERT INTO tokens (id, token_hash, scopes, description, created_at) "
                   "VALUES (?, ?, ?, ?, ?)", (token_id, hash_token(token),
                                              " ".join(sorted(set(scopes))), description,
                                              utc_now()))
        return token_id, token

    def list(self) -> list[dict]:
        rows = self.store.query("SELECT id, scopes, description, created_at, revoked_at "
                                "FROM tokens ORDER BY id")
        return [dict(row) for row in rows]

    def revoke(self, token_id: str) -> bool:
        with self.store.transaction() as db:
            cursor = db.execute("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at "
                                "IS NULL", (utc_now(), token_id))
        return cursor.rowcount == 1

    def scopes_of(self, token: str) -> set[str] | None:
        """Scopes of a valid token, None for an unknown or revoked one."""
        row = self.store.query_one("SELECT token_hash, scopes FROM tokens WHERE token_hash = ? "
                                   "AND revoked_at IS NULL", (hash_token(token),))
        if row is None or not hmac.compare_digest(row["token_hash"], hash_token(token)):
            return None
        return set(row["scopes"].split())


def bearer_token(header: str | None) -> str:
    if not header:
        raise Unauthorized("Missing authentication: send 'Authorization: Bearer <token>' "
                           "(create one with `hookengine token create`).")
    kind, _, token = header.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        raise Unauthorized("Bad HTTP authentication header format: expected 'Bearer <token>'.")
    return token.strip()


def require_scope(scope: str | tuple[str, ...]):
    """Route decorator: 401 without a valid token, 403 when it lacks `scope` (any one of
    them, for a tuple) (Auth0's text)."""
    def decorator(view):
        view.required_scope = scope  # read by the OpenAPI generator

        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            from flask import current_app, g, request

            scopes = request_scopes(current_app.extensions["hookengine"], request)
            check_scope(scopes, scope)
            g.scopes = scopes  # for views that need a further scope for some requests
            return view(*args, **kwargs)
        return wrapper
    return decorator


def request_scopes(engine, request) -> set[str]:
    """The scopes of a request's credentials: its bearer token, or else the web editor's
    session cookie. A cookie is sent by the browser on its own, so a change made with one
    must also come from the page itself (see `check_same_origin`)."""
    from hookengine.sessions import SAFE_METHODS, session_cookie

    header = request.headers.get("Authorization")
    cookie = session_cookie(request)
    if header is None and cookie:
        session = engine.sessions.check(cookie)
        if session is None:
            raise Unauthorized("Your session has ended (signed out, expired, or its token was "
                               "revoked): sign in again.", error_code="session_ended")
        if request.method not in SAFE_METHODS:
            check_same_origin(session, request)
        return set(session.scopes)
    scopes = engine.tokens.scopes_of(bearer_token(header))
    if scopes is None:
        raise Unauthorized("Invalid token: unknown or revoked.")
    return scopes


def check_same_origin(session, request, csrf: str | None = None) -> None:
    """403 unless an unsafe request made with a session cookie comes from the engine's own
    pages: from its own origin, carrying the session's CSRF token (the `X-CSRF-Token`
    header, or `csrf` when a form sends it as a field)."""
    from hookengine.sessions import csrf_matches

    check_origin(request)
    if not csrf_matches(session, csrf or request.headers.get("X-CSRF-Token")):
        raise Forbidden("Missing or wrong X-CSRF-Token: send the token of the page's "
                        "<meta name=\"csrf-token\"> with every change made with the session "
                        "cookie.", error_code="csrf_token")


def check_origin(request) -> None:
    """403 unless the browser says the request comes from the engine's own origin: its
    Origin header, or without one, Sec-Fetch-Site (a browser sends one or the other)."""
    origin = request.headers.get("Origin")
    if origin is not None:
        same = origin == request.host_url.rstrip("/")
    else:
        same = request.headers.get("Sec-Fetch-Site") == "same-origin"
    if not same:
        raise Forbidden(f"Cross-site request refused: a change made with the session cookie "
                        f"must come from {request.host_url.rstrip('/')} itself (its Origin "
                        f"was {origin or 'not sent'}).", error_code="cross_site_request")


def check_scope(scopes: set[str], scope: str | tuple[str, ...], why: str = "") -> None:
    """403 with Auth0's message when `scope` (every one of them, for a tuple) is missing."""
    wanted = (scope,) if isinstance(scope, str) else scope
    if not scopes & set(wanted):
        raise Forbidden(f"Insufficient scope; expected any of: {', '.join(wanted)}.{why}")
