"""Hook storage, and the rules of a hook's fields.

The fields' rules are JSON Schemas (HOOK_CREATE, HOOK_UPDATE): the store checks every create and
update with them, and the API serves the same ones in its OpenAPI document. What a schema cannot
say (the script compiles, its PEP 723 block, installed dependencies) is in `hookengine.scripts`.

A stored hook also has a `version`, which every save that changes it counts up (the installer's
progress does not): its ETag, which an update's If-Match must name.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from ulid import ULID

from hookengine.clock import utc_now
from hookengine.errors import Conflict, NotFound, ValidationError
from hookengine.sandbox import Problem
from hookengine.scripts import ScriptMetadata, check_script, validate_script
from hookengine.triggers import TRIGGERS
from hookengine.validation import describe_all, schema_errors

# Auth0's pattern: letters, digits, spaces and '-', not starting or ending with ' ' or '-'.
NAME_PATTERN = r"^[a-zA-Z0-9]([ \-a-zA-Z0-9]*[a-zA-Z0-9])?$"
FIELDS = ("id", "name", "script", "triggerId", "enabled", "dependencies",
          "dependencies_status", "dependencies_error")
# How a hook's declared dependencies stand (the installer moves them along).
INSTALLING, READY, FAILED = "installing", "ready", "failed"
UPDATABLE = ("name", "script", "enabled", "dependencies")

TRIGGER_ID = {"type": "string", "enum": list(TRIGGERS),
              "description": "Extensibility point the hook runs for."}

DEPENDENCIES = {
    "type": "object",
    "additionalProperties": {"type": "string"},
    "description": "{package: version}: an exact version (9.13.0), a PEP 440 specifier "
                   "(>=9,<10) or 'latest'. When sent, it wins over the script's PEP 723 block.",
}

# The fields a client writes (id is the store's; triggerId is set once, at creation).
FIELD_SCHEMAS = {
    "name": {"type": "string", "pattern": NAME_PATTERN, "description": "Name of this hook.",
             "x-hint": "use letters, digits, spaces and -, not starting or ending with a space "
                       "or -"},
    "script": {"type": "string", "minLength": 1,
               "description": "Python source defining the trigger's entry function."},
    "enabled": {"type": "boolean",
                "description": "Whether this hook runs; enabling one disables the other hook "
                               "of its trigger."},
    "dependencies": DEPENDENCIES,
}

_EXAMPLE_SCRIPT = ("def send_phone_message(recipient, text, context):\n"
                   "    return {\"MessageID\": \"SM0001\"}\n")

HOOK_CREATE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "script", "triggerId"],
    "properties": {**FIELD_SCHEMAS, "triggerId": TRIGGER_ID},
    "x-hint": "send an object with name, script and triggerId, and optionally enabled and "
              "dependencies",
    "examples": [{"name": "send-sms", "script": _EXAMPLE_SCRIPT,
                  "triggerId": "send-phone-message", "enabled": True}],
}

# triggerId is absent on purpose (as in Auth0's spec): a hook never changes trigger.
HOOK_UPDATE = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": FIELD_SCHEMAS,
    "x-hint": f"send an object with one or more of {', '.join(UPDATABLE)}",
    "examples": [{"enabled": True}],
}

# A script checked without saving it: the fields a save checks it with, triggerId optional.
HOOK_CHECK = {
    "type": "object",
    "additionalProperties": False,
    "required": ["script"],
    "properties": {
        "script": {"type": "string",
                   "description": "Python source to check; nothing is saved. An empty script "
                                  "is checked like any other."},
        "triggerId": {**TRIGGER_ID,
                      "description": "The trigger to check the script for; without it, the "
                                     "script's own (its PEP 723 block's, else the one whose "
                                     "entry function it defines)."},
        "dependencies": DEPENDENCIES,
    },
    "x-hint": "send an object with script, and optionally triggerId and dependencies",
    "examples": [{"script": _EXAMPLE_SCRIPT, "triggerId": "send-phone-message"}],
}

# Held by every create and update for its whole transaction: a save reads (is the name free,
# which hook of the trigger is enabled, which version If-Match names) and then writes on what
# it read, which SQLite's single writer made safe and PostgreSQL's READ COMMITTED does not.
HOOKS_LOCK = "hooks"

_COLUMNS = "id, name, script, trigger_id, enabled, dependencies"
_STATE = "dependencies_status, dependencies_error, lockfile, environment"
_RECORD = f"{_COLUMNS}, {_STATE}, version"  # what _to_hook reads


class HookStore:
    """Create, read, list, update and delete hooks; validate scripts for saves and drafts."""

    def __init__(self, store, settings: dict):
        self.store = store  # a hook's secret rows go with it by ON DELETE CASCADE
        self.settings = settings

    def create(self, data: dict) -> dict:
        """Validate and store a new hook; the first hook of a trigger is enabled by default."""
        dependencies = self._validated(HOOK_CREATE, data)
        trigger_id = data["triggerId"]
        now = utc_now()
        hook_id = str(ULID())
        with self.store.transaction() as db:
            self.store.lock(db, HOOKS_LOCK)
            self._check_name_free(db, data["name"])
            # Auth0's docs: the first hook created for an extensibility point is enabled.
            first = db.execute("SELECT 1 FROM hooks WHERE trigger_id = ? LIMIT 1",
                               (trigger_id,)).fetchone() is None
            enabled = bool(data.get("enabled", first))
            if enabled:
                _disable_others(db, trigger_id, hook_id, now)
            # Installing until the installer says otherwise: a run never sees 'ready' for
            # dependencies nobody has looked at yet.
            db.execute(f"INSERT INTO hooks ({_COLUMNS}, dependencies_status, created_at, "
                       "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (hook_id, data["name"], data["script"], trigger_id, enabled,
                        json.dumps(dependencies), INSTALLING if dependencies else READY,
                        now, now))
        return self.get(hook_id)

    def exists(self, hook_id: str) -> bool:
        return self.store.query_one("SELECT 1 FROM hooks WHERE id = ?", (hook_id,)) is not None

    def get(self, hook_id: str) -> dict:
        row = self.store.query_one(f"SELECT {_RECORD} FROM hooks WHERE id = ?",
                                   (hook_id,))
        if row is None:
            raise NotFound("Hook not found.", error_code="inexistent_hook")
        return _to_hook(row)

    def installed(self, hook_id: str) -> dict:
        """How the hook's dependencies stand: status, error, lockfile and environment key."""
        row = self.store.query_one(f"SELECT dependencies, {_STATE} FROM hooks WHERE id = ?",
                                   (hook_id,))
        if row is None:
            raise NotFound("Hook not found.", error_code="inexistent_hook")
        return {"dependencies": json.loads(row["dependencies"]),
                "status": row["dependencies_status"], "error": row["dependencies_error"],
                "lockfile": row["lockfile"], "environment": row["environment"]}

    def set_installed(self, hook_id: str, dependencies: dict, status: str,
                      error: str | None = None, lockfile: str | None = None,
                      environment: str | None = None) -> bool:
        """Record how `dependencies` stand, if they are still the hook's (a later save may have
        changed them meanwhile: its own install then has the last word)."""
        with self.store.transaction() as db:
            cursor = db.execute(
                "UPDATE hooks SET dependencies_status = ?, dependencies_error = ?, "
                "lockfile = ?, environment = ? WHERE id = ? AND dependencies = ?",
                (status, error, lockfile, environment, hook_id, json.dumps(dependencies)))
        return cursor.rowcount == 1

    def in_state(self, status: str) -> list[dict]:
        """Hooks whose dependencies stand so (at start: installs a stop cut off)."""
        rows = self.store.query(f"SELECT {_RECORD} FROM hooks WHERE "
                                "dependencies_status = ?", (status,))
        return [_to_hook(row) for row in rows]

    def environments_in_use(self) -> set[str]:
        rows = self.store.query("SELECT DISTINCT environment FROM hooks WHERE environment "
                                "IS NOT NULL")
        return {row[0] for row in rows}

    def list(self, page: int = 0, per_page: int = 50, enabled: bool | None = None,
             trigger_id: str | None = None) -> tuple[int, list[dict]]:
        """(total matching, one page of them), oldest first (ids are ULIDs)."""
        where, params = [], []
        if enabled is not None:
            where.append("enabled = ?")
            params.append(enabled)
        if trigger_id is not None:
            where.append("trigger_id = ?")
            params.append(trigger_id)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        total = self.store.query_one(f"SELECT COUNT(*) FROM hooks{clause}", params)[0]
        rows = self.store.query(f"SELECT {_RECORD} FROM hooks{clause} ORDER BY id "
                                "LIMIT ? OFFSET ?", [*params, per_page, page * per_page])
        return total, [_to_hook(row) for row in rows]

    def update(self, hook_id: str, data: dict,
               if_match: Callable[[str, str], None] | None = None) -> dict:
        """Change any of name, script, enabled, dependencies; the trigger never changes.

        `if_match(etag, updated_at)`: a condition on the hook's current ETag (an If-Match
        header), which raises to refuse the update; it is checked after the 404 and the 400s,
        within the write's transaction, so that nothing changes when it fails.
        """
        if isinstance(data, dict) and "triggerId" in data:
            raise ValidationError("Invalid hook", ["triggerId cannot be changed (the entry "
                                                   "function depends on it); create a new "
                                                   "hook for another trigger"])
        hook = self.get(hook_id)  # 404 before 400, as for a hook's secrets
        dependencies = self._validated(HOOK_UPDATE, data, hook)
        changes = {key: data[key] for key in UPDATABLE if key in data}
        if ("script" in data or "dependencies" in data) and dependencies != hook["dependencies"]:
            changes["dependencies"] = dependencies
            changes["dependencies_status"] = INSTALLING if dependencies else READY
        now = utc_now()
        with self.store.transaction() as db:
            self.store.lock(db, HOOKS_LOCK)
            if if_match is not None:
                # Read here, where no other save can come in between (the transaction holds
                # HOOKS_LOCK from its start): one made since get() fails the condition.
                current = db.execute("SELECT id, version, updated_at FROM hooks WHERE id = ?",
                                     (hook_id,)).fetchone()
                if current is None:
                    raise NotFound("Hook not found.", error_code="inexistent_hook")
                if_match(etag(current), current["updated_at"])
            if "name" in changes and changes["name"] != hook["name"]:
                self._check_name_free(db, changes["name"])
            if changes.get("enabled"):  # even if it was enabled when read: another may be now
                _disable_others(db, hook["triggerId"], hook_id, now)
            # Only the sent fields are written, so concurrent edits of others are kept. The
            # version and updated_at move only when a sent field differs from the stored one
            # (SET reads the row as it was), so a save of the same values keeps the ETag.
            # (The edited columns are NOT NULL, so <> is a complete "differs".)
            columns = {"dependencies": json.dumps, "enabled": bool}
            values = {key: columns.get(key, str)(value) for key, value in changes.items()}
            edited = [key for key in changes if key in UPDATABLE]
            differs = " OR ".join(f"{key} <> ?" for key in edited) or "FALSE"
            cursor = db.execute(
                f"UPDATE hooks SET {', '.join(f'{key} = ?' for key in changes)}, "
                f"updated_at = CASE WHEN {differs} THEN ? ELSE updated_at END, "
                f"version = version + CASE WHEN {differs} THEN 1 ELSE 0 END WHERE id = ?",
                [*values.values(), *(values[key] for key in edited), now,
                 *(values[key] for key in edited), hook_id])
            if cursor.rowcount == 0:  # deleted by another request since get()
                raise NotFound("Hook not found.", error_code="inexistent_hook")
        return self.get(hook_id)

    def delete(self, hook_id: str) -> None:
        """Delete the hook; its secrets go with it (ON DELETE CASCADE)."""
        with self.store.transaction() as db:
            cursor = db.execute("DELETE FROM hooks WHERE id = ?", (hook_id,))
        if cursor.rowcount == 0:
            raise NotFound("Hook not found.", error_code="inexistent_hook")

    def enabled_for(self, trigger_id: str) -> dict | None:
        """The one enabled hook of a trigger, or None."""
        row = self.store.query_one(f"SELECT {_RECORD} FROM hooks WHERE "
                                   "trigger_id = ? AND enabled = TRUE", (trigger_id,))
        return None if row is None else _to_hook(row)

    def validate_script(self, script: str, trigger_id: str, dependencies: dict | None = None,
                        *, fallback: dict | None = None) -> tuple[dict, ScriptMetadata]:
        return validate_script(self.settings, script, trigger_id, dependencies,
                               fallback=fallback)

    def check(self, data: dict) -> tuple[str | None, list[Problem]]:
        """What creating a hook with this script would be refused for, and the trigger it was
        checked for; nothing is stored. A body that is not HOOK_CHECK's shape is a 400."""
        problems = describe_all(schema_errors(HOOK_CHECK, data))
        if problems:
            raise ValidationError("Invalid hook", problems)
        return check_script(self.settings, data["script"], data.get("triggerId"),
                            data.get("dependencies"))

    def _validated(self, schema: dict, data, hook: dict | None = None) -> dict:
        """Field and script problems in one 400; the dependencies in force otherwise.

        `hook`: the saved hook an update applies to (its trigger, script and dependencies).
        """
        errors = schema_errors(schema, data)
        problems = describe_all(errors)
        if not isinstance(data, dict):
            raise ValidationError("Invalid hook", problems)
        # The script is checked too, so one answer lists every problem, unless the fields it
        # needs are themselves broken.
        broken = {error.absolute_path[0] for error in errors if error.absolute_path}
        trigger_id = hook["triggerId"] if hook else data.get("triggerId")
        script = data.get("script", hook["script"] if hook else None)
        dependencies: dict = {}
        if ((hook is None or "script" in data or "dependencies" in data)
                and not broken & {"script", "dependencies", "triggerId"}
                and trigger_id in TRIGGERS and isinstance(script, str) and script):
            try:
                dependencies, _ = self.validate_script(
                    script, trigger_id, data.get("dependencies"),
                    fallback=hook["dependencies"] if hook else None)
            except ValidationError as error:
                if not problems:
                    raise
                problems += [e for e in error.errors if e not in problems]
        if problems:
            raise ValidationError("Invalid hook", problems)
        return dependencies

    def _check_name_free(self, db, name: str) -> None:
        if db.execute("SELECT 1 FROM hooks WHERE name = ?", (name,)).fetchone():
            raise Conflict("Hook with the same name already exists.",
                           error_code="hook_conflict")


def etag(hook: dict) -> str:
    """The hook's entity tag, a strong validator: `"<id>.<version>"`. It changes with every
    save that changes the hook, and never names another hook's state."""
    return f'"{hook["id"]}.{hook["version"]}"'


def _disable_others(db, trigger_id: str, hook_id: str, now: str) -> None:
    # Same transaction as the enable: the partial unique index hooks_one_enabled would refuse
    # a second enabled hook, and no reader ever sees two (or, mid-switch, none committed).
    # The caller holds HOOKS_LOCK: two enables at once take turns, where on PostgreSQL the
    # second would not see the first's and would meet the index (a 500) or a deadlock.
    # Being disabled is a change of the hook: an editor that loaded it enabled must reload.
    db.execute("UPDATE hooks SET enabled = FALSE, updated_at = ?, version = version + 1 "
               "WHERE trigger_id = ? AND enabled = TRUE AND id <> ?",
               (now, trigger_id, hook_id))


def _to_hook(row) -> dict:
    """The hook's FIELDS (its API representation), then its `version`, which the API shows
    only in its ETag."""
    return {"id": row["id"], "name": row["name"], "script": row["script"],
            "triggerId": row["trigger_id"], "enabled": bool(row["enabled"]),
            "dependencies": json.loads(row["dependencies"]),
            "dependencies_status": row["dependencies_status"],
            "dependencies_error": row["dependencies_error"], "version": row["version"]}
