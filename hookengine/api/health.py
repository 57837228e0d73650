"""GET /healthz (the process answers) and GET /readyz (it can take runs), without a token."""

from __future__ import annotations

from flask import Blueprint

from hookengine import readiness
from hookengine.api.routes import engine, route
from hookengine.errors import ServiceUnavailable

bp = Blueprint("health", __name__)

HEALTHZ = {"type": "object", "properties": {"status": {"const": "ok"}}}
READYZ = {"type": "object", "properties": {
    "status": {"const": "ready"},
    "checks": {"type": "object", "additionalProperties": {"type": "string"},
               "description": "`store`, `node` (its heartbeat; draining), and "
                              "`zygote_<kind>` for each zygote started: \"ok\" "
                              "or what is wrong."}}}


# 400: for a query parameter, as on every route (these take none).
@route(bp, "/healthz", "GET", scope=None, tag="health", response=HEALTHZ, errors=(400,),
       summary="Alive: the server answers (nothing else is checked)")
def healthz():
    return {"status": "ok"}


@route(bp, "/readyz", "GET", scope=None, tag="health", response=READYZ, errors=(400, 503),
       summary="Ready: the store takes a write and every started zygote answers; 503 names "
               "the checks that failed (a dead zygote is restarted in the background)")
def readyz():
    checks = readiness.check(engine())
    failed = [f"{name}: {result}" for name, result in checks.items() if result != "ok"]
    if failed:
        raise ServiceUnavailable("Not ready: " + "; ".join(failed), errors=failed,
                                 error_code="not_ready")
    return {"status": "ready", "checks": checks}
