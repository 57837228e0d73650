"""Route declaration shared by every blueprint: scope, schemas and docs in one place.

`route()` registers a view with its required scope and its request/response JSON Schemas;
the same schemas validate request bodies (`json_body`) and build /api/v2/openapi.json, so
the document cannot drift from the code.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from flask import current_app, request
from jsonschema import Draft202012Validator

from hookengine.auth import require_scope
from hookengine.errors import BadRequest, InvalidQuery, UnsupportedMediaType, ValidationError

# Largest `page`: page * per_page must fit SQLite's 64-bit OFFSET (and a JavaScript number).
MAX_PAGE = 2**31 - 1
# Deeper request bodies would exhaust Python's recursion limit in the code that walks them
# (parsing, secret redaction): a 500 instead of a 400.
MAX_BODY_DEPTH = 100


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
    event_stream: bool = False


OPERATIONS: list[Operation] = []


def route(blueprint, rule: str, method: str, *, summary: str, scope: str | None,
          status: int = 200, body: dict | None = None, response: dict | None = None,
          query: dict | None = None, tag: str = "hooks", errors=(400, 401, 403, 404),
          content_type: str = "application/json", event_stream: bool = False):
    """Register `view` on `blueprint` for `method rule`, guarded by `scope`, and document it.

    `event_stream`: the success response may also be text/event-stream (Server-Sent Events).
    """
    def decorator(view):
        checked = _checking_query(view, tuple(query or {}))
        guarded = require_scope(scope)(checked) if scope else checked
        blueprint.add_url_rule(rule, endpoint=f"{view.__name__}", view_func=guarded,
                               methods=[method])
        OPERATIONS.append(Operation(
            path=(blueprint.url_prefix or "") + rule, method=method.lower(), scope=scope,
            summary=summary, status=status, body=body, response=response,
            query=query or {}, tag=tag, errors=tuple(errors), content_type=content_type,
            event_stream=event_stream))
        return guarded
    return decorator


def _checking_query(view, known: tuple[str, ...]):
    """400 for a query parameter the route does not take, or one sent more than once."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        unknown = [name for name in request.args if name not in known]
        if unknown:
            accepted = ", ".join(known) if known else "no query parameters"
            raise InvalidQuery(f"Unknown query parameter(s) {', '.join(map(repr, unknown))}; "
                               f"this route accepts {accepted}.")
        repeated = [name for name in known if len(request.args.getlist(name)) > 1]
        if repeated:
            raise InvalidQuery(f"Query parameter(s) {', '.join(repeated)} sent more than once; "
                               "send each at most once.")
        return view(*args, **kwargs)
    return wrapper


def engine():
    """The Engine (services) of the current app."""
    return current_app.extensions["hookengine"]


def json_body(schema: dict | None = None):
    """The request's JSON body, validated against `schema`; 415/400 say what to fix."""
    if not request.is_json:
        raise UnsupportedMediaType(
            f"Content-Type must be application/json (got {request.content_type or 'none'}).")
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # nested deeper than the JSON parser can go
        data = _TOO_DEEP
    if data is _TOO_DEEP or _depth(data) > MAX_BODY_DEPTH:
        raise BadRequest(f"The request body is nested more than {MAX_BODY_DEPTH} levels deep; "
                         "send a flatter JSON document.")
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


_TOO_DEEP = object()


def _depth(data) -> int:
    """Nesting depth of JSON data (a scalar is 0), without recursion."""
    deepest, stack = 0, [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = value.values()
        elif not isinstance(value, list):
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((item, depth + 1) for item in value)
    return deepest


def _describe(error) -> str:
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message


def query_int(name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    # int() alone would also take "1_000", " 7 " and non-ASCII digits such as "٣".
    if not re.fullmatch(r"[+-]?[0-9]+", raw):
        raise InvalidQuery(f"Query parameter {name} must be an integer (got {raw!r}).")
    value = int(raw) if len(raw) <= 30 else None  # None: far out of any range
    if value is None or value < minimum or (maximum is not None and value > maximum):
        bound = f" and at most {maximum}" if maximum is not None else ""
        shown = raw if len(raw) <= 30 else raw[:30] + "..."
        raise InvalidQuery(f"Query parameter {name} must be at least {minimum}{bound} "
                           f"(got {shown}).")
    return value


def query_bool(name: str, default: bool | None = None) -> bool | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise InvalidQuery(f"Query parameter {name} must be true or false (got {raw!r}).")


def query_choice(name: str, choices: list[str]) -> str | None:
    raw = request.args.get(name)
    if raw is not None and raw not in choices:
        raise InvalidQuery(f"Query parameter {name} must be one of {', '.join(choices)} "
                           f"(got {raw[:40]!r}).")
    return raw


def paginate(total: int, items: list, page: int, per_page: int, key: str, include_totals: bool):
    """Auth0's list shape: a bare array, or {total, start, limit, <key>} with include_totals."""
    if include_totals:
        return {"total": total, "start": page * per_page, "limit": per_page, key: items}
    return items
