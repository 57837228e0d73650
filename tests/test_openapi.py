"""/api/v2/openapi.json: a valid OpenAPI 3.1 document that lists every route the app serves."""

from __future__ import annotations

import re
import sqlite3
from importlib import metadata

import pytest
from openapi_spec_validator import validate

from hookengine.api import schemas
from hookengine.api.routes import OPERATIONS, Operation
from hookengine.auth import SCOPES


@pytest.fixture
def doc(client):
    response = client.get("/api/v2/openapi.json")  # no token: the document is public
    assert response.status_code == 200
    return response.json


def test_document_is_valid_openapi_3_1(doc):
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["version"] == metadata.version("hookengine")


def test_every_served_route_is_documented(app, doc):
    served = set()
    for rule in app.url_map.iter_rules():
        # The editor's pages and files are HTML and assets, not API (README, "Web editor").
        if rule.endpoint in ("static", "home") or rule.endpoint.startswith("ui."):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        served |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert served and served == documented


def test_operations_carry_scope_schemas_and_errors(doc):
    create = doc["paths"]["/api/v2/hooks"]["post"]
    assert create["security"] == [{"bearerAuth": ["create:hooks"]}]
    assert create["requestBody"]["content"]["application/json"]["schema"] == schemas.HOOK_CREATE
    assert create["responses"]["201"]["content"]["application/json"]["schema"] == schemas.HOOK
    for status in ("400", "401", "403", "409", "413", "415"):
        error = create["responses"][status]["content"]["application/json"]["schema"]
        assert error == {"$ref": "#/components/schemas/Error"}
    assert doc["components"]["schemas"]["Error"] == schemas.ERROR
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert "content" not in doc["paths"]["/api/v2/hooks/{id}"]["delete"]["responses"]["204"]
    assert doc["paths"]["/api/v2/openapi.json"]["get"]["security"] == []


def test_parameters_are_declared(doc):
    listing = doc["paths"]["/api/v2/hooks"]["get"]
    query = {p["name"]: p for p in listing["parameters"]}
    assert set(query) == {"page", "per_page", "include_totals", "enabled", "triggerId",
                          "fields", "include_fields"}
    assert query["per_page"]["schema"]["maximum"] == 100
    assert all(p["in"] == "query" and not p["required"] for p in query.values())
    secrets = doc["paths"]["/api/v2/hooks/{id}/secrets"]["delete"]
    assert secrets["parameters"] == [{"name": "id", "in": "path", "required": True,
                                      "schema": {"type": "string"}}]


def test_every_scoped_operation_states_its_scope(doc):
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if path not in ("/api/v2/openapi.json", "/healthz", "/readyz"):
                # Several requirements: any one is enough (GET /logs: read:logs or
                # read:logs_users); each names a scope.
                assert operation["security"], (method, path)
                for requirement in operation["security"]:
                    assert requirement["bearerAuth"], (method, path)
                assert "401" in operation["responses"] and "403" in operation["responses"]


def test_operation_ids_are_unique(doc):
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_operations_registered_later_appear(client):
    late = Operation(path="/api/v2/later/<thing_id>", method="get", scope="read:hooks",
                     summary="Registered after the app started", status=200)
    OPERATIONS.append(late)
    try:
        doc = client.get("/api/v2/openapi.json").json
    finally:
        OPERATIONS.remove(late)
    assert doc["paths"]["/api/v2/later/{thing_id}"]["get"]["summary"] == late.summary


# --- every status a route answers is in the document --------------------------------------

UNKNOWN = {"id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "execution_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV",
           "trigger_id": "no-such-trigger", "name": "no-such-factor"}
BAD_QUERY_VALUE = {"integer": "x", "boolean": "maybe", "string": "\n"}


def operations(doc):
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def failing_requests(path: str, operation: dict, ids: dict, all_scopes: dict,
                     other_scope: dict, limit: int):
    """(what, url, keyword arguments) for requests that should fail in every way a client can
    get a request wrong, against unknown and existing resources alike."""
    params = [p for p in operation.get("parameters", []) if p["in"] == "query"]
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    example = (body or {}).get("schema", {}).get("examples", [{}])[0]
    for which, values in (("unknown id", UNKNOWN), ("existing id", ids)):
        url = re.sub(r"{([^{}]+)}", lambda m: values[m.group(1)], path)
        sent = {"json": example} if body else {}
        yield which, url, {"headers": all_scopes, **sent}
        if operation["security"]:
            yield "missing token", url, sent
            yield "wrong scope", url, {"headers": other_scope, **sent}
        yield "unknown query parameter", url + "?unknown=1", {"headers": all_scopes, **sent}
        for param in params:
            bad = BAD_QUERY_VALUE[param["schema"]["type"]]
            yield f"bad {param['name']}", url, {"headers": all_scopes, **sent,
                                                "query_string": {param["name"]: bad}}
        if body:
            yield "invalid JSON", url, {"headers": all_scopes, "data": b"{",
                                        "content_type": "application/json"}
            yield "wrong type", url, {"headers": all_scopes, "json": [[]]}
            yield "not JSON", url, {"headers": all_scopes, "data": b"x=1",
                                    "content_type": "text/plain"}
        yield "big body", url, {"headers": all_scopes, "data": b" " * (limit + 1),
                                "content_type": "application/json"}


@pytest.fixture
def existing_ids(make_hook, engine, sample_payload):
    hook = make_hook()
    record = engine.runner.run(hook, sample_payload("send-phone-message"))
    return {"id": hook["id"], "execution_id": record["id"], "trigger_id": "send-phone-message",
            "name": "sms"}


def test_every_status_a_route_answers_is_documented(client, doc, engine, auth, existing_ids):
    limit = engine.settings["MAX_BODY_BYTES"]
    seen = set()
    for path, method, operation in operations(doc):
        scopes = [s for r in operation["security"] for s in r["bearerAuth"]]
        other = auth(next(s for s in SCOPES if s not in scopes)) if scopes else {}
        for what, url, kwargs in failing_requests(path, operation, existing_ids, auth(), other,
                                                  limit):
            response = client.open(url, method=method.upper(), **kwargs)
            status = str(response.status_code)
            assert status in operation["responses"], (method, path, what, response.json)
            seen.add(status)
    assert seen >= {"200", "201", "204", "400", "401", "403", "404", "409", "413", "415"}


def test_a_busy_database_answers_a_documented_503(client, doc, auth, engine, monkeypatch):
    headers = auth()
    paths = [(p, m, o) for p, m, o in operations(doc) if o["security"]]

    def busy():
        raise sqlite3.OperationalError("database is locked")
    monkeypatch.setattr(engine.store, "connection", busy)
    for path, method, operation in paths:
        url = re.sub(r"{([^{}]+)}", lambda m: UNKNOWN[m.group(1)], path)
        response = client.open(url, method=method.upper(), headers=headers, json={})
        assert response.status_code == 503, (method, path, response.json)
        assert "503" in operation["responses"], (method, path)


def test_too_many_log_streams_answers_a_documented_503(client, doc, auth, engine, make_hook):
    streams = [(p, m, o) for p, m, o in operations(doc)
               if "text/event-stream" in o["responses"].get("200", {}).get("content", {})]
    hook = make_hook()
    taken = 0
    while engine.followers.acquire(blocking=False):
        taken += 1
    try:
        for path, method, operation in streams:
            follow = {p["name"]: "true" for p in operation["parameters"]
                      if p["in"] == "query" and p["schema"]["type"] == "boolean"}
            response = client.open(path.replace("{id}", hook["id"]), method=method.upper(),
                                   headers=auth(), query_string=follow)
            assert response.status_code == 503, response.json
            assert "503" in operation["responses"]
    finally:
        for _ in range(taken):
            engine.followers.release()
    assert streams
