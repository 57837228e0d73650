"""Tenant logs endpoints, shaped as Auth0's: search with paging, or read on from a checkpoint."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, request

from hookengine.api.routes import MAX_PAGE, engine, query_args, route
from hookengine.tenantlogs import LOG_ID_DIGITS

bp = Blueprint("logs", __name__, url_prefix="/api/v2")

SCOPES = ("read:logs", "read:logs_users")

LOG = {"type": "object", "additionalProperties": True,
       "description": "A log event: log_id (also _id), date, type, description, ip, "
                      "user_agent, client_id, client_name, user_id, details, ...",
       "properties": {"log_id": {"type": "string"}, "_id": {"type": "string"},
                      "date": {"type": "string"}, "type": {"type": "string"},
                      "details": {}}}
LOG_LIST = {
    "oneOf": [
        {"type": "array", "items": LOG},
        {"type": "object", "required": ["start", "limit", "length", "total", "logs"],
         "properties": {"start": {"type": "integer"}, "limit": {"type": "integer"},
                        "length": {"type": "integer"}, "total": {"type": "integer"},
                        "logs": {"type": "array", "items": LOG}}},
    ],
    "description": "A bare array, or {start, limit, length, total, logs} with "
                   "include_totals=true.",
}

_QUERY_TEXT = {"type": "string", "pattern": r"^[^\x00]{0,1000}$",
               "x-hint": "a search query of at most 1000 characters",
               "description": "Search query (Lucene subset): type:gd_send_sms, "
                              "user_id:\"auth0|...\", type:(gd_send_sms OR gd_send_voice), "
                              "date:[2025-01-01 TO *], wildcards, AND/OR/NOT."}
_FIELD = r"[A-Za-z_][A-Za-z0-9_]*"
LOGS_QUERY = {
    "page": {"type": "integer", "minimum": 0, "maximum": MAX_PAGE, "default": 0,
             "description": "0-based page; pages reach the first 1000 results."},
    "per_page": {"type": "integer", "minimum": 0, "maximum": 100, "default": 50},
    "sort": {"type": "string", "pattern": "^date:(1|-1)$", "default": "date:-1",
             "x-hint": "send date:-1 (newest first) or date:1",
             "description": "date:-1 (newest first, the default) or date:1."},
    "fields": {"type": "string", "pattern": f"^ *(?:{_FIELD} *(?:, *{_FIELD} *)*)?$",
               "x-hint": "list field names separated by commas",
               "description": "Comma-separated fields to include (or exclude, with "
                              "include_fields=false)."},
    "include_fields": {"type": "boolean", "default": True},
    "include_totals": {"type": "boolean", "default": False,
                       "description": "Return {start, limit, length, total, logs} instead "
                                      "of an array."},
    "from": {"type": "string", "pattern": f"^[0-9]{{1,{LOG_ID_DIGITS}}}$",
             "x-hint": "send a log_id",
             "description": "Checkpoint: the logs recorded after this log_id, oldest first "
                            "(then only `take` applies); the Link header names the next "
                            "checkpoint."},
    "take": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50},
    "q": _QUERY_TEXT,
    "search": {**_QUERY_TEXT, "description": "Same as q (the Python SDK sends this name)."},
}


@route(bp, "/logs", "GET", summary="Search log events", scope=SCOPES, tag="logs",
       response=LOG_LIST, query=LOGS_QUERY)
def get_logs():
    """Search logs a page at a time, or read on from a checkpoint (`from`)."""
    query = query_args()
    logs = engine().logs
    if query["from"] is not None:
        return _checkpoint(query)
    text = " AND ".join(f"({q})" for q in (query["q"], query["search"]) if q and q.strip())
    page, per_page = query["page"], query["per_page"]
    total, found = logs.search(text, page=page, per_page=per_page,
                               ascending=query["sort"] == "date:1")
    found = _select_fields(found)
    if query["include_totals"]:
        return {"start": page * per_page, "limit": per_page, "length": len(found),
                "total": total, "logs": found}
    return found


def _checkpoint(query: dict):
    """As Auth0: `from` overrides every parameter but `take`; an empty page keeps the same
    next link. include_totals=true (which Auth0's Python SDK always sends) gets the object
    shape, so the SDK can read checkpoints too."""
    logs = engine().logs
    found = logs.after(query["from"], query["take"])
    following = found[-1]["log_id"] if found else query["from"]
    link = f'<{request.base_url}?{urlencode({"from": following, "take": query["take"]})}>; ' \
           'rel="next"'
    body = found
    if query["include_totals"]:
        body = {"start": 0, "limit": query["take"], "length": len(found),
                "total": logs.count_after(query["from"]), "logs": found}
    return body, 200, {"Link": link}


@route(bp, "/logs/<id>", "GET", summary="Get a log event", scope=SCOPES, tag="logs",
       response=LOG)
def get_log(id):
    """Return one log event; 404 "Log not found."."""
    return engine().logs.get(id)


def _select_fields(entries: list[dict]) -> list[dict]:
    query = query_args()
    names = {name.strip() for name in (query["fields"] or "").split(",") if name.strip()}
    if not names:
        return entries
    keep = query["include_fields"]
    return [{k: v for k, v in entry.items() if (k in names) == keep} for entry in entries]
