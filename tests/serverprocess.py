"""A real `hookengine serve` process on loopback, for tests that need the whole engine."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import requests

# The SQLite store's file in a data directory (hookengine/store.py, DB_NAME).
SQLITE_FILE = "hookengine.sqlite3"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_db(url_or_data_dir, sql: str, params=()) -> list[tuple]:
    """The rows of one query on an engine's store: a PostgreSQL URL, or a SQLite data directory.

    For tests that look at the store directly. Write `?` placeholders, as for sqlite3; with
    params, on PostgreSQL every `?` becomes psycopg's `%s` (and `%` becomes `%%`), so a `?`
    meant literally must come in as a parameter too.
    """
    if str(url_or_data_dir).startswith(("postgresql://", "postgres://")):
        import psycopg  # here, so that SQLite-only tests need no driver

        if params:
            sql = sql.replace("%", "%%").replace("?", "%s")
        with psycopg.connect(str(url_or_data_dir), autocommit=True,
                             connect_timeout=10) as database:
            return database.execute(sql, params or None).fetchall()
    path = Path(url_or_data_dir) / SQLITE_FILE
    if not path.exists():  # sqlite3 would create an empty store and report no rows
        raise FileNotFoundError(path)
    database = sqlite3.connect(path, timeout=5)
    try:
        return database.execute(sql, params).fetchall()
    finally:
        database.close()


def wait_for(condition, what: str, seconds: float = 30):
    """condition()'s first true value, asked every 50 ms; fails naming `what` after
    `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def hookengine(*args: str, env: dict) -> str:
    """Run a CLI command to completion and return its stdout."""
    done = subprocess.run([sys.executable, "-m", "hookengine.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


class ServerProcess:
    """Start with `start()`, stop with `terminate()` (SIGTERM) or `kill()` (SIGKILL)."""

    def __init__(self, data_dir, **settings):
        self.data_dir = str(data_dir)
        self.env = {**os.environ, "HOOKENGINE_DATA_DIR": self.data_dir,
                    **{f"HOOKENGINE_{k}": str(v) for k, v in settings.items()}}
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.api = f"{self.base}/api/v2"
        self.token = hookengine("token", "create", env=self.env).strip()
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {self.token}"
        self.process = None
        self.stderr_path = os.path.join(self.data_dir, "server.log")

    def start(self) -> "ServerProcess":
        # On PostgreSQL nothing has made the data directory yet (the store is elsewhere).
        os.makedirs(self.data_dir, mode=0o700, exist_ok=True)
        self._stderr = open(self.stderr_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hookengine.cli", "serve", "--port", str(self.port)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=self._stderr)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log()
            try:
                requests.get(f"{self.api}/openapi.json", timeout=1)
                return self
            except requests.ConnectionError:
                time.sleep(0.1)
        raise AssertionError("server did not answer within 60 s:\n" + self.log())

    def log(self) -> str:
        with open(self.stderr_path, errors="replace") as handle:
            return handle.read()

    def terminate(self) -> int:
        self.session.close()  # keep-alive sockets left to the garbage collector warn later
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(30)
        self._stderr.close()
        return code

    def kill(self) -> None:
        self.session.close()
        self.process.kill()
        self.process.wait(30)
        self._stderr.close()

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.session.request(method, self.api + path, timeout=60, **kwargs)
