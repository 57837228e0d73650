"""Log streams endpoints, shaped as Auth0's /api/v2/log-streams (type http only)."""

from __future__ import annotations

from flask import Blueprint

from hookengine.api.routes import engine, json_body, route
from hookengine.logstreams import CREATE, STREAM, UPDATE

bp = Blueprint("logstreams", __name__, url_prefix="/api/v2")


@route(bp, "/log-streams", "GET", summary="Get log streams", scope="read:log_streams",
       tag="log-streams", response={"type": "array", "items": STREAM})
def get_log_streams():
    """Every log stream (Auth0 returns an array, without paging)."""
    return engine().log_streams.list()


@route(bp, "/log-streams", "POST", summary="Create a log stream", scope="create:log_streams",
       tag="log-streams", body=CREATE, response=STREAM, errors=(409,))
def create_log_stream():
    """Create an http log stream; 200 with status active (as Auth0, not 201)."""
    return engine().log_streams.create(json_body())  # checked against CREATE


@route(bp, "/log-streams/<id>", "GET", summary="Get a log stream", scope="read:log_streams",
       tag="log-streams", response=STREAM)
def get_log_stream(id):
    return engine().log_streams.get(id)


@route(bp, "/log-streams/<id>", "PATCH", summary="Update a log stream",
       scope="update:log_streams", tag="log-streams", body=UPDATE, response=STREAM)
def update_log_stream(id):
    """Change name, status (active|paused), isPriority, filters or sink (keys merged)."""
    return engine().log_streams.update(id, json_body())


@route(bp, "/log-streams/<id>", "DELETE", summary="Delete a log stream",
       scope="delete:log_streams", tag="log-streams", status=204)
def delete_log_stream(id):
    """Delete a log stream and what it had still to deliver."""
    engine().log_streams.delete(id)
    return "", 204
