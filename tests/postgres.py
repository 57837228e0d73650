"""A throwaway PostgreSQL cluster for tests: initdb and pg_ctl as the postgres user, on loopback.

No pytest here: tests/conftest.py wraps it in fixtures, and a script can use it alone.

initdb refuses to run as root, so as root every server command runs under `runuser -u
postgres`, and the cluster lives in a directory of its own directly under /tmp: the postgres
user cannot reach anything under pytest's 0700 base temp directory
(docs: /work/shared/reference/scale-out.md, sections 6.2 and 7.1).
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from urllib.parse import parse_qs, urlsplit

from serverprocess import free_port

SCHEMA_PREFIX = "t_"


def bin_dir() -> str | None:
    """The newest /usr/lib/postgresql/<version>/bin that has a pg_ctl, or None."""
    found = glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")

    def version(pg_ctl: str) -> tuple[int, ...]:
        name = pg_ctl.split("/")[-3]  # "15", or "9.6" for an old one
        return tuple(int(part) for part in name.split(".") if part.isdigit())

    return os.path.dirname(max(found, key=version)) if found else None


def schema_of(url: str) -> str:
    """The schema a `fresh_schema()` URL puts first on the search path."""
    options = parse_qs(urlsplit(url).query).get("options", [""])[0]
    prefix = "-csearch_path="
    if not options.startswith(prefix):
        raise ValueError(f"not a fresh_schema() URL (no options=-csearch_path=...): {url}")
    return options[len(prefix):]


class PostgresCluster:
    """A cluster of its own: `start()`, `fresh_schema()` per test, `stop()` removes it all.

    `settings` become the server's `-c name=value` options on top of the defaults here
    (`max_connections=300`: several engine processes with their pools share one cluster).
    fsync stays on unless a caller turns it off, so a restart test sees what an operator would.
    """

    def __init__(self, settings: dict[str, object] | None = None):
        self.settings = {"max_connections": 300, **(settings or {})}
        self.bin = bin_dir()
        self.dir: str | None = None
        self.port: int | None = None
        self._schemas = itertools.count(1)

    @staticmethod
    def available() -> bool:
        """Whether PostgreSQL's server binaries are installed."""
        return bin_dir() is not None

    @property
    def data(self) -> str:
        return os.path.join(self.dir, "data")

    @property
    def log_path(self) -> str:
        return os.path.join(self.dir, "log")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> "PostgresCluster":
        if self.bin is None:
            raise RuntimeError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/pg_ctl)")
        self.dir = tempfile.mkdtemp(prefix="hookengine-pg-", dir="/tmp")
        try:
            os.chmod(self.dir, 0o755)
            if os.geteuid() == 0:
                shutil.chown(self.dir, "postgres", "postgres")
            self._run("initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                      "--locale=C.UTF-8", "--no-sync")
            # The port is free when picked, not when the server binds it: another process
            # can take it in between, so pick again a few times.
            for attempt in range(3):
                self.port = free_port()
                try:
                    self._pg_ctl("start")
                    break
                except RuntimeError:
                    if attempt == 2 or "Address already in use" not in self.log():
                        raise
        except BaseException:
            self.stop()
            raise
        return self

    def restart(self) -> None:
        """Restart the server (`-m fast`: open sessions are cut); new connections work after."""
        self._pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        """Stop the server if it runs and remove the cluster's directory."""
        if self.dir is None:
            return
        try:
            if os.path.exists(os.path.join(self.data, "postmaster.pid")):
                self._pg_ctl("stop", "-m", "fast")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> "PostgresCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def fresh_schema(self) -> str:
        """Create schema t_<n> and return a URL whose connections have it as search_path."""
        schema = f"{SCHEMA_PREFIX}{next(self._schemas)}"
        self.execute(f"CREATE SCHEMA {schema}")
        # libpq decodes %3D to "=": the server gets `-c search_path=t_<n>` at connect time,
        # so every connection from the URL (psycopg, a pool, another process) uses the schema.
        return f"{self.url}?options=-csearch_path%3D{schema}"

    def drop_schema(self, url: str) -> None:
        """Drop the schema of a `fresh_schema()` URL with everything in it."""
        schema = schema_of(url)
        if not schema.startswith(SCHEMA_PREFIX) or not schema[len(SCHEMA_PREFIX):].isdigit():
            raise ValueError(f"not a schema fresh_schema() made: {schema!r}")
        self.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    def execute(self, sql: str, params=None) -> list[tuple]:
        """Run one statement on the postgres database (autocommit); the rows it returns."""
        import psycopg  # here, so that importing this module needs no driver

        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as connection:
            cursor = connection.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as handle:
                return handle.read()
        except FileNotFoundError:
            return ""

    def _pg_ctl(self, command: str, *args: str) -> None:
        options = " ".join([f"-c listen_addresses=127.0.0.1 -p {self.port}",
                            f"-c unix_socket_directories={self.dir}",
                            *(f"-c {name}={value}" for name, value in self.settings.items())])
        # -l always: without a log file the server keeps pg_ctl's stdout open, and reading
        # pg_ctl's output would then wait for the server to exit.
        self._run("pg_ctl", command, "-D", self.data, "-l", self.log_path, "-w", "-t", "30",
                  "-o", options, *args)

    def _run(self, program: str, *args: str) -> None:
        argv = [os.path.join(self.bin, program), *args]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{program} {args[0]} failed ({done.returncode}):\n"
                               f"{done.stdout}{done.stderr}\n--- server log ---\n{self.log()}")
