"""The PostgreSQL test harness itself: the cluster, its schemas, read_db and the backends marker.

Nothing here uses the engine's PostgreSQL support; these tests hold before it exists.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet
from postgres import schema_of
from serverprocess import SQLITE_FILE, read_db

# Tests here that use app_settings (or backend_settings) run once per backend.
pytestmark = pytest.mark.backends

ROOT = Path(__file__).resolve().parent.parent


def test_the_cluster_answers_on_loopback(pg_cluster):
    assert pg_cluster.url.startswith("postgresql://postgres@127.0.0.1:")
    with psycopg.connect(pg_cluster.url) as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)
        assert connection.execute("SHOW max_connections").fetchone() == ("300",)
        assert connection.execute("SHOW fsync").fetchone() == ("on",)


def test_a_connection_from_a_fresh_schemas_url_creates_its_tables_there(pg_url):
    schema = schema_of(pg_url)
    with psycopg.connect(pg_url) as connection:
        assert connection.execute("SHOW search_path").fetchone() == (schema,)
        connection.execute("CREATE TABLE marker (n int)")
        assert connection.execute("SELECT table_schema FROM information_schema.tables"
                                  " WHERE table_name = 'marker'").fetchall() == [(schema,)]


def test_fresh_schemas_do_not_see_each_other_and_drop_removes_one(pg_cluster):
    first, second = pg_cluster.fresh_schema(), pg_cluster.fresh_schema()
    try:
        assert schema_of(first) != schema_of(second)
        with psycopg.connect(first) as connection:
            connection.execute("CREATE TABLE marker (n int)")
            connection.execute("INSERT INTO marker VALUES (1)")
        with psycopg.connect(second) as connection:
            assert connection.execute("SELECT to_regclass('marker')").fetchone() == (None,)
            connection.execute("CREATE TABLE marker (n int)")  # the same name, its own table
            assert connection.execute("SELECT count(*) FROM marker").fetchone() == (0,)
    finally:
        pg_cluster.drop_schema(first)
    assert pg_cluster.execute("SELECT nspname FROM pg_namespace WHERE nspname IN (%s, %s)",
                              (schema_of(first), schema_of(second))) == [(schema_of(second),)]
    pg_cluster.drop_schema(second)


def test_restart_cuts_open_sessions_and_a_new_connection_succeeds(pg_cluster, pg_url):
    with psycopg.connect(pg_url, autocommit=True) as before:
        before.execute("CREATE TABLE marker (n int)")
        before.execute("INSERT INTO marker VALUES (7)")
        pg_cluster.restart()
        with pytest.raises(psycopg.OperationalError):
            before.execute("SELECT 1")
    with psycopg.connect(pg_url) as after:
        assert after.execute("SELECT n FROM marker").fetchall() == [(7,)]


def test_read_db_reads_a_schema_through_its_url(pg_url):
    with psycopg.connect(pg_url, autocommit=True) as connection:
        connection.execute("CREATE TABLE executions (id text, status text)")
        connection.execute("INSERT INTO executions VALUES ('a', 'running'), ('b', '50%')")
    assert read_db(pg_url, "SELECT id FROM executions WHERE status = ?", ("running",)) == [("a",)]
    # `%` stays literal beside a `?`, and without params the SQL goes as written.
    assert read_db(pg_url, "SELECT id FROM executions WHERE status LIKE '%\\%' AND id = ?",
                   ("b",)) == [("b",)]
    assert read_db(pg_url, "SELECT count(*) FROM executions") == [(2,)]


def test_read_db_reads_a_sqlite_data_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_db(tmp_path, "SELECT 1")
    assert not (tmp_path / SQLITE_FILE).exists()
    database = sqlite3.connect(tmp_path / SQLITE_FILE)
    with database:
        database.execute("CREATE TABLE executions (id text, status text)")
        database.execute("INSERT INTO executions VALUES ('a', 'running'), ('b', 'success')")
    database.close()
    assert read_db(tmp_path, "SELECT id FROM executions WHERE status = ?", ("running",)) == [("a",)]
    assert read_db(str(tmp_path), "SELECT count(*) FROM executions") == [(2,)]


def test_a_marked_module_gets_each_backends_settings(app_settings, backend, request,
                                                     pg_secret_key):
    assert request.node.callspec.params["backend"] == backend
    assert request.node.name.endswith(f"[{backend}]")
    if backend == "sqlite":
        assert "DATABASE_URL" not in app_settings and "SECRET_KEY" not in app_settings
        return
    with psycopg.connect(app_settings["DATABASE_URL"]) as connection:
        assert connection.execute("SHOW search_path").fetchone()[0].startswith("t_")
    assert app_settings["SECRET_KEY"] == pg_secret_key
    Fernet(app_settings["SECRET_KEY"])  # a valid key, as the engine's load_cipher needs


def collected(*args: str) -> list[str]:
    """Test ids a separate pytest collects from the repository with these arguments."""
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                           "-p", "no:cacheprovider", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    return [line for line in done.stdout.splitlines() if "::" in line]


def test_only_marked_modules_run_per_backend_and_k_selects_one_half():
    marked = "tests/test_pg_harness.py::test_a_marked_module_gets_each_backends_settings"
    unmarked = "tests/test_openapi.py"  # uses client, so app_settings, so backend
    ids = collected(marked, unmarked)
    assert [i for i in ids if i.startswith(marked)] == [f"{marked}[sqlite]",
                                                        f"{marked}[postgresql]"]
    others = [i for i in ids if not i.startswith(marked)]
    assert others and not [i for i in others if "sqlite]" in i or "postgresql]" in i]
    assert "tests/test_openapi.py::test_document_is_valid_openapi_3_1" in others
    assert collected("-k", "postgresql", marked, unmarked) == [f"{marked}[postgresql]"]
