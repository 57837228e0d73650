"""The extensibility points: their description and sample payload, and the production path."""

from __future__ import annotations

from flask import Blueprint

from hookengine.api import schemas
from hookengine.api.routes import engine, json_body, route
from hookengine.api.runs import secrets_hint
from hookengine.errors import BadRequest, NotFound
from hookengine.sandbox import Status
from hookengine.triggers import TRIGGERS, get_trigger

bp = Blueprint("triggers", __name__, url_prefix="/api/v2")


@route(bp, "/triggers", "GET", scope="read:hooks", tag="triggers",
       response={"type": "array", "items": schemas.TRIGGER},
       summary="The five extensibility points")
def list_triggers():
    return [trigger.describe() for trigger in TRIGGERS.values()]


@route(bp, "/triggers/<trigger_id>", "GET", scope="read:hooks", tag="triggers",
       response=schemas.TRIGGER, summary="One extensibility point, with its sample payload")
def get_trigger_description(trigger_id):
    return get_trigger(trigger_id).describe()


@route(bp, "/triggers/<trigger_id>/execute", "POST", scope="execute:hooks", tag="triggers",
       body=schemas.TRIGGER_EXECUTE, response=schemas.EXECUTE_RESPONSE,
       summary="Run the enabled hook of a trigger (production path)")
def execute_trigger(trigger_id):
    payload = _payload(get_trigger(trigger_id), json_body())
    hook = engine().hooks.enabled_for(trigger_id)
    if hook is None:
        raise NotFound(f"No hook is enabled for trigger {trigger_id!r}; enable one with "
                       "PATCH /api/v2/hooks/{id} {\"enabled\": true}.",
                       error_code="no_enabled_hook")
    with secrets_hint(hook["id"]):
        record = engine().runner.run(hook, payload, source="trigger")
    if record["status"] == Status.SUCCESS:
        return {"status": "success", "data": record["result"], "execution_id": record["id"]}
    error = {k: v for k, v in (record["error"] or {}).items() if k != "stack"}
    return {"status": "error", "data": error, "execution_id": record["id"]}


def _payload(trigger, body):
    """The trigger's parameters: the body itself, or, as the Run route takes them, the object
    in a body of exactly {"payload": {...}}; 400 saying both shapes for anything else.

    Only the shape is judged here; the runner checks the parameters' values.
    """
    wrapped = body.get("payload") if isinstance(body, dict) and len(body) == 1 else None
    if isinstance(wrapped, dict):
        return wrapped
    unexpected = sorted(set(body) - set(trigger.params)) if isinstance(body, dict) else None
    if unexpected is None or unexpected:
        params = ", ".join(trigger.params)
        got = ("unexpected " + ", ".join(map(repr, unexpected)) if unexpected
               else _JSON_KINDS.get(type(body), "something else"))
        raise BadRequest(f"The body must be {{{params}}} (the parameters of "
                         f"{trigger.entry_function}), or {{\"payload\": {{{params}}}}} as "
                         f"POST /api/v2/hooks/{{id}}/run takes them; got {got}.")
    return body


_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "a boolean"}
