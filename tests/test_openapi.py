"""/api/v2/openapi.json: a valid OpenAPI 3.1 document that lists every route the app serves."""

from __future__ import annotations

import re
from importlib import metadata

import pytest
from openapi_spec_validator import validate

from hookengine.api import schemas
from hookengine.api.routes import OPERATIONS, Operation


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
        if rule.endpoint == "static":
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
                (requirement,) = operation["security"]
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
