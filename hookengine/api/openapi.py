"""GET /api/v2/openapi.json: the OpenAPI 3.1 document, built from the declared operations."""

from __future__ import annotations

import re
from http import HTTPStatus
from importlib import metadata

from flask import Blueprint

from hookengine.api import schemas
from hookengine.api.routes import OPERATIONS, Operation, route

bp = Blueprint("openapi", __name__, url_prefix="/api/v2")

# Flask's `<converter:name>` and `<name>` in a rule become OpenAPI's `{name}`.
RULE_VARIABLE = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
ERROR_REF = {"$ref": "#/components/schemas/Error"}


@route(bp, "/openapi.json", "GET", summary="This API's OpenAPI document", scope=None,
       tag="meta")
def get_openapi():
    """Describe every operation registered so far (read at request time, not import time)."""
    return document()


def document() -> dict:
    """The whole OpenAPI 3.1 document."""
    paths: dict[str, dict] = {}
    for operation in OPERATIONS:
        path = RULE_VARIABLE.sub(r"{\1}", operation.path)
        paths.setdefault(path, {})[operation.method] = _operation(operation, path)
    return {
        "openapi": "3.1.0",
        "info": {"title": "hookengine Management API", "version": _version(),
                 "description": "Hooks, secrets, runs and executions; hooks and secrets are "
                                "compatible with Auth0 Management API v2."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": {"Error": schemas.ERROR},
            "securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer",
                "description": "A token from `hookengine token create`."}},
        },
    }


def _operation(operation: Operation, path: str) -> dict:
    doc = {
        "operationId": _operation_id(operation.method, path),
        "summary": operation.summary,
        "tags": [operation.tag],
        # An empty list says "no authentication" explicitly, rather than leaving it unstated.
        # One requirement per scope that is enough on its own (GET /logs: either of two).
        "security": [{"bearerAuth": [scope]} for scope in _scopes(operation.scope)],
        "responses": _responses(operation),
    }
    parameters = _parameters(operation, path)
    if parameters:
        doc["parameters"] = parameters
    if operation.body is not None:
        doc["requestBody"] = {"required": True, "content": {
            operation.content_type: {"schema": operation.body}}}
    return doc


def _scopes(scope: str | tuple[str, ...] | None) -> tuple[str, ...]:
    return () if scope is None else (scope,) if isinstance(scope, str) else scope


def _parameters(operation: Operation, path: str) -> list[dict]:
    parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                  for name in re.findall(r"{([^{}]+)}", path)]
    for where, declared in (("query", operation.query), ("header", operation.headers)):
        for name, schema in declared.items():
            schema = dict(schema)
            parameter = {"name": name, "in": where, "required": False}
            if "description" in schema:
                parameter["description"] = schema.pop("description")
            parameters.append({**parameter, "schema": schema})
    return parameters


def _responses(operation: Operation) -> dict:
    success: dict = {"description": HTTPStatus(operation.status).phrase}
    if operation.response is not None:
        success["content"] = {"application/json": {"schema": operation.response}}
    if operation.event_stream:
        success.setdefault("content", {})["text/event-stream"] = {"schema": {
            "type": "string", "description": "Server-Sent Events: `event: log` with one log "
                                            "line as JSON in `data`; comment lines as heartbeat."}}
    if operation.response_headers:
        success["headers"] = {name: _header(schema)
                              for name, schema in operation.response_headers.items()}
    responses = {str(operation.status): success}
    for status in operation.errors:
        responses[str(status)] = {"description": HTTPStatus(status).phrase,
                                  "content": {"application/json": {"schema": ERROR_REF}}}
    return responses


def _header(schema: dict) -> dict:
    """A response header's OpenAPI object: always sent, described as its schema says."""
    schema = dict(schema)
    header = {"required": True}
    if "description" in schema:
        header["description"] = schema.pop("description")
    return {**header, "schema": schema}


def _operation_id(method: str, path: str) -> str:
    # GET /api/v2/hooks/{id}/secrets -> get_hooks_by_id_secrets, in the style of Auth0 ids.
    words = [f"by_{part[1:-1]}" if part.startswith("{") else part
             for part in path.removeprefix("/api/v2/").split("/") if part]
    return "_".join([method, *(re.sub(r"\W", "_", word) for word in words)])


def _version() -> str:
    try:
        return metadata.version("hookengine")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"
