"""SQLite store: migrations, WAL mode, and no plaintext secret on disk."""

from __future__ import annotations

import pytest

import logging
import stat
from pathlib import Path

from hookengine.store import DB_NAME, MIGRATIONS, Store

# The store's own behaviour: the same on SQLite and on PostgreSQL.
pytestmark = pytest.mark.backends


def schema_version(store: Store) -> int:
    return store.query_one("PRAGMA user_version")[0]


def test_migrations_run_once_and_reopen_is_idempotent(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="hookengine.store")
    store = Store(tmp_path / "data").open()
    assert schema_version(store) == len(MIGRATIONS)
    with store.transaction() as db:
        db.execute("INSERT INTO hooks (id, name, script, trigger_id, created_at, updated_at) "
                   "VALUES ('h1', 'kept', 's', 'send-phone-message', 'now', 'now')")
    store.close()
    migrated = [r for r in caplog.records if r.message.startswith("Migrating")]
    assert len(migrated) == len(MIGRATIONS)

    caplog.clear()
    reopened = Store(tmp_path / "data").open()
    assert schema_version(reopened) == len(MIGRATIONS)
    assert [r.message for r in caplog.records if r.message.startswith("Migrating")] == []
    assert [row["name"] for row in reopened.query("SELECT name FROM hooks")] == ["kept"]
    reopened.close()


def test_tables_and_indexes_exist(tmp_path):
    store = Store(tmp_path / "data").open()
    names = {row["name"] for row in store.query("SELECT name FROM sqlite_master")}
    assert {"hooks", "secrets", "tokens", "executions", "hooks_one_enabled"} <= names
    store.close()


def test_wal_mode_and_foreign_keys_are_on(tmp_path):
    store = Store(tmp_path / "data").open()
    assert store.query_one("PRAGMA journal_mode")[0] == "wal"
    assert store.query_one("PRAGMA foreign_keys")[0] == 1
    store.close()


def test_data_directory_is_owner_only(tmp_path):
    Store(tmp_path / "data").open().close()
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700


def test_database_holds_no_plaintext_secret(app, client, auth, make_hook, engine, backend,
                                           request):
    hook = make_hook()
    value = "plaintext-canary-7f3a9c"
    response = client.post(f"/api/v2/hooks/{hook['id']}/secrets",
                           json={"CANARY": value, "OTHER": value + "-2"}, headers=auth())
    assert response.status_code == 201
    assert engine.secrets.values(hook["id"])["CANARY"] == value  # stored, and decryptable
    if backend == "sqlite":
        data_dir = engine.store.data_dir
        files = [data_dir / name for name in (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm")]
        checkpoint = "PRAGMA wal_checkpoint(TRUNCATE)"
    else:  # the whole cluster on disk: tables, indexes and the write-ahead log
        data_dir = Path(request.getfixturevalue("pg_cluster").data)
        files = [path for path in data_dir.rglob("*") if path.is_file()]
        checkpoint = "CHECKPOINT"
    # Before and after a checkpoint: the value must be in neither the log nor the tables.
    for checkpointed in (False, True):
        if checkpointed:
            engine.store.connection().execute(checkpoint)
        contents = b"".join(path.read_bytes() for path in files if path.exists())
        assert contents, "no database file found"
        assert value.encode() not in contents
        assert b"CANARY" in contents  # the name is stored in clear, as Auth0 shows it


def test_connections_of_finished_threads_are_closed(tmp_path):
    import threading

    from hookengine.store import Store

    store = Store(tmp_path / "d").open()
    for _ in range(20):
        worker = threading.Thread(target=lambda: store.query("SELECT 1"))
        worker.start()
        worker.join()
    store.query("SELECT 1")  # a new connection sweeps the finished threads' ones
    assert len(store._connections) <= 2
    store.close()
