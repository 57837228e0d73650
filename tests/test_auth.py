"""Bearer tokens: 401 without a valid one, 403 naming the scope a route needs."""

from __future__ import annotations

import re

import pytest

from hookengine.api import (health, hooks, openapi, runs,  # noqa: F401 (registers)
                            secrets, triggers)
from hookengine.api.routes import OPERATIONS
from hookengine.auth import SCOPES

# The store's own behaviour: the same on SQLite and on PostgreSQL.
pytestmark = pytest.mark.backends

SCOPED = sorted({(op.method, op.path, op.scope) for op in OPERATIONS if op.scope})


def wanted(scope: str | tuple[str, ...]) -> tuple[str, ...]:
    """A route's scope: one, or a tuple of which any one is enough."""
    return (scope,) if isinstance(scope, str) else scope


# Each route with each scope that is enough for it on its own.
ALONE = [(method, path, one) for method, path, scope in SCOPED for one in wanted(scope)]


def concrete(path: str) -> str:
    """A request path for a rule: every <variable> becomes a value that names nothing."""
    return re.sub(r"<[^>]+>", "does-not-exist", path)


def test_every_api_route_but_the_document_needs_a_scope():
    unguarded = [op.path for op in OPERATIONS if not op.scope]
    # The health checks are outside /api/v2: probes carry no token.
    assert sorted(unguarded) == ["/api/v2/openapi.json", "/healthz", "/readyz"]


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": ""}, {"Authorization": "Bearer"}, {"Authorization": "Bearer   "},
    {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "he_token-without-scheme"},
], ids=["none", "empty", "no-token", "blank-token", "basic", "no-scheme"])
def test_missing_or_malformed_authorization_is_401(client, headers):
    response = client.get("/api/v2/hooks", headers=headers)
    assert response.status_code == 401
    assert response.json["errorCode"] == "invalid_token"
    assert "Bearer" in response.json["message"]


def test_unknown_token_is_401(client):
    response = client.get("/api/v2/hooks", headers={"Authorization": "Bearer he_not-a-token"})
    assert response.status_code == 401
    assert response.json == {"statusCode": 401, "error": "Unauthorized",
                             "message": "Invalid token: unknown or revoked.",
                             "errorCode": "invalid_token"}


def test_revoked_token_is_401(client, engine, token):
    value = token("read:hooks")
    headers = {"Authorization": f"Bearer {value}"}
    assert client.get("/api/v2/hooks", headers=headers).status_code == 200
    (record,) = engine.tokens.list()
    assert engine.tokens.revoke(record["id"])
    response = client.get("/api/v2/hooks", headers=headers)
    assert response.status_code == 401
    assert response.json["message"] == "Invalid token: unknown or revoked."


def test_scheme_is_case_insensitive(client, token):
    response = client.get("/api/v2/hooks", headers={"Authorization": f"bearer {token()}"})
    assert response.status_code == 200


def test_insufficient_scope_is_403_with_auth0s_text(client, auth):
    response = client.post("/api/v2/hooks", json={}, headers=auth("read:hooks"))
    assert response.status_code == 403
    assert response.json == {"statusCode": 403, "error": "Forbidden",
                             "message": "Insufficient scope; expected any of: create:hooks.",
                             "errorCode": "insufficient_scope"}


@pytest.mark.parametrize("method, path, scope", SCOPED,
                         ids=[f"{m} {p}" for m, p, _ in SCOPED])
def test_each_route_needs_its_scope(client, auth, method, path, scope):
    """Every scope but the needed ones gets 403; auth comes before 404 and body checks."""
    others = [s for s in SCOPES if s not in wanted(scope)]
    response = client.open(concrete(path), method=method.upper(), json={},
                           headers=auth(*others))
    assert response.status_code == 403
    assert response.json["message"] == \
        f"Insufficient scope; expected any of: {', '.join(wanted(scope))}."
    anonymous = client.open(concrete(path), method=method.upper(), json={})
    assert anonymous.status_code == 401


@pytest.mark.parametrize("method, path, scope", ALONE,
                         ids=[f"{m} {p} {s}" for m, p, s in ALONE])
def test_the_scope_alone_is_enough(client, auth, method, path, scope):
    response = client.open(concrete(path), method=method.upper(), json={},
                           headers=auth(scope))
    assert response.status_code not in (401, 403), response.json
