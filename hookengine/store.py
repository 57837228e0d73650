"""SQLite storage: one database file in the data directory, WAL mode, versioned migrations."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

DB_NAME = "hookengine.sqlite3"
# How long a write waits for another writer before giving up with "database is locked" (503).
BUSY_TIMEOUT_MS = 5000

# Each entry upgrades the schema by one version (PRAGMA user_version). Never edit a shipped
# entry: append a new one, so every existing data directory migrates the same way.
MIGRATIONS = (
    """
    CREATE TABLE hooks (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        script TEXT NOT NULL,
        trigger_id TEXT NOT NULL,
        enabled INTEGER NOT NULL DEFAULT 0,
        dependencies TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    -- At most one enabled hook per trigger, enforced by the database itself.
    CREATE UNIQUE INDEX hooks_one_enabled ON hooks(trigger_id) WHERE enabled = 1;
    CREATE INDEX hooks_trigger ON hooks(trigger_id, name);

    CREATE TABLE secrets (
        hook_id TEXT NOT NULL REFERENCES hooks(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        value BLOB NOT NULL,           -- Fernet token, never plaintext
        PRIMARY KEY (hook_id, name)
    );

    CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,   -- sha256 of the token; the token itself is not kept
        scopes TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        revoked_at TEXT
    );

    CREATE TABLE executions (
        id TEXT PRIMARY KEY,               -- ULID: sorts by creation time
        hook_id TEXT NOT NULL,             -- no foreign key: records outlive a deleted hook
        trigger_id TEXT NOT NULL,
        source TEXT NOT NULL,
        status TEXT NOT NULL,
        payload TEXT,
        result TEXT,
        error TEXT,
        logs TEXT NOT NULL DEFAULT '[]',
        stats TEXT NOT NULL DEFAULT '{}',
        started_at TEXT NOT NULL,
        ended_at TEXT
    );
    CREATE INDEX executions_hook ON executions(hook_id, id DESC);
    CREATE INDEX executions_status ON executions(status) WHERE status = 'running';
    CREATE INDEX executions_started ON executions(started_at);
    """,
    """
    -- Order in which executions finished: log followers resume from it, because a run that
    -- started first (smaller id) may finish last.
    ALTER TABLE executions ADD COLUMN finished_seq INTEGER;
    CREATE INDEX executions_finished ON executions(finished_seq);
    CREATE INDEX executions_hook_finished ON executions(hook_id, finished_seq);
    """,
    """
    -- One row per log line, written as the hook prints it: a line's seq is its position, so
    -- live followers see lines while the run goes on and resume after the last they saw, and
    -- a run cut off by a timeout, a kill or an engine stop keeps what it printed.
    CREATE TABLE log_lines (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        execution_id TEXT NOT NULL,
        hook_id TEXT NOT NULL,
        time TEXT NOT NULL,
        stream TEXT NOT NULL,
        message TEXT NOT NULL,
        request TEXT                       -- an outbound HTTP request (stream 'http'), JSON
    );
    CREATE INDEX log_lines_execution ON log_lines(execution_id, seq);
    CREATE INDEX log_lines_hook ON log_lines(hook_id, seq);
    INSERT INTO log_lines (execution_id, hook_id, time, stream, message)
        SELECT e.id, e.hook_id, json_extract(line.value, '$.time'),
               json_extract(line.value, '$.stream'), json_extract(line.value, '$.message')
        FROM executions AS e, json_each(e.logs) AS line
        ORDER BY e.finished_seq, e.id, line.key;
    UPDATE executions SET logs = '[]' WHERE logs != '[]';
    CREATE INDEX executions_source ON executions(source, id);
    CREATE INDEX executions_status_all ON executions(status, id);
    """,
    """
    -- Declared dependencies, installed: 'ready' (on the engine's own packages, or in the
    -- environment `environment` built from `lockfile`), 'installing' or 'failed' (`error`).
    ALTER TABLE hooks ADD COLUMN dependencies_status TEXT NOT NULL DEFAULT 'ready';
    ALTER TABLE hooks ADD COLUMN dependencies_error TEXT;
    ALTER TABLE hooks ADD COLUMN lockfile TEXT;
    ALTER TABLE hooks ADD COLUMN environment TEXT;
    """,
    """
    -- The phone factor's configuration and the tenant settings (hookengine/phoneconfig.py):
    -- one JSON document per key; the Twilio auth token inside is a Fernet token.
    CREATE TABLE phone_config (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    """
    -- Tenant logs (GET /api/v2/logs). log_id is "90" and seq, zero-padded to 56 digits, so it
    -- sorts in recording order; data is the rest of the entry, JSON.
    CREATE TABLE logs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        log_id TEXT UNIQUE,
        date TEXT NOT NULL,
        type TEXT NOT NULL,
        user_id TEXT,
        data TEXT NOT NULL
    );
    CREATE INDEX logs_date ON logs(date, seq);
    CREATE INDEX logs_type ON logs(type, date);
    CREATE INDEX logs_user ON logs(user_id, date);

    -- Log streams; sink is JSON with httpAuthorization encrypted (Fernet). failing_since is
    -- when the current run of failed deliveries began (epoch seconds), retry_at when the
    -- worker tries again.
    CREATE TABLE log_streams (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        status TEXT NOT NULL,
        is_priority INTEGER NOT NULL DEFAULT 0,
        filters TEXT NOT NULL DEFAULT '[]',
        sink TEXT NOT NULL,
        failing_since REAL,
        retry_at REAL NOT NULL DEFAULT 0,
        last_error TEXT,
        created_at TEXT NOT NULL
    );

    -- What each stream has still to deliver: a row leaves only once its receiver answered 2xx.
    CREATE TABLE log_stream_outbox (
        stream_id TEXT NOT NULL REFERENCES log_streams(id) ON DELETE CASCADE,
        log_seq INTEGER NOT NULL REFERENCES logs(seq) ON DELETE CASCADE,
        PRIMARY KEY (stream_id, log_seq)
    ) WITHOUT ROWID;
    CREATE INDEX log_stream_outbox_log ON log_stream_outbox(log_seq);
    """,
    """
    -- The Unified Phone Experience (hookengine/branding.py). One provider per channel, so at
    -- most one per tenant, enforced by the database itself.
    CREATE TABLE phone_providers (
        id TEXT PRIMARY KEY,
        channel TEXT NOT NULL UNIQUE DEFAULT 'phone',
        name TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0,
        configuration TEXT NOT NULL,       -- JSON
        credentials BLOB NOT NULL,         -- Fernet token of the JSON, never plaintext
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    -- One template per notification type; a type without a row uses the built-in default.
    CREATE TABLE phone_templates (
        id TEXT PRIMARY KEY,
        type TEXT NOT NULL UNIQUE,
        disabled INTEGER NOT NULL DEFAULT 0,
        content TEXT NOT NULL,             -- JSON {from?, body: {text, voice}}
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    """
    -- Phone delivery (hookengine/phone/). One token bucket per user: `tokens` as of `updated`
    -- (POSIX seconds); refilled on read, so a restart loses nothing.
    CREATE TABLE phone_buckets (
        user_id TEXT PRIMARY KEY,
        tokens REAL NOT NULL,
        updated REAL NOT NULL
    );
    -- Idempotency-Key -> the first answer (status, body and headers as JSON), kept 24 h;
    -- `status` NULL while the first request is still being served.
    CREATE TABLE phone_idempotency (
        key TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        status INTEGER,
        body TEXT,
        headers TEXT,
        created REAL NOT NULL
    );
    CREATE INDEX phone_idempotency_created ON phone_idempotency(created);
    -- What the development provider "sent": never deleted, since its count is the data
    -- directory's lifetime cap.
    CREATE TABLE phone_dev_outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        recipient TEXT NOT NULL,
        text TEXT NOT NULL,
        message_type TEXT NOT NULL,
        action TEXT NOT NULL,
        user_id TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    """,
    """
    -- Browser sessions of the web editor (hookengine/sessions.py): a session is its token's
    -- stand-in, so it is read with the token's current scopes and ends with the token.
    CREATE TABLE sessions (
        id_hash TEXT PRIMARY KEY,          -- sha256 of the cookie's value
        token_id TEXT NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
        csrf TEXT NOT NULL,                -- sent back in X-CSRF-Token on unsafe requests
        created_at REAL NOT NULL,          -- POSIX seconds: expiry is arithmetic
        seen_at REAL NOT NULL,
        expires_at REAL NOT NULL           -- the absolute cap
    );
    CREATE INDEX sessions_token ON sessions(token_id);
    -- One-time sign-in links (`hookengine ui`), exchanged for a session within a minute.
    CREATE TABLE sign_in_links (
        id_hash TEXT PRIMARY KEY,
        token_id TEXT NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
        expires_at REAL NOT NULL
    );
    """,
    """
    -- A hook's version, counted up by every save that changes its name, script, enabled state
    -- or dependencies (the installer's progress does not): its ETag, which PATCH's If-Match
    -- is compared with. updated_at cannot serve: two saves within its millisecond share it.
    ALTER TABLE hooks ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
    """,
    """
    -- Nodes (hookengine/nodes.py): each `serve` process, and its last heartbeat (POSIX
    -- seconds); an execution names the node running it, so only a dead node's runs are
    -- marked interrupted.
    CREATE TABLE nodes (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at REAL NOT NULL,
        heartbeat_at REAL NOT NULL
    );
    ALTER TABLE executions ADD COLUMN node_id TEXT;
    """,
)


def open_store(settings: dict):
    """The store the settings name: PostgreSQL for HOOKENGINE_DATABASE_URL, else the SQLite
    file in the data directory."""
    if settings["DATABASE_URL"]:
        from hookengine.pgstore import PostgresStore

        # The data directory still holds this node's own files (zygote sockets, installed
        # environments), owner-only.
        Path(settings["DATA_DIR"]).mkdir(parents=True, exist_ok=True)
        os.chmod(settings["DATA_DIR"], 0o700)

        # One connection per server thread, and a few for the heartbeat and background work.
        return PostgresStore(settings["DATABASE_URL"], settings["SERVER_THREADS"] + 4,
                             settings["DATA_DIR"], settings["DATABASE_DIRECT_URL"]).open()
    return Store(settings["DATA_DIR"]).open()


class Store:
    """Thread-local connections to one SQLite file; `transaction()` wraps a unit of work."""

    backend = "sqlite"
    # Errors after which nothing was changed and a retry may succeed (503).
    unavailable = (sqlite3.OperationalError,)
    errors = (sqlite3.Error,)  # anything the database itself reports
    # A new log line's position: SQLite numbers rows itself (writers take turns, so numbers
    # follow commit order), so the value sent is NULL; every position is final at once.
    line_position = "?"
    final_positions = None
    # The database's clock in POSIX seconds (leases are reckoned by it).
    epoch = "((julianday('now') - 2440587.5) * 86400.0)"
    # Appended to a SELECT whose rows the transaction goes on to change. BEGIN IMMEDIATE
    # already makes every writer wait for the one before it, so no row lock is needed.
    for_update = ""

    def __init__(self, data_dir: str | os.PathLike):
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / DB_NAME
        self._local = threading.local()
        # (thread, connection): a finished thread's connection is closed by the next new one.
        self._connections: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._lock = threading.Lock()

    def open(self) -> "Store":
        """Create the data directory (owner-only) and bring the schema up to date."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Owner-only: hook processes run as other uids and must not read the database or key.
        os.chmod(self.data_dir, 0o700)
        with self.transaction() as db:
            self._migrate(db)
        return self

    def connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                 isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit is durable against a killed process (the WAL is in
            # the OS page cache); only a power loss can drop the last transactions.
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._local.db = db
            with self._lock:
                for thread, old in [c for c in self._connections if not c[0].is_alive()]:
                    old.close()
                self._connections = [c for c in self._connections if c[0].is_alive()]
                self._connections.append((threading.current_thread(), db))
        return db

    @contextlib.contextmanager
    def transaction(self):
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
        db = self.connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            if db.in_transaction:  # SQLite rolls back by itself on some errors (SQLITE_FULL)
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def line_positions(self, db, count: int) -> list[None]:
        return [None] * count

    def lock(self, db, name: str) -> None:
        """Hold the lock `name` until `db`'s transaction ends, so that work which reads shared
        state and then writes on what it read (a count under a cap, the one enabled hook of a
        trigger) runs one transaction at a time. Nothing to do here: BEGIN IMMEDIATE took the
        database's write lock, which every other writer waits for."""

    @contextlib.contextmanager
    def exclusive(self, name: str):
        """Whether this engine holds `name` for the block, alone among every engine on this
        store (the one log delivery worker): `flock` on a file of the data directory, which
        the kernel drops when its holder dies. It does not wait: held elsewhere is False."""
        fd = os.open(self.data_dir / f"{name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                     0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
            except BlockingIOError:
                held = False
            yield held
        finally:
            os.close(fd)  # and with it the lock

    def json_field(self, column: str, name: str) -> str:
        """SQL for the top-level field `name` of the JSON document in `column`, a scalar (NULL
        when absent); `name` goes into the SQL as it is, so it must be a known one."""
        return f"json_extract({column}, '$.{name}')"

    def wildcard_match(self, expression: str, pieces: list[str]) -> tuple[str, str]:
        """A case-sensitive match of `expression` against literal `pieces` with any text
        (or none) between them: ["", "sent", ""] finds "sent" anywhere. Returns the SQL, with
        one `?`, and the pattern to pass for it."""
        return (f"{expression} GLOB ?",
                "*".join(re.sub(r"([*?\[])", r"[\1]", piece) for piece in pieces))

    def query(self, sql: str, params=()) -> list[sqlite3.Row]:
        return self.connection().execute(sql, params).fetchall()

    def query_one(self, sql: str, params=()) -> sqlite3.Row | None:
        return self.connection().execute(sql, params).fetchone()

    def check_writable(self, timeout: float) -> None:
        """Take the write lock and give it back (GET /readyz), on a connection of its own
        that waits at most `timeout` for another writer; raises sqlite3.Error if it cannot.
        mode=rw: a database file that went missing is an error, not a new empty file."""
        db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=rw", uri=True,
                             timeout=timeout, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
        finally:
            db.close()

    def close(self) -> None:
        with self._lock:
            for _, db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()

    def _migrate(self, db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            log.info("Migrating %s to schema version %d", self.path, number)
            for statement in _statements(script):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")


def _statements(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit our transaction)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
