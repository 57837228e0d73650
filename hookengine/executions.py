"""Execution records: what every run of a hook received, returned, printed and cost."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

from ulid import ULID

from hookengine.clock import utc_now
from hookengine.errors import NotFound

JSON_FIELDS = ("payload", "result", "error", "logs", "stats")
# Both served by the executions_hook (hook_id, id) index; tests check the query plans.
COUNT_SQL = "SELECT COUNT(*) FROM executions WHERE hook_id = ?"
LIST_SQL = "SELECT * FROM executions WHERE hook_id = ? ORDER BY id DESC LIMIT ? OFFSET ?"
NEXT_SEQ = "SELECT COALESCE(MAX(finished_seq), 0) + 1 FROM executions"
INTERRUPTED = {"name": "Interrupted",
               "message": "the engine stopped while this execution was running", "stack": ""}


class ExecutionStore:
    """Stores records; `changed` wakes log followers in this process when one finishes."""

    def __init__(self, store, settings: dict):
        self.store = store
        self.settings = settings
        self.changed = threading.Condition()

    def start(self, hook: dict, source: str, payload) -> dict:
        record = {"id": str(ULID()), "hook_id": hook["id"], "trigger_id": hook["triggerId"],
                  "source": source, "status": "running", "payload": payload, "result": None,
                  "error": None, "logs": [], "stats": {}, "started_at": utc_now(),
                  "ended_at": None}
        with self.store.transaction() as db:
            db.execute("INSERT INTO executions (id, hook_id, trigger_id, source, status, "
                       "payload, started_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (record["id"], record["hook_id"], record["trigger_id"], source,
                        "running", json.dumps(payload), record["started_at"]))
        return record

    def finish(self, record: dict) -> dict:
        record["ended_at"] = utc_now()
        with self.store.transaction() as db:
            db.execute("UPDATE executions SET status = ?, result = ?, error = ?, logs = ?, "
                       "stats = ?, ended_at = ?, finished_seq = (" + NEXT_SEQ + ") WHERE id = ?",
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

    def log_lines(self, hook_id: str, executions: int) -> list[dict]:
        """Lines of the hook's most recently finished executions, newest first."""
        rows = self.store.query(
            "SELECT id, logs FROM executions WHERE hook_id = ? AND finished_seq IS NOT NULL "
            "ORDER BY finished_seq DESC LIMIT ?", (hook_id, executions))
        return [{"execution_id": row["id"], **line}
                for row in rows for line in reversed(json.loads(row["logs"]))]

    def lines_after(self, hook_id: str, after: int, limit: int = 100) -> tuple[list[dict], int]:
        """Lines of executions that finished after position `after`, oldest first, and the
        position to resume from."""
        rows = self.store.query(
            "SELECT id, logs, finished_seq FROM executions WHERE hook_id = ? AND "
            "finished_seq > ? ORDER BY finished_seq LIMIT ?", (hook_id, after, limit))
        lines = [{"execution_id": row["id"], "seq": row["finished_seq"], **line}
                 for row in rows for line in json.loads(row["logs"])]
        return lines, (rows[-1]["finished_seq"] if rows else after)

    def last_position(self, hook_id: str) -> int:
        row = self.store.query_one("SELECT MAX(finished_seq) FROM executions WHERE hook_id = ?",
                                   (hook_id,))
        return row[0] or 0

    def mark_interrupted(self, last_alive: str | None = None) -> int:
        """At `hookengine serve` start: executions a previous server left 'running' were cut
        off. (Only the server calls it: a CLI command opening the same store must not.)

        `last_alive` is the previous server's last heartbeat: an execution ended no later
        than that (and no earlier than it started). Without one, it is dated now."""
        with self.store.transaction() as db:
            cursor = db.execute("UPDATE executions SET status = 'interrupted', error = ?, "
                                "ended_at = MAX(started_at, ?), "
                                "finished_seq = (" + NEXT_SEQ + ") WHERE status = 'running'",
                                (json.dumps(INTERRUPTED), last_alive or utc_now()))
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
    record.pop("finished_seq", None)  # the store's own bookkeeping, not part of the record
    for name in JSON_FIELDS:
        record[name] = json.loads(record[name]) if record[name] is not None else None
    return record
