"""Execution records: what every run of a hook received, returned, printed and cost."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

from ulid import ULID

from hookengine.auth import now_iso
from hookengine.errors import NotFound

JSON_FIELDS = ("payload", "result", "error", "logs", "stats")
# Both served by the executions_hook (hook_id, id) index; tests check the query plans.
COUNT_SQL = "SELECT COUNT(*) FROM executions WHERE hook_id = ?"
LIST_SQL = "SELECT * FROM executions WHERE hook_id = ? ORDER BY id DESC LIMIT ? OFFSET ?"
INTERRUPTED = {"name": "Interrupted",
               "message": "the engine stopped while this execution was running", "stack": ""}


class ExecutionStore:
    """Stores records; `changed` wakes log followers in this process when one finishes."""

    def __init__(self, store, settings: dict):
        self.store = store
        self.settings = settings
        self.changed = threading.Condition()
        self.mark_interrupted()

    def start(self, hook: dict, source: str, payload) -> dict:
        record = {"id": str(ULID()), "hook_id": hook["id"], "trigger_id": hook["triggerId"],
                  "source": source, "status": "running", "payload": payload, "result": None,
                  "error": None, "logs": [], "stats": {}, "started_at": now_iso(),
                  "ended_at": None}
        with self.store.transaction() as db:
            db.execute("INSERT INTO executions (id, hook_id, trigger_id, source, status, "
                       "payload, started_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (record["id"], record["hook_id"], record["trigger_id"], source,
                        "running", json.dumps(payload), record["started_at"]))
        return record

    def finish(self, record: dict) -> dict:
        record["ended_at"] = now_iso()
        with self.store.transaction() as db:
            db.execute("UPDATE executions SET status = ?, result = ?, error = ?, logs = ?, "
                       "stats = ?, ended_at = ? WHERE id = ?",
                       (record["status"], json.dumps(record["result"]),
                        json.dumps(record["error"]), json.dumps(record["logs"]),
                        json.dumps(record["stats"]), record["ended_at"], record["id"]))
        with self.changed:
            self.changed.notify_all()
        return record

    def get(self, execution_id: str) -> dict:
        row = self.store.query_one("SELECT * FROM executions WHERE id = ?", (execution_id,))
        if row is None:
            raise NotFound("That execution does not exist.", error_code="inexistent_execution")
        return _record(row)

    def list_for_hook(self, hook_id: str, page: int, per_page: int) -> tuple[int, list[dict]]:
        total = self.store.query_one(COUNT_SQL, (hook_id,))[0]
        rows = self.store.query(LIST_SQL, (hook_id, per_page, page * per_page))
        return total, [_record(row) for row in rows]

    def log_lines(self, hook_id: str, executions: int, after: str | None = None) -> list[dict]:
        """Lines of the hook's recent finished executions, newest first; `after` an id."""
        rows = self.store.query(
            "SELECT id, logs FROM executions WHERE hook_id = ? AND ended_at IS NOT NULL "
            "AND id > ? ORDER BY id DESC LIMIT ?", (hook_id, after or "", executions))
        lines = []
        for row in rows:
            for line in reversed(json.loads(row["logs"])):
                lines.append({"execution_id": row["id"], **line})
        return lines

    def mark_interrupted(self) -> int:
        """At start: executions left 'running' by a previous process were cut off."""
        with self.store.transaction() as db:
            cursor = db.execute("UPDATE executions SET status = 'interrupted', error = ?, "
                                "ended_at = ? WHERE status = 'running'",
                                (json.dumps(INTERRUPTED), now_iso()))
        return cursor.rowcount

    def purge(self) -> int:
        """Delete executions older than the retention period."""
        cutoff = datetime.now(timezone.utc) - timedelta(days=self.settings["RETENTION_DAYS"])
        with self.store.transaction() as db:
            cursor = db.execute("DELETE FROM executions WHERE started_at < ?",
                                (cutoff.isoformat(timespec="milliseconds")
                                 .replace("+00:00", "Z"),))
        return cursor.rowcount


def _record(row) -> dict:
    record = dict(row)
    for name in JSON_FIELDS:
        record[name] = json.loads(record[name]) if record[name] is not None else None
    return record
