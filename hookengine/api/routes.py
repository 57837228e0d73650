"""Route declaration shared by every blueprint: scope, schemas and docs in one place.

`route()` registers a view with its required scope and its request/response JSON Schemas;
the same schemas validate request bodies (`json_body`) and query strings (`query_args`) and
build /api/v2/openapi.json, so the document cannot drift from the code.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import current_app, g, request
from werkzeug.routing import BaseConverter

from hookengine.auth import require_scope
from hookengine.errors import (BadRequest, InvalidQuery, PreconditionFailed,
                               UnsupportedMediaType, ValidationError)
from hookengine.validation import matches, schema_problems

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
    scope: str | tuple[str, ...] | None  # a tuple: any one of them is enough
    summary: str
    status: int
    body: dict | None = None
    response: dict | None = None
    query: dict = field(default_factory=dict)
    tag: str = "hooks"
    errors: tuple[int, ...] = ()  # every error status it can answer (see error_statuses)
    content_type: str = "application/json"
    event_stream: bool = False
    headers: dict = field(default_factory=dict)  # request headers it reads: {name: schema}
    response_headers: dict = field(default_factory=dict)  # on success: {name: schema}


OPERATIONS: list[Operation] = []


def route(blueprint, rule: str, method: str, *, summary: str,
          scope: str | tuple[str, ...] | None,
          status: int = 200, body: dict | None = None, response: dict | None = None,
          query: dict | None = None, tag: str = "hooks", errors: tuple[int, ...] = (),
          content_type: str = "application/json", event_stream: bool = False,
          headers: dict | None = None, response_headers: dict | None = None):
    """Register `view` on `blueprint` for `method rule`, guarded by `scope`, and document it.

    `event_stream`: the success response may also be text/event-stream (Server-Sent Events).
    `errors`: error statuses the view itself may answer besides those `error_statuses`
    derives from the declaration (409 for a name taken, say).
    `headers`, `response_headers`: {name: schema} of the optional request headers the view
    reads itself (If-Match) and of the headers its success answer carries (ETag); documented
    only.
    """
    query = query or {}
    for name, schema in query.items():
        if schema.get("type") not in _CONVERTERS:
            raise TypeError(f"query parameter {name!r} of {method} {rule}: route() converts "
                            f"types {', '.join(_CONVERTERS)}, not {schema.get('type')!r}")

    def decorator(view):
        checked = _checking_query(view, query)
        guarded = require_scope(scope)(checked) if scope else checked
        blueprint.add_url_rule(rule, endpoint=f"{view.__name__}", view_func=guarded,
                               methods=[method])
        OPERATIONS.append(Operation(
            path=(blueprint.url_prefix or "") + rule, method=method.lower(), scope=scope,
            summary=summary, status=status, body=body, response=response,
            query=query, tag=tag, content_type=content_type, event_stream=event_stream,
            errors=error_statuses(rule, scope, body, event_stream, errors),
            headers=headers or {}, response_headers=response_headers or {}))
        return guarded
    return decorator


def error_statuses(rule: str, scope: str | None, body: dict | None, event_stream: bool,
                   extra=()) -> tuple[int, ...]:
    """Every error status a route can answer, from what its declaration says it does."""
    statuses = {400, *extra}  # every route refuses unknown query parameters
    if scope:
        # A token is checked against the token table, so the database can be busy (503).
        statuses |= {401, 403, 503}
    if body is not None:
        statuses |= {400, 413, 415}
    if "<" in rule:  # a path parameter names something that may not exist
        statuses.add(404)
    if event_stream:
        statuses.add(503)  # too many live streams
    return tuple(sorted(statuses))


def _checking_query(view, declared: dict[str, dict]):
    """Convert the query string against the declared schemas (see `query_args`) first."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        g.query = _converted_query(declared)
        return view(*args, **kwargs)
    return wrapper


def query_args() -> dict:
    """The request's query parameters, converted: every declared one, with its value, its
    schema's `default` when not sent, or None."""
    return g.query


def _converted_query(declared: dict[str, dict]) -> dict:
    """Each declared parameter converted; one 400 naming every problem (unknown parameters,
    repeated ones, values their schema refuses)."""
    problems = []
    unknown = [name for name in request.args if name not in declared]
    if unknown:
        accepted = ", ".join(declared) if declared else "no query parameters"
        problems.append(f"Unknown query parameter(s) {', '.join(map(repr, unknown))}; "
                        f"this route accepts {accepted}.")
    repeated = [name for name in declared if len(request.args.getlist(name)) > 1]
    if repeated:
        problems.append(f"Query parameter(s) {', '.join(repeated)} sent more than once; "
                        "send each at most once.")
    values = {}
    for name, schema in declared.items():
        raw = request.args.get(name)
        if raw is None:
            values[name] = schema.get("default")
        elif name not in repeated:
            values[name], problem = _convert(name, raw, schema)
            if problem:
                problems.append(problem)
    if problems:
        raise InvalidQuery(" ".join(problems), errors=problems if len(problems) > 1 else None)
    return values


def _convert(name: str, raw: str, schema: dict,
             where: str = "Query parameter") -> tuple[object, str | None]:
    """(value, None), or (None, what is wrong with `raw` for a parameter of `schema`)."""
    shown = repr(raw) if len(raw) <= 30 else repr(raw[:30]) + "..."
    value, expected = _CONVERTERS[schema["type"]](raw)
    if expected:
        return None, f"{where} {name} must be {expected} (got {shown})."
    low, high = schema.get("minimum"), schema.get("maximum")
    if value is _HUGE or (low is not None and value < low) or (high is not None and value > high):
        bounds = [f"at least {low}"] * (low is not None) + [f"at most {high}"] * (high is not None)
        expected = " and ".join(bounds) or f"an integer of at most {_DIGITS} digits"
        return None, f"{where} {name} must be {expected} (got {shown})."
    if "enum" in schema and value not in schema["enum"]:
        return None, (f"{where} {name} must be one of "
                      f"{', '.join(map(str, schema['enum']))} (got {shown}).")
    if "pattern" in schema and not matches(schema["pattern"], value):
        hint = schema.get("x-hint")
        wrong = f"is not valid (got {shown}); {hint}" if hint else \
            f"must match {schema['pattern']} (got {shown})"
        return None, f"{where} {name} {wrong}."
    return value, None


def header_value(name: str, schema: dict):
    """A request header read as a query parameter of `schema` would be (None when absent);
    a 400 says what is wrong with it."""
    raw = request.headers.get(name)
    if raw is None:
        return None
    value, problem = _convert(name, raw, schema, where="Header")
    if problem:
        raise BadRequest(problem)
    return value


# RFC 9110's entity-tag (a weak one never matches If-Match, but is well formed) and a list of
# them; an entity tag may hold commas, so the list is read with the tag's own pattern.
_ENTITY_TAG = r'(?:W/)?"[\x21\x23-\x7e\x80-\xff]*"'
_ENTITY_TAGS = re.compile(rf"[ \t]*{_ENTITY_TAG}(?:[ \t]*,[ \t]*{_ENTITY_TAG})*[ \t]*")


def if_match(what: str) -> Callable[[str, str], None] | None:
    """The request's If-Match as a check of `what`'s current state: None without the header,
    else check(etag, changed_at), which raises 412 unless the header names that ETag or is *.

    A header that is neither * nor entity tags fails the check too (RFC 9110 has no 400 for
    it: a change must not be applied on a condition the server could not read). The caller
    checks after its own 404 and 400, and where no other change can come in between.
    """
    raw = request.headers.get("If-Match")
    if raw is None:
        return None
    if raw.strip(" \t") == "*":
        tags = ["*"]
    elif _ENTITY_TAGS.fullmatch(raw):
        tags = re.findall(_ENTITY_TAG, raw)
    else:
        tags = None
    shown = repr(raw) if len(raw) <= 60 else repr(raw[:60]) + "..."

    def check(etag: str, changed_at: str) -> None:
        if tags is None:
            raise PreconditionFailed(
                f"If-Match must be * or entity tags in double quotes, as the ETag header gives "
                f"them (got {shown}); send the ETag of the {what} you loaded as it came, or "
                "leave If-Match out to overwrite whatever is there.")
        if "*" not in tags and etag not in tags:
            raise PreconditionFailed(
                f"The {what} was changed since you loaded it (at {changed_at}); reload it to "
                "see the change, or send the update again without If-Match to overwrite it.")
    return check


_HUGE = object()  # an integer too long to be in any range: not converted at all
_DIGITS = 30


def _integer(raw: str):
    # int() alone would also take "1_000", " 7 " and non-ASCII digits such as "٣".
    if not re.fullmatch(r"[+-]?[0-9]+", raw):
        return None, "an integer"
    return (int(raw) if len(raw) <= _DIGITS else _HUGE), None


def _boolean(raw: str):
    value = {"true": True, "1": True, "false": False, "0": False}.get(raw.lower())
    return (None, "true or false") if value is None else (value, None)


_CONVERTERS = {"integer": _integer, "boolean": _boolean, "string": lambda raw: (raw, None)}


class HookId(BaseConverter):
    """`<hook_id:id>`: a hook's id in /hooks/<id>, which is anything but `check`. That is
    POST /hooks/check's own path, so OPTIONS on it must name POST alone, and GET, PATCH or
    DELETE on it are 405, not a search for a hook called "check" (ids are ULIDs)."""

    regex = r"(?!check$)[^/]+"


CONVERTERS = {"hook_id": HookId}


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
        problems = schema_problems(schema, data)
        if problems:
            raise ValidationError("Payload validation error", problems)
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


def paginate(total: int, items: list, page: int, per_page: int, key: str, include_totals: bool):
    """Auth0's list shape: a bare array, or {total, start, limit, <key>} with include_totals."""
    if include_totals:
        return {"total": total, "start": page * per_page, "limit": per_page, key: items}
    return items
