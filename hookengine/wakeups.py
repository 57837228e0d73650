"""Wake-ups across nodes for live log followers: PostgreSQL's LISTEN/NOTIFY, as a hint only.

The lines themselves are always read from the database (executions.lines_after), so a lost
notification, a broken listening connection or a pooler that drops LISTEN costs latency (the
followers' poll), never a line. A node announces after its transaction committed, never
inside it (NOTIFY takes a global lock at commit), and at most once per COALESCE_SECONDS: a
burst of runs is one notification.
"""

from __future__ import annotations

import logging
import threading

import psycopg

log = logging.getLogger(__name__)

CHANNEL = "hookengine_lines"
COALESCE_SECONDS = 0.02
RECONNECT_SECONDS = 1.0


class Wakeups:
    """Announce this node's new lines to the others, and wake this node's followers when
    another one announces."""

    def __init__(self, url: str, changed: threading.Condition):
        self.url = url  # direct to PostgreSQL: LISTEN does not survive transaction pooling
        self.changed = changed
        self._pending = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> "Wakeups":
        for target, name in ((self._listen, "listen"), (self._announce, "notify")):
            thread = threading.Thread(target=target, name=f"hookengine-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def announce(self) -> None:
        """New lines were committed (called after the commit, on the run path: no I/O)."""
        self._pending.set()

    def close(self) -> None:
        self._stop.set()
        self._pending.set()
        for thread in self._threads:
            thread.join(timeout=RECONNECT_SECONDS + 2)

    def _announce(self) -> None:
        connection = None
        while not self._stop.is_set():
            self._pending.wait()
            if self._stop.is_set():
                break
            self._stop.wait(COALESCE_SECONDS)  # what else commits meanwhile rides along
            self._pending.clear()
            try:
                if connection is None or connection.closed:
                    connection = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
                connection.execute(f"NOTIFY {CHANNEL}")
            except psycopg.Error as error:
                log.warning("Could not announce new log lines to other nodes: %s", error)
                connection = None
                self._stop.wait(RECONNECT_SECONDS)
        if connection is not None:
            connection.close()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True,
                                     connect_timeout=5) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    self._wake()  # anything announced while not listening is read now
                    while not self._stop.is_set():
                        for _ in connection.notifies(timeout=1.0, stop_after=1):
                            self._wake()
            except psycopg.Error as error:
                log.warning("Not listening for other nodes' log lines (followers poll "
                            "meanwhile): %s", error)
                self._stop.wait(RECONNECT_SECONDS)

    def _wake(self) -> None:
        with self.changed:
            self.changed.notify_all()
