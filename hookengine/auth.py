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
        scopes = list(scopes) or list(SCOPES)
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown:
            raise ValidationError("Unknown scope", [f"{s!r} is not one of {', '.join(SCOPES)}"
                                                    for s in unknown])
        token = TOKEN_PREFIX + stdlib_secrets.token_urlsafe(32)
        with self.store.transaction() as db:
            db.execute("INSERT INTO tokens (id, token_hash, scopes, description, created_at) "
                       "VALUES (?, ?, ?, ?, ?)",
                       (str(ULID()), hash_token(token), " ".join(sorted(set(scopes))),
                        description, utc_now()))
        return token

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

            token = bearer_token(request.headers.get("Authorization"))
            scopes = current_app.extensions["hookengine"].tokens.scopes_of(token)
            if scopes is None:
                raise Unauthorized("Invalid token: unknown or revoked.")
            check_scope(scopes, scope)
            g.scopes = scopes  # for views that need a further scope for some requests
            return view(*args, **kwargs)
        return wrapper
    return decorator


def check_scope(scopes: set[str], scope: str | tuple[str, ...], why: str = "") -> None:
    """403 with Auth0's message when `scope` (every one of them, for a tuple) is missing."""
    wanted = (scope,) if isinstance(scope, str) else scope
    if not scopes & set(wanted):
        raise Forbidden(f"Insufficient scope; expected any of: {', '.join(wanted)}.{why}")
