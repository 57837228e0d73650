"""JSON Schemas of the API: they validate requests and build the OpenAPI doc.

A hook's fields are the hook store's rules (`hookengine.hooks`), re-exported here for the
document; the store checks them on every create and update.
"""

from __future__ import annotations

from hookengine.api.routes import MAX_PAGE
from hookengine.hooks import (DEPENDENCIES, FIELD_SCHEMAS, FIELDS, HOOK_CHECK,  # noqa: F401
                              HOOK_CREATE, HOOK_UPDATE, NAME_PATTERN, TRIGGER_ID)
from hookengine.sandbox import Problem
from hookengine.triggers import TRIGGERS

HOOK = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string"}, **FIELD_SCHEMAS, "triggerId": TRIGGER_ID,
        "dependencies_status": {
            "type": "string", "enum": ["ready", "installing", "failed"],
            "description": "ready: the hook runs (on the engine's own packages, or in an "
                           "environment installed from its lockfile); installing: a run waits "
                           "for it; failed: see dependencies_error, then fix and save again."},
        "dependencies_error": {"type": ["string", "null"],
                               "description": "Why the install failed, naming the package."}},
}
PROBLEM = {
    "type": "object",
    "additionalProperties": False,
    "required": ["line", "column", "end_column", "message", "source"],
    "properties": {
        "line": {"type": "integer", "minimum": 1,
                 "description": "Line of the script (from 1). A problem of the whole script "
                                "(its size, a dependency the request sent) is on line 1; one "
                                "of the PEP 723 block, on the line of the entry at fault."},
        "column": {"type": ["integer", "null"], "minimum": 1,
                   "description": "Column where it starts (from 1, in characters); null: the "
                                  "whole line."},
        "end_column": {"type": ["integer", "null"], "minimum": 1,
                       "description": "Column just past its end, on the same line; null: "
                                      "not known."},
        "message": {"type": "string",
                    "description": "What is wrong: the same text a save lists in `errors`."},
        "source": {"type": "string", "enum": list(Problem.SOURCES),
                   "description": "The check that found it: compile (the hook language's "
                                  "rules), metadata (the PEP 723 block), dependencies, or "
                                  "trigger (the script's trigger, or its entry function)."},
    },
}
HOOK_CHECK_RESULT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["problems", "triggerId", "declared"],
    "properties": {
        "problems": {"type": "array", "items": PROBLEM,
                     "description": "Every problem a save would be refused for; empty: the "
                                    "script would save."},
        "triggerId": {"type": ["string", "null"], "enum": [*TRIGGERS, None],
                      "description": "The trigger the script was checked for: the one sent, "
                                     "else the script's own; null when that cannot be told."},
        "declared": {"type": "object", "description": "What the script's PEP 723 block "
                     "declares (empty lists when it has none), for the editor's panels.",
                     "properties": {
                         "secrets": {"type": "array", "items": {"type": "string"}},
                         "optional_secrets": {"type": "array", "items": {"type": "string"}},
                         "dependencies": {"type": "object",
                                          "additionalProperties": {"type": "string"}}}},
    },
}
LOCKFILE = {"type": "object", "properties": {
    "status": {"type": "string"}, "error": {"type": ["string", "null"]},
    "lockfile": {"type": ["string", "null"],
                 "description": "Pinned requirements with hashes (uv pip compile), or null "
                                "when the hook runs on the engine's own packages."},
    "environment": {"type": ["string", "null"]}}}


def paged(items: dict, key: str) -> dict:
    """A list response in Auth0's two shapes: a bare array, or {total, start, limit, <key>}."""
    return {
        "oneOf": [
            {"type": "array", "items": items},
            {"type": "object", "additionalProperties": False,
             "required": ["total", "start", "limit", key],
             "properties": {"total": {"type": "integer"}, "start": {"type": "integer"},
                            "limit": {"type": "integer"},
                            key: {"type": "array", "items": items}}},
        ],
        "description": f"A bare array, or {{total, start, limit, {key}}} with "
                       "include_totals=true.",
    }


HOOK_LIST = paged(HOOK, "hooks")

# Optimistic concurrency on a hook's saves (hookengine.hooks.etag).
ETAG = {"ETag": {"type": "string", "pattern": r'^"[^"]*"$',
                 "description": "The hook's version, a strong entity tag; it changes with every "
                                "save that changes the hook (not when its dependencies finish "
                                "installing). Send it back in If-Match."}}
IF_MATCH = {"If-Match": {"type": "string",
                         "description": "Update only if the hook is still at this ETag (one of "
                                        "several, comma-separated; * for any): else 412 and "
                                        "nothing changes. Without it, the update always "
                                        "applies."}}

# No maxProperties here: the per-hook limit is the setting MAX_SECRETS (20, as Auth0), which
# the secret store enforces with a message that counts the existing secrets too.
SECRETS_SET = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": {"type": "string"},
    "description": "{NAME: value}; values are write-only.",
    "examples": [{"TWILIO_AUTH_TOKEN": "an auth token"}],
}

SECRET_NAMES = {"type": "array", "minItems": 1, "items": {"type": "string"},
                "description": "Names of the secrets to delete.",
                "examples": [["TWILIO_AUTH_TOKEN"]]}

SECRETS_MASKED = {"type": "object", "additionalProperties": {"const": "_VALUE_NOT_SHOWN_"}}

EMPTY = {"type": "object", "maxProperties": 0}

ERROR = {
    "type": "object",
    "required": ["statusCode", "error", "message"],
    "properties": {
        "statusCode": {"type": "integer"},
        "error": {"type": "string"},
        "message": {"type": "string"},
        "errorCode": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "string"},
                   "description": "Every problem found, when there are several."},
    },
}

_FIELD = "(?:" + "|".join(FIELDS) + ")"

FIELDS_QUERY = {
    "fields": {"type": "string", "pattern": f"^ *(?:{_FIELD} *)?(?:, *(?:{_FIELD} *)?)*$",
               "description": "Comma-separated fields to include (or exclude, with "
                              "include_fields=false).",
               "x-hint": f"list hook fields separated by commas, from {', '.join(FIELDS)}"},
    "include_fields": {"type": "boolean", "default": True,
                       "description": "Whether `fields` lists the fields to include (true) "
                                      "or to exclude (false)."},
}

# Paging as Auth0's lists take it; a list route adds its filters.
PAGE_QUERY = {
    "page": {"type": "integer", "minimum": 0, "maximum": MAX_PAGE, "default": 0,
             "description": "0-based page."},
    "per_page": {"type": "integer", "minimum": 0, "maximum": 100, "default": 50},
    "include_totals": {"type": "boolean", "default": False,
                       "description": "Return {total, start, limit, <items>} instead of an "
                                      "array."},
}

LIST_QUERY = {
    **PAGE_QUERY,
    "enabled": {"type": "boolean", "description": "Only enabled (true) or disabled (false)."},
    "triggerId": TRIGGER_ID,
    **FIELDS_QUERY,
}

TRIGGER = {"type": "object", "properties": {
    "id": {"type": "string"}, "entry_function": {"type": "string"},
    "signature": {"type": "string"}, "params": {"type": "array", "items": {"type": "string"}},
    "blocking": {"type": "boolean"}, "description": {"type": "string"}, "payload": {},
    "template": {"type": "string", "description": "A new hook's script for this trigger."}}}

TRIGGER_EXECUTE = {
    "type": "object",
    "description": "The trigger's parameters, e.g. {recipient, text, context} for "
                   "send-phone-message; or, as POST /api/v2/hooks/{id}/run takes them, "
                   "{\"payload\": {...}} wrapping them.",
    "examples": [TRIGGERS["send-phone-message"].sample_payload,
                 {"payload": TRIGGERS["send-phone-message"].sample_payload}],
}

EXECUTE_RESPONSE = {"type": "object", "properties": {
    "status": {"type": "string", "enum": ["success", "error"]}, "data": {},
    "execution_id": {"type": "string"}}}
