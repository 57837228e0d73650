"""Run button, execution records and hook logs (live with ?follow=true, as Server-Sent Events)."""

from __future__ import annotations

import contextlib
import json
import time

from flask import Blueprint, Response, g, request, stream_with_context

from hookengine.api.routes import (engine, header_value, json_body, paginate,
                                   query_args, route)
from hookengine.api.schemas import PAGE_QUERY, paged
from hookengine.auth import check_scope
from hookengine.clock import as_utc_text
from hookengine.errors import BadRequest, InvalidQuery, MissingSecrets, ServiceUnavailable
from hookengine.sandbox import LOG_STREAMS, Status
from hookengine.triggers import TRIGGERS

SOURCES = ("test", "trigger")
# Positions are 64-bit (on PostgreSQL, a transaction id shifted; see pgstore.LINE_SHIFT).
MAX_POSITION = 2**63 - 1

bp = Blueprint("runs", __name__, url_prefix="/api/v2")

REQUEST = {"type": "object", "description": "An outbound HTTP request the hook made.",
           "properties": {
               "method": {"type": "string"}, "host": {"type": "string"},
               "path": {"type": "string", "description": "Without the query string."},
               "status": {"type": ["integer", "null"],
                          "description": "null when no answer came (refused, unreachable)."},
               "duration_ms": {"type": "number"},
               "error_code": {"type": ["string", "integer"],
                              "description": "The provider's error code, from a JSON error."},
               "error_message": {"type": "string"},
               "error": {"type": "string", "description": "Why no answer came."}}}
LOG_LINE = {"type": "object", "properties": {
    "time": {"type": "string"}, "stream": {"type": "string", "enum": list(LOG_STREAMS)},
    "message": {"type": "string"},
    "request": {**REQUEST, "description": "On `http` lines: the request the line shows."}}}
EXECUTION = {"type": "object", "properties": {
    "id": {"type": "string"}, "hook_id": {"type": "string"}, "trigger_id": {"type": "string"},
    "source": {"type": "string", "enum": list(SOURCES)},
    "status": {"type": "string", "enum": list(Status)},
    "payload": {}, "result": {},
    "error": {"type": ["object", "null"], "properties": {
        "name": {"type": "string"}, "message": {"type": "string"},
        "stack": {"type": "string"}}},
    "logs": {"type": "array", "items": LOG_LINE,
             "description": "Every line, in the order printed; a failed run ends with an "
             "`error` line."},
    "http_requests": {"type": "array", "items": REQUEST,
                      "description": "Every outbound HTTP request, in order."},
    "stats": {"type": "object", "properties": {
        "total_duration_ms": {"type": "number"}, "boot_duration_ms": {"type": "number"},
        "hook_duration_ms": {"type": "number"}}},
    "node_id": {"type": ["string", "null"], "description": "The node (a `hookengine serve` "
                "process) that ran it; null for runs recorded before nodes existed."},
    "started_at": {"type": "string"}, "ended_at": {"type": ["string", "null"],
                                                   "description": "For an interrupted "
                                                   "execution, the last moment it was known "
                                                   "alive."}}}
RUN_BODY = {"type": "object", "additionalProperties": False, "properties": {
    "payload": {"type": "object", "description": "The trigger's parameters; the trigger's "
                "sample payload when omitted."},
    "script": {"type": "string", "minLength": 1,
               "description": "Run this draft instead of the saved script (not saved)."},
    "dependencies": {"type": "object", "additionalProperties": {"type": "string"}}},
    "x-hint": "send the trigger's parameters inside payload: {\"payload\": {...}}; script "
              "and dependencies run an unsaved draft",
    "examples": [{}, {"payload": TRIGGERS["send-phone-message"].sample_payload}]}
PAGING = {**PAGE_QUERY, "per_page": {**PAGE_QUERY["per_page"], "minimum": 1}}
# The shape is checked first: Python's ISO parser would also take 5,000 digits as a date.
TIME_QUERY = {"type": "string", "format": "date-time",
              "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}(:[0-9]{2}(:[0-9]{2}"
                         r"(\.[0-9]{1,6})?)?)?)?(Z|[+-][0-9]{2}:[0-9]{2})?$",
              "x-hint": "send an ISO 8601 time such as 2026-12-01T09:30:00Z"}
EXECUTION_FILTERS = {
    "status": {"type": "string", "enum": list(Status)},
    "source": {"type": "string", "enum": list(SOURCES)},
    "from": {**TIME_QUERY, "description": "Executions started at or after this time."},
    "to": {**TIME_QUERY, "description": "Executions started before this time."}}
LOGS_QUERY = {
    "follow": {"type": "boolean", "default": False},
    "after": {"type": "integer", "minimum": 0, "maximum": MAX_POSITION,
              "description": "With follow=true: stream the lines after this position (the "
              "`id` of an event; default: now). A reconnecting client's Last-Event-ID header "
              "does the same, and wins."}}
HEARTBEAT_SECONDS = 5.0
FOLLOW_MAX_SECONDS = 3600.0
# How often a stream with nothing new checks that its client is still there.
FOLLOW_POLL_SECONDS = 0.25


@route(bp, "/hooks/<id>/run", "POST", scope="execute:hooks", body=RUN_BODY,
       response=EXECUTION, summary="Run a hook (or an unsaved draft of it, which also "
       "needs update:hooks) on a payload", tag="runs")
def run_hook(id):
    """The Run button: a test run, recorded like any other."""
    body = json_body(RUN_BODY)
    if "script" in body or "dependencies" in body:
        # A draft runs with the hook's real secrets, so writing one is editing the hook: an
        # execute-only token (the identity platform's) must not be able to read secrets out.
        check_scope(g.scopes, "update:hooks", " A draft script or dependencies need it too.")
    if "dependencies" in body and "script" not in body:
        raise BadRequest("dependencies apply to a draft: send them with `script`, or change "
                         "the saved hook with PATCH /api/v2/hooks/{id}.")
    hook = engine().hooks.get(id)
    with secrets_hint(id):
        return engine().runner.run(hook, body.get("payload"), "test", body.get("script"),
                                   body.get("dependencies"))


@contextlib.contextmanager
def secrets_hint(hook_id: str):
    """A missing secret's 400 says how to set it through this API."""
    try:
        yield
    except MissingSecrets as error:
        raise error.with_hint(f"Set them with POST /api/v2/hooks/{hook_id}/secrets before "
                              "running it.") from None


EXECUTION_LIST = paged(EXECUTION, "executions")


@route(bp, "/hooks/<id>/executions", "GET", scope="read:hooks",
       query={**PAGING, **EXECUTION_FILTERS}, response=EXECUTION_LIST, tag="runs",
       summary="Executions of a hook, newest first, filtered by status, source and time")
def list_executions(id):
    """One hook's executions."""
    engine().hooks.get(id)
    return _executions({"hook_id": id})


@route(bp, "/executions", "GET", scope="read:hooks", query={**PAGING, **EXECUTION_FILTERS},
       response=EXECUTION_LIST, tag="runs",
       summary="Executions of every hook, newest first, filtered by status, source and time")
def list_all_executions():
    """Every hook's executions (those of deleted hooks too)."""
    return _executions({})


def _executions(filters: dict):
    query = query_args()
    filters.update(status=query["status"], source=query["source"])
    for name in ("from", "to"):
        raw = query[name]
        try:
            filters[name] = None if raw is None else as_utc_text(raw)
        except ValueError:
            raise InvalidQuery(f"Query parameter {name} must be an ISO 8601 time such as "
                               f"2026-12-01T09:30:00Z (got {raw[:40]!r}).") from None
    page, per_page = query["page"], query["per_page"]
    total, items = engine().executions.list(filters, page, per_page)
    return paginate(total, items, page, per_page, "executions", query["include_totals"])


@route(bp, "/executions/<execution_id>", "GET", scope="read:hooks", response=EXECUTION,
       tag="runs", summary="One execution, whole")
def get_execution(execution_id):
    """One execution: payload, result, error, every line and outbound request, stats."""
    return engine().executions.get(execution_id)


@route(bp, "/hooks/<id>/logs", "GET", scope="read:hooks", tag="runs", event_stream=True,
       query=LOGS_QUERY,
       response={"type": "object", "properties": {"logs": {"type": "array", "items": {
           **LOG_LINE, "properties": {**LOG_LINE["properties"],
                                      "execution_id": {"type": "string"}}}}}},
       summary="Log lines of recent executions, newest first; ?follow=true streams each line "
       "as it is printed")
def hook_logs(id):
    """Recent lines, or (follow) a live stream of Server-Sent Events."""
    engine().hooks.get(id)
    after = query_args()["after"]  # checked even when unused: no silent typos
    if not query_args()["follow"]:
        return {"logs": engine().executions.log_lines(
            id, engine().settings["EXECUTIONS_PER_HOOK_LOGS"])}
    # The browser's own reconnect: newer than the URL's `after`, and read by its rule.
    resume = header_value("Last-Event-ID", LOGS_QUERY["after"])
    if resume is not None:
        after = resume
    gone = request.environ.get("waitress.client_disconnected", lambda: False)
    return Response(stream_with_context(_follow(engine(), id, after, gone)),
                    mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _follow(eng, hook_id: str, after: int | None, client_gone):
    """SSE: each line as an event as soon as it is stored, its position as the event's id.

    Lines are read from the store, not from this process's memory, so a follower sees runs
    served by any API server sharing the database. A stream holds a server thread, so
    followers are capped (503 beyond); a stream ends when its client goes (waitress reports
    it), when the server stops, after FOLLOW_MAX_SECONDS, or when its hook is deleted.
    Clients reconnect with `after` or Last-Event-ID.
    """
    if not eng.followers.acquire(blocking=False):
        raise ServiceUnavailable("Too many live log streams; retry later, or read "
                                 "GET /api/v2/hooks/{id}/logs without follow.")
    executions = eng.executions
    position = executions.last_position(hook_id) if after is None else after

    def stream():
        nonlocal position
        try:
            # Where a client resumes if cut off: a comment for readers of the text, and an
            # id with no data, which a browser's EventSource keeps as its Last-Event-ID
            # without dispatching an event, so its first reconnect loses nothing either.
            yield f": following after {position}\nid: {position}\n\n"
            started = last_beat = time.monotonic()
            while (time.monotonic() - started < FOLLOW_MAX_SECONDS
                   and not eng.closing.is_set() and not client_gone()):
                lines = executions.lines_after(hook_id, position)
                for line in lines:
                    position = line.pop("seq")
                    yield f"id: {position}\nevent: log\ndata: {json.dumps(line)}\n\n"
                if not lines:
                    with executions.changed:
                        executions.changed.wait(timeout=FOLLOW_POLL_SECONDS)
                if time.monotonic() - last_beat > HEARTBEAT_SECONDS:
                    last_beat = time.monotonic()
                    if not eng.hooks.exists(hook_id):
                        return
                    yield ": heartbeat\n\n"
        finally:
            eng.followers.release()
    return stream()
