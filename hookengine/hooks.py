"""Hook storage: hooks as records (names, one enabled per trigger) and their rows.

What makes a script valid is in `hookengine.scripts`.
"""

from __future__ import annotations

import json
import re

from ulid import ULID

from hookengine.clock import utc_now
from hookengine.errors import Conflict, NotFound, ValidationError
from hookengine.scripts import ScriptMetadata, validate_script
from hookengine.triggers import TRIGGERS

# Auth0's pattern: letters, digits, spaces and '-', not starting or ending with ' ' or '-'.
NAME_PATTERN = r"^[a-zA-Z0-9]([ \-a-zA-Z0-9]*[a-zA-Z0-9])?$"
FIELDS = ("id", "name", "script", "triggerId", "enabled", "dependencies")
UPDATABLE = ("name", "script", "enabled", "dependencies")

_COLUMNS = "id, name, script, trigger_id, enabled, dependencies"


class HookStore:
    """Create, read, list, update and delete hooks; validate scripts for saves and drafts."""

    def __init__(self, store, settings: dict):
        self.store = store  # a hook's secret rows go with it by ON DELETE CASCADE
        self.settings = settings

    def create(self, data: dict) -> dict:
        """Validate and store a new hook; the first hook of a trigger is enabled by default."""
        dependencies = self._validated(data, ("name", "script", "triggerId"),
                                       data.get("triggerId"), data.get("script"), None)
        trigger_id = data["triggerId"]
        now = utc_now()
        hook_id = str(ULID())
        with self.store.transaction() as db:
            self._check_name_free(db, data["name"])
            # Auth0's docs: the first hook created for an extensibility point is enabled.
            first = db.execute("SELECT 1 FROM hooks WHERE trigger_id = ? LIMIT 1",
                               (trigger_id,)).fetchone() is None
            enabled = bool(data.get("enabled", first))
            if enabled:
                _disable_others(db, trigger_id, hook_id, now)
            db.execute(f"INSERT INTO hooks ({_COLUMNS}, created_at, updated_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (hook_id, data["name"], data["script"], trigger_id, int(enabled),
                        json.dumps(dependencies), now, now))
        return self.get(hook_id)

    def exists(self, hook_id: str) -> bool:
        return self.store.query_one("SELECT 1 FROM hooks WHERE id = ?", (hook_id,)) is not None

    def get(self, hook_id: str) -> dict:
        row = self.store.query_one(f"SELECT {_COLUMNS} FROM hooks WHERE id = ?", (hook_id,))
        if row is None:
            raise NotFound("Hook not found.", error_code="inexistent_hook")
        return _to_hook(row)

    def list(self, page: int = 0, per_page: int = 50, enabled: bool | None = None,
             trigger_id: str | None = None) -> tuple[int, list[dict]]:
        """(total matching, one page of them), oldest first (ids are ULIDs)."""
        where, params = [], []
        if enabled is not None:
            where.append("enabled = ?")
            params.append(int(enabled))
        if trigger_id is not None:
            where.append("trigger_id = ?")
            params.append(trigger_id)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        total = self.store.query_one(f"SELECT COUNT(*) FROM hooks{clause}", params)[0]
        rows = self.store.query(f"SELECT {_COLUMNS} FROM hooks{clause} ORDER BY id "
                                "LIMIT ? OFFSET ?", [*params, per_page, page * per_page])
        return total, [_to_hook(row) for row in rows]

    def update(self, hook_id: str, data: dict) -> dict:
        """Change any of name, script, enabled, dependencies; the trigger never changes."""
        if "triggerId" in data:
            raise ValidationError("Invalid hook", ["triggerId cannot be changed (the entry "
                                                   "function depends on it); create a new "
                                                   "hook for another trigger"])
        if not data:
            raise ValidationError("Invalid hook", ["send at least one of "
                                                   + ", ".join(UPDATABLE)])
        hook = self.get(hook_id)
        changes = {key: data[key] for key in UPDATABLE if key in data}
        if "script" in data or "dependencies" in data:
            changes["dependencies"] = self._validated(
                data, (), hook["triggerId"], data.get("script", hook["script"]),
                hook["dependencies"])
        else:
            self._validated(data, (), None, None, None)
        now = utc_now()
        with self.store.transaction() as db:
            if "name" in changes and changes["name"] != hook["name"]:
                self._check_name_free(db, changes["name"])
            if changes.get("enabled"):  # even if it was enabled when read: another may be now
                _disable_others(db, hook["triggerId"], hook_id, now)
            # Only the sent fields are written, so concurrent edits of others are kept.
            columns = {"dependencies": json.dumps, "enabled": int}
            assignments = ", ".join(f"{key} = ?" for key in changes)
            cursor = db.execute(
                f"UPDATE hooks SET {assignments}, updated_at = ? WHERE id = ?",
                [*(columns.get(k, str)(v) for k, v in changes.items()), now, hook_id])
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
        row = self.store.query_one(f"SELECT {_COLUMNS} FROM hooks WHERE trigger_id = ? "
                                   "AND enabled = 1", (trigger_id,))
        return None if row is None else _to_hook(row)

    def validate_script(self, script: str, trigger_id: str, dependencies: dict | None = None,
                        *, fallback: dict | None = None) -> tuple[dict, ScriptMetadata]:
        return validate_script(self.settings, script, trigger_id, dependencies,
                               fallback=fallback)

    def _validated(self, data: dict, required: tuple[str, ...], trigger_id: str | None,
                   script, fallback: dict | None) -> dict:
        """Field and script problems in one 400; the dependencies in force otherwise."""
        problems = [f"{key} is not a hook field; known: {', '.join(FIELDS[1:])}"
                    for key in sorted(set(data) - set(FIELDS[1:]))]
        problems += _field_problems(data, required)
        dependencies: dict = {}
        if trigger_id in TRIGGERS and isinstance(script, str) and script:
            try:
                dependencies, _ = self.validate_script(script, trigger_id,
                                                       data.get("dependencies"),
                                                       fallback=fallback)
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


def _field_problems(data: dict, required: tuple[str, ...]) -> list[str]:
    """Problems with hook fields, for callers that skip the API's JSON Schema (CLI, tests)."""
    problems = [f"{key} is required" for key in required if key not in data]
    if "name" in data and not (isinstance(data["name"], str)
                               and re.fullmatch(NAME_PATTERN, data["name"])):
        problems.append(f"name {data['name']!r} must match {NAME_PATTERN} (letters, digits, "
                        "spaces and -, not starting or ending with a space or -)")
    if "script" in data and not (isinstance(data["script"], str) and data["script"]):
        problems.append("script must be a non-empty string")
    if "triggerId" in data and data["triggerId"] not in TRIGGERS:
        problems.append(f"triggerId {data['triggerId']!r} is not one of "
                        f"{', '.join(TRIGGERS)}")
    if "enabled" in data and not isinstance(data["enabled"], bool):
        problems.append("enabled must be true or false")
    if "dependencies" in data and not isinstance(data["dependencies"], dict):
        problems.append("dependencies must be an object of {package: version}")
    return problems


def _disable_others(db, trigger_id: str, hook_id: str, now: str) -> None:
    # Same transaction as the enable: the partial unique index hooks_one_enabled would refuse
    # a second enabled hook, and no reader ever sees two (or, mid-switch, none committed).
    db.execute("UPDATE hooks SET enabled = 0, updated_at = ? WHERE trigger_id = ? "
               "AND enabled = 1 AND id != ?", (now, trigger_id, hook_id))


def _to_hook(row) -> dict:
    return {"id": row["id"], "name": row["name"], "script": row["script"],
            "triggerId": row["trigger_id"], "enabled": bool(row["enabled"]),
            "dependencies": json.loads(row["dependencies"])}
