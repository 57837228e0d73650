"""Execution records: what every run of a hook received, returned, printed, sent and cost.

A record's lines live in `log_lines`, one row per line written as the hook prints it; the
record reads them back. A line's `seq` is its position for live followers.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timedelta, timezone

from ulid import ULID

from hookengine.clock import utc_now
from hookengine.errors import NotFound
from hookengine.sandbox import Status, failure

log = logging.getLogger(__name__)

JSON_FIELDS = ("payload", "result", "error", "stats")
LINE_FIELDS = "seq, execution_id, time, stream, message, request"
INSERT_LINE = ("INSERT INTO log_lines (seq, execution_id, hook_id, time, stream, message, "
               "request) VALUES ({position}, ?, ?, ?, ?, ?, ?)")
# Each filter of a listing, and the one column it reads (the indexes cover each alone).
FILTERS = {"hook_id": "hook_id = ?", "status": "status = ?", "source": "source = ?",
           "from": "started_at >= ?", "to": "started_at < ?"}
INTERRUPTED = failure("Interrupted", "the node running this execution stopped (or lost the "
                      "database) before it ended")


def error_line(error: dict, time: str) -> dict:
    """A failed run's error as a log line: its stack (which starts with name and message)."""
    message = error.get("stack") or f"{error.get('name')}: {error.get('message')}"
    return {"time": time, "stream": "error", "message": message}


class ExecutionStore:
    """Stores records and their lines; `changed` wakes log followers in this process."""

    def __init__(self, store, settings: dict, node_id: str | None = None):
        self.store = store
        self.settings = settings
        self.node_id = node_id  # the node whose runs these are (see nodes.py)
        self.announce = None  # tells other nodes' followers, when there are other nodes
        self.changed = threading.Condition()

    def start(self, hook: dict, source: str, payload) -> dict:
        record = {"id": str(ULID()), "hook_id": hook["id"], "trigger_id": hook["triggerId"],
                  "source": source, "status": Status.RUNNING, "payload": payload,
                  "result": None, "error": None, "logs": [], "http_requests": [], "stats": {},
                  "started_at": utc_now(), "ended_at": None, "node_id": self.node_id}
        with self.store.transaction() as db:
            db.execute("INSERT INTO executions (id, hook_id, trigger_id, source, status, "
                       "payload, started_at, node_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (record["id"], record["hook_id"], record["trigger_id"], source,
                        record["status"], json.dumps(payload), record["started_at"],
                        self.node_id))
        return record

    def add_lines(self, record: dict, lines: list[dict]) -> None:
        """Store lines of a run still going, and wake its followers."""
        with self.store.transaction() as db:
            self._insert_lines(db, record, lines)
        self._wake()

    def finish(self, record: dict, lines: list[dict]) -> dict:
        """Store the outcome, with the run's last lines, in one transaction."""
        record["ended_at"] = utc_now()
        if record["error"]:
            lines = [*lines, error_line(record["error"], record["ended_at"])]
        with self.store.transaction() as db:
            # Only a run still running: one another node already declared dead (this node
            # missed its heartbeats) stays `interrupted`, as everyone was told.
            finished = db.execute(
                "UPDATE executions SET status = ?, result = ?, error = ?, stats = ?, "
                "ended_at = ? WHERE id = ? AND status = ?",
                (record["status"], json.dumps(record["result"]), json.dumps(record["error"]),
                 json.dumps(record["stats"]), record["ended_at"], record["id"],
                 Status.RUNNING)).rowcount
            if finished:
                self._insert_lines(db, record, lines)
        if not finished:
            log.warning("Execution %s ended %s after it was marked interrupted; its outcome "
                        "is not recorded", record["id"], record["status"])
        self._wake()
        return record

    def _insert_lines(self, db, record: dict, lines: list[dict]) -> None:
        positions = self.store.line_positions(db, len(lines))
        db.executemany(INSERT_LINE.format(position=self.store.line_position), [
            (position, record["id"], record["hook_id"], line["time"], line["stream"],
             line["message"], json.dumps(line["request"]) if "request" in line else None)
            for position, line in zip(positions, lines)])
        record["logs"] += lines
        record["http_requests"] += [line["request"] for line in lines if "request" in line]

    def _wake(self) -> None:
        with self.changed:
            self.changed.notify_all()
        if self.announce is not None:  # followers on other nodes (wakeups.py)
            self.announce()

    def get(self, execution_id: str) -> dict:
        row = self.store.query_one("SELECT * FROM executions WHERE id = ?", (execution_id,))
        if row is None:
            raise NotFound("That execution does not exist.", error_code="inexistent_execution")
        return self._with_lines([_record(row)])[0]

    def list(self, filters: dict, page: int, per_page: int) -> tuple[int, list[dict]]:
        """Executions matching every given filter (see FILTERS), newest first."""
        count_sql, list_sql, values = listing_sql(filters)
        total = self.store.query_one(count_sql, values)[0]
        rows = self.store.query(list_sql, (*values, per_page, page * per_page))
        return total, self._with_lines([_record(row) for row in rows])

    def _with_lines(self, records: list[dict]) -> list[dict]:
        by_id = {record["id"]: record for record in records}
        for record in records:
            record["logs"], record["http_requests"] = [], []
        if not records:
            return records  # `IN ()` is SQLite's extension, an error in PostgreSQL
        marks = ",".join("?" * len(by_id))
        for row in self.store.query(f"SELECT {LINE_FIELDS} FROM log_lines WHERE execution_id "
                                    f"IN ({marks}) ORDER BY seq", tuple(by_id)):
            line = _line(row)
            by_id[row["execution_id"]]["logs"].append(line)
            if "request" in line:
                by_id[row["execution_id"]]["http_requests"].append(line["request"])
        return records

    def log_lines(self, hook_id: str, executions: int) -> list[dict]:
        """Lines of the hook's most recent executions (running ones too), newest first."""
        rows = self.store.query(
            f"SELECT {LINE_FIELDS} FROM log_lines WHERE execution_id IN (SELECT id FROM "
            "executions WHERE hook_id = ? ORDER BY id DESC LIMIT ?) ORDER BY seq DESC",
            (hook_id, executions))
        return [{"execution_id": row["execution_id"], **_line(row)} for row in rows]

    def lines_after(self, hook_id: str, after: int, limit: int = 100) -> list[dict]:
        """The hook's lines past position `after`, oldest first, each with its `seq`: only
        final positions, so no line can later turn up behind the last one returned."""
        final = self.store.final_positions
        rows = self.store.query(f"SELECT {LINE_FIELDS} FROM log_lines WHERE hook_id = ? AND "
                                f"seq > ? {f'AND seq < {final} ' if final else ''}"
                                "ORDER BY seq LIMIT ?", (hook_id, after, limit))
        return [{"seq": row["seq"], "execution_id": row["execution_id"], **_line(row)}
                for row in rows]

    def last_position(self, hook_id: str) -> int:
        """The position a follower starting now resumes after: every line up to it is
        already stored (a line still being committed comes after it)."""
        final = self.store.final_positions
        if final:
            return self.store.query_one(f"SELECT {final} - 1")[0]
        row = self.store.query_one("SELECT MAX(seq) FROM log_lines WHERE hook_id = ?",
                                   (hook_id,))
        return row[0] or 0

    def interrupt(self, execution_id: str, hook_id: str, ended: str) -> int:
        """Mark a run whose node died `interrupted`, ended at `ended` (the last moment it was
        known alive), with an `error` line; 0 when it was no longer running (another node
        got there first, or it finished after all)."""
        with self.store.transaction() as db:
            marked = db.execute("UPDATE executions SET status = ?, error = ?, ended_at = ? "
                                "WHERE id = ? AND status = ?",
                                (Status.INTERRUPTED, json.dumps(INTERRUPTED), ended,
                                 execution_id, Status.RUNNING)).rowcount
            if marked:
                self._insert_lines(db, {"id": execution_id, "hook_id": hook_id, "logs": [],
                                        "http_requests": []}, [error_line(INTERRUPTED, ended)])
        self._wake()
        return marked

    def purge(self) -> int:
        """Delete executions older than the retention period, and their lines."""
        cutoff = datetime.now(timezone.utc) - timedelta(days=self.settings["RETENTION_DAYS"])
        cutoff_text = cutoff.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        with self.store.transaction() as db:
            db.execute("DELETE FROM log_lines WHERE execution_id IN (SELECT id FROM "
                       "executions WHERE started_at < ?)", (cutoff_text,))
            cursor = db.execute("DELETE FROM executions WHERE started_at < ?", (cutoff_text,))
        return cursor.rowcount


def listing_sql(filters: dict) -> tuple[str, str, tuple]:
    """The count and page queries for `filters` (None values are left out), and their
    values; the page query takes LIMIT and OFFSET after them."""
    given = {name: value for name, value in filters.items() if value is not None}
    where = " AND ".join(FILTERS[name] for name in given) or "TRUE"
    return (f"SELECT COUNT(*) FROM executions WHERE {where}",
            f"SELECT * FROM executions WHERE {where} ORDER BY id DESC LIMIT ? OFFSET ?",
            tuple(given.values()))


def _record(row) -> dict:
    record = dict(row)
    record.pop("finished_seq", None)  # the store's own bookkeeping, not part of the record
    record.pop("logs", None)          # from before lines had their own table: now empty
    for name in JSON_FIELDS:
        record[name] = json.loads(record[name]) if record[name] is not None else None
    return record


def _line(row) -> dict:
    line = {"time": row["time"], "stream": row["stream"], "message": row["message"]}
    if row["request"] is not None:
        line["request"] = json.loads(row["request"])
    return line
