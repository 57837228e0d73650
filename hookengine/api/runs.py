"""Run button, execution records and hook logs (live with ?follow=true, as Server-Sent Events)."""

from __future__ import annotations

import json
import time

from flask import Blueprint, Response, g, request, stream_with_context

from hookengine.api.routes import (MAX_PAGE, engine, json_body, paginate, query_bool, query_int,
                                   route)
from hookengine.auth import check_scope
from hookengine.errors import BadRequest, ServiceUnavailable
from hookengine.triggers import TRIGGERS

bp = Blueprint("runs", __name__, url_prefix="/api/v2")

LOG_LINE = {"type": "object", "properties": {
    "time": {"type": "string"}, "stream": {"type": "string", "enum": ["stdout", "stderr",
                                                                      "engine"]},
    "message": {"type": "string"}}}
EXECUTION = {"type": "object", "properties": {
    "id": {"type": "string"}, "hook_id": {"type": "string"}, "trigger_id": {"type": "string"},
    "source": {"type": "string", "enum": ["test", "trigger"]},
    "status": {"type": "string", "enum": ["running", "success", "error", "timeout",
                                          "memory_limit", "killed", "interrupted"]},
    "payload": {}, "result": {},
    "error": {"type": ["object", "null"], "properties": {
        "name": {"type": "string"}, "message": {"type": "string"},
        "stack": {"type": "string"}}},
    "logs": {"type": "array", "items": LOG_LINE},
    "stats": {"type": "object", "properties": {
        "total_duration_ms": {"type": "number"}, "boot_duration_ms": {"type": "number"},
        "hook_duration_ms": {"type": "number"}}},
    "started_at": {"type": "string"}, "ended_at": {"type": ["string", "null"]}}}
RUN_BODY = {"type": "object", "additionalProperties": False, "properties": {
    "payload": {"type": "object", "description": "The trigger's parameters; the trigger's "
                "sample payload when omitted."},
    "script": {"type": "string", "minLength": 1,
               "description": "Run this draft instead of the saved script (not saved)."},
    "dependencies": {"type": "object", "additionalProperties": {"type": "string"}}},
    "examples": [{}, {"payload": TRIGGERS["send-phone-message"].sample_payload}]}
PAGING = {"page": {"type": "integer", "minimum": 0, "maximum": MAX_PAGE},
          "per_page": {"type": "integer", "minimum": 1, "maximum": 100},
          "include_totals": {"type": "boolean"}}
HEARTBEAT_SECONDS = 5.0
FOLLOW_MAX_SECONDS = 3600.0


@route(bp, "/hooks/<id>/run", "POST", scope="execute:hooks", body=RUN_BODY,
       response=EXECUTION, summary="Run a hook (or an unsaved draft of it, which also "
       "needs update:hooks) on a payload",
       tag="runs", errors=(400, 401, 403, 404, 413, 415))
def run_hook(id):
    body = json_body(RUN_BODY)
    if "script" in body or "dependencies" in body:
        # A draft runs with the hook's real secrets, so writing one is editing the hook: an
        # execute-only token (the identity platform's) must not be able to read secrets out.
        check_scope(g.scopes, "update:hooks", " A draft script or dependencies need it too.")
    if "dependencies" in body and "script" not in body:
        raise BadRequest("dependencies apply to a draft: send them with `script`, or change "
                         "the saved hook with PATCH /api/v2/hooks/{id}.")
    hook = engine().hooks.get(id)
    payload = body.get("payload")
    if payload is None:
        from hookengine.triggers import get_trigger
        payload = get_trigger(hook["triggerId"]).sample_payload
    return engine().runner.run(hook, payload, source="test", script=body.get("script"),
                               dependencies=body.get("dependencies"))


EXECUTION_LIST = {
    "oneOf": [
        {"type": "array", "items": EXECUTION},
        {"type": "object", "additionalProperties": False,
         "required": ["total", "start", "limit", "executions"],
         "properties": {"total": {"type": "integer"}, "start": {"type": "integer"},
                        "limit": {"type": "integer"},
                        "executions": {"type": "array", "items": EXECUTION}}},
    ],
    "description": "A bare array, or {total, start, limit, executions} with include_totals=true.",
}


@route(bp, "/hooks/<id>/executions", "GET", scope="read:hooks", query=PAGING,
       response=EXECUTION_LIST, tag="runs",
       summary="Executions of a hook, newest first")
def list_executions(id):
    engine().hooks.get(id)
    page, per_page = query_int("page", 0, maximum=MAX_PAGE), query_int("per_page", 50, 1, 100)
    total, items = engine().executions.list_for_hook(id, page, per_page)
    return paginate(total, items, page, per_page, "executions",
                    query_bool("include_totals", False))


@route(bp, "/executions/<execution_id>", "GET", scope="read:hooks", response=EXECUTION,
       tag="runs", summary="One execution, whole")
def get_execution(execution_id):
    return engine().executions.get(execution_id)


@route(bp, "/hooks/<id>/logs", "GET", scope="read:hooks", tag="runs", event_stream=True,
       query={"follow": {"type": "boolean"},
              "after": {"type": "integer", "minimum": 0, "maximum": MAX_PAGE,
                        "description": "With follow=true: stream lines of executions that "
                        "finished after this position (the `id` of an event; default: now)."}},
       response={"type": "object", "properties": {"logs": {"type": "array", "items": LOG_LINE}}},
       summary="Log lines of recent executions, newest first; ?follow=true streams new ones")
def hook_logs(id):
    engine().hooks.get(id)
    recent = engine().settings["EXECUTIONS_PER_HOOK_LOGS"]
    after = query_int("after", None, 0, MAX_PAGE)  # checked even when unused: no silent typos
    if not query_bool("follow", False):
        return {"logs": engine().executions.log_lines(id, recent)}
    return Response(stream_with_context(_follow(engine(), id, after)),
                    mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _follow(eng, hook_id: str, after: int | None):
    """SSE: each new line as an event, as executions finish; a comment line as heartbeat.

    Lines are read from the store in the order executions finished, not from this process's
    memory, so a follower sees runs served by any API server sharing the database. A stream
    holds a server thread, so followers are capped (503 beyond) and a stream ends after
    FOLLOW_MAX_SECONDS, or when its hook is deleted; clients reconnect with `after`.
    """
    if not eng.followers.acquire(blocking=False):
        raise ServiceUnavailable("Too many live log streams; retry later, or read "
                                 "GET /api/v2/hooks/{id}/logs without follow.")
    executions = eng.executions
    position = executions.last_position(hook_id) if after is None else after

    def stream():
        nonlocal position
        try:
            yield ": following\n\n"
            started = last_beat = time.monotonic()
            while time.monotonic() - started < FOLLOW_MAX_SECONDS:
                lines, position = executions.lines_after(hook_id, position)
                for line in lines:
                    yield (f"id: {line.pop('seq')}\nevent: log\n"
                           f"data: {json.dumps(line)}\n\n")
                if not lines:
                    with executions.changed:
                        executions.changed.wait(timeout=1.0)
                if time.monotonic() - last_beat > HEARTBEAT_SECONDS:
                    last_beat = time.monotonic()
                    if not eng.hooks.exists(hook_id):
                        return
                    yield ": heartbeat\n\n"  # also how a closed client is noticed
        finally:
            eng.followers.release()
    return stream()
