"""Route declaration shared by every blueprint: scope, schemas and docs in one place.

`route()` registers a view with its required scope and its request/response JSON Schemas;
the same schemas validate request bodies (`json_body`) and build /api/v2/openapi.json, so
the document cannot drift from the code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app, request
from jsonschema import Draft202012Validator

from hookengine.auth import require_scope
from hookengine.errors import BadRequest, InvalidQuery, UnsupportedMediaType, ValidationError


@dataclass
class Operation:
    """One documented API operation (read by the OpenAPI generator)."""

    path: str
    method: str
    scope: str | None
    summary: str
    status: int
    body: dict | None = None
    response: dict | None = None
    query: dict = field(default_factory=dict)
    tag: str = "hooks"
    errors: tuple[int, ...] = (400, 401, 403, 404)
    content_type: str = "application/json"


OPERATIONS: list[Operation] = []


def route(blueprint, rule: str, method: str, *, summary: str, scope: str | None,
          status: int = 200, body: dict | None = None, response: dict | None = None,
          query: dict | None = None, tag: str = "hooks", errors=(400, 401, 403, 404),
          content_type: str = "application/json"):
    """Register `view` on `blueprint` for `method rule`, guarded by `scope`, and document it."""
    def decorator(view):
        guarded = require_scope(scope)(view) if scope else view
        blueprint.add_url_rule(rule, endpoint=f"{view.__name__}", view_func=guarded,
                               methods=[method])
        OPERATIONS.append(Operation(
            path=(blueprint.url_prefix or "") + rule, method=method.lower(), scope=scope,
            summary=summary, status=status, body=body, response=response,
            query=query or {}, tag=tag, errors=tuple(errors), content_type=content_type))
        return guarded
    return decorator


def engine():
    """The Engine (services) of the current app."""
    return current_app.extensions["hookengine"]


def json_body(schema: dict | None = None):
    """The request's JSON body, validated against `schema`; 415/400 say what to fix."""
    if not request.is_json:
        raise UnsupportedMediaType(
            f"Content-Type must be application/json (got {request.content_type or 'none'}).")
    data = request.get_json(silent=True)
    if data is None:
        raw = request.get_data(cache=True)
        if raw.strip() in (b"", b"null"):
            raise BadRequest("The request body is empty; send a JSON document.")
        raise BadRequest("The request body is not valid JSON; check quotes, commas and "
                         "brackets.")
    if schema is not None:
        problems = sorted(Draft202012Validator(schema).iter_errors(data),
                          key=lambda e: list(e.absolute_path))
        if problems:
            raise ValidationError("Payload validation error",
                                  [_describe(p) for p in problems])
    return data


def _describe(error) -> str:
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message


def query_int(name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidQuery(f"Query parameter {name} must be an integer (got {raw!r}).") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f" and at most {maximum}" if maximum is not None else ""
        raise InvalidQuery(f"Query parameter {name} must be at least {minimum}{bound} "
                           f"(got {value}).")
    return value


def query_bool(name: str, default: bool | None = None) -> bool | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise InvalidQuery(f"Query parameter {name} must be true or false (got {raw!r}).")


def paginate(total: int, items: list, page: int, per_page: int, key: str, include_totals: bool):
    """Auth0's list shape: a bare array, or {total, start, limit, <key>} with include_totals."""
    if include_totals:
        return {"total": total, "start": page * per_page, "limit": per_page, key: items}
    return items
