"""JSON Schemas of the API: they validate requests and build the OpenAPI doc.

A hook's fields are the hook store's rules (`hookengine.hooks`), re-exported here for the
document; the store checks them on every create and update.
"""

from __future__ import annotations

from hookengine.api.routes import MAX_PAGE
from hookengine.hooks import (DEPENDENCIES, FIELD_SCHEMAS, FIELDS, HOOK_CREATE,  # noqa: F401
                              HOOK_UPDATE, NAME_PATTERN, TRIGGER_ID)

HOOK = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"id": {"type": "string"}, **FIELD_SCHEMAS, "triggerId": TRIGGER_ID},
}

HOOK_LIST = {
    "oneOf": [
        {"type": "array", "items": HOOK},
        {"type": "object", "additionalProperties": False,
         "required": ["total", "start", "limit", "hooks"],
         "properties": {"total": {"type": "integer"}, "start": {"type": "integer"},
                        "limit": {"type": "integer"}, "hooks": {"type": "array", "items": HOOK}}},
    ],
    "description": "A bare array, or {total, start, limit, hooks} with include_totals=true.",
}

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
                              "include_fields=false)."},
    "include_fields": {"type": "boolean", "default": True,
                       "description": "Whether `fields` lists the fields to include (true) "
                                      "or to exclude (false)."},
}

LIST_QUERY = {
    "page": {"type": "integer", "minimum": 0, "maximum": MAX_PAGE, "default": 0,
             "description": "0-based page."},
    "per_page": {"type": "integer", "minimum": 0, "maximum": 100, "default": 50},
    "include_totals": {"type": "boolean", "default": False,
                       "description": "Return {total, start, limit, hooks} instead of an array."},
    "enabled": {"type": "boolean", "description": "Only enabled (true) or disabled (false)."},
    "triggerId": TRIGGER_ID,
    **FIELDS_QUERY,
}
