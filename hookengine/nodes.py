"""Nodes: each `hookengine serve` process registers itself, heartbeats, and takes part in
marking the runs of dead nodes interrupted.

Every execution records the node that runs it. A node whose heartbeat is older than the
lease is dead, and any live node marks that node's `running` executions `interrupted`:
never re-run, since the hook may already have sent its SMS. Time is the database's clock,
so nodes whose clocks disagree still agree on who is dead. A node that cannot heartbeat
reports itself not ready (GET /readyz), so a load balancer stops sending it runs before the
others declare its runs dead.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from ulid import ULID

from hookengine.clock import utc_from_timestamp

log = logging.getLogger(__name__)

# Heartbeats per lease: a node is declared dead only after missing several in a row.
BEATS_PER_LEASE = 5
# Rows of nodes gone this long are deleted (kept a day for whoever investigates a failure).
FORGET_SECONDS = 86400.0


class Nodes:
    """This process as a node: its id, its heartbeat thread, and the reaper."""

    def __init__(self, store, executions, settings: dict):
        self.store = store
        self.executions = executions
        self.id = str(ULID())  # a fresh id per process start: a restarted node is a new one
        self.lease = settings["NODE_LEASE_SECONDS"]
        self.interval = self.lease / BEATS_PER_LEASE
        self.last_beat = 0.0  # monotonic time of the last heartbeat that reached the store
        self.beat_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, alone: bool = False) -> int:
        """Register, mark what dead nodes left running, and heartbeat from now on.

        `alone`: no other node can be alive (SQLite, under the data directory's lock), so
        every other node's runs are cut off already and are marked now, not after a lease.
        Returns how many executions were marked."""
        with self.store.transaction() as db:
            db.execute(f"INSERT INTO nodes (id, host, pid, started_at, heartbeat_at) VALUES "
                       f"(?, ?, ?, {self.store.epoch}, {self.store.epoch})",
                       (self.id, socket.gethostname(), os.getpid()))
        self.last_beat = time.monotonic()
        self._forget()
        marked = self.reap(everyone_else=alone)
        self._thread = threading.Thread(target=self._run, name="hookengine-heartbeat",
                                        daemon=True)
        self._thread.start()
        return marked

    def healthy(self) -> str:
        """"ok", or why this node must not take runs (its heartbeat is not getting through)."""
        late = time.monotonic() - self.last_beat
        if self._thread is not None and late > self.lease / 2:
            return f"no heartbeat for {late:.1f} s: {self.beat_error or 'store unreachable'}"
        return "ok"

    def beat(self) -> None:
        with self.store.transaction() as db:
            db.execute(f"UPDATE nodes SET heartbeat_at = {self.store.epoch} WHERE id = ?",
                       (self.id,))
        self.last_beat = time.monotonic()
        self.beat_error = None

    def reap(self, everyone_else: bool = False) -> int:
        """Mark `interrupted` the running executions of nodes whose lease lapsed (of every
        other node, with `everyone_else`); returns how many this call marked."""
        rows = self.store.query(
            "SELECT e.id, e.hook_id, e.started_at, n.heartbeat_at, (SELECT MAX(l.time) FROM "
            "log_lines AS l WHERE l.execution_id = e.id) AS last_line FROM executions AS e "
            "LEFT JOIN nodes AS n ON n.id = e.node_id WHERE e.status = 'running' AND "
            "(e.node_id IS NULL OR e.node_id <> ?) AND (n.id IS NULL OR ? OR "
            f"n.heartbeat_at < {self.store.epoch} - ?)", (self.id, everyone_else, self.lease))
        marked = 0
        for row in rows:
            alive = [row["started_at"], row["last_line"]]
            if row["heartbeat_at"] is not None:
                alive.append(utc_from_timestamp(row["heartbeat_at"]))
            marked += self.executions.interrupt(row["id"], row["hook_id"],
                                                max(t for t in alive if t))
        if marked:
            log.warning("Marked %d execution(s) of dead nodes interrupted", marked)
        return marked

    def stop(self) -> None:
        """Leave: stop heartbeating and remove this node (a drained node has no runs)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)
        try:
            with self.store.transaction() as db:
                db.execute("DELETE FROM nodes WHERE id = ?", (self.id,))
        except self.store.errors as error:
            log.warning("Could not remove node %s: %s", self.id, error)

    def _forget(self) -> None:
        """Delete the rows of nodes gone for FORGET_SECONDS (at start: nodes come and go
        far more slowly than they heartbeat)."""
        with self.store.transaction() as db:
            db.execute(f"DELETE FROM nodes WHERE heartbeat_at < {self.store.epoch} - ? "
                       "AND id NOT IN (SELECT node_id FROM executions WHERE status = "
                       "'running' AND node_id IS NOT NULL)", (FORGET_SECONDS,))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
                self.reap()
            except self.store.errors as error:
                self.beat_error = str(error).strip()
                log.warning("Node %s: heartbeat failed: %s", self.id, self.beat_error)
