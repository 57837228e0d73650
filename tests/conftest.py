"""Shared fixtures: an app on a fresh data directory, its client, tokens and hooks."""

from __future__ import annotations

import copy
import os

import pytest
from cryptography.fernet import Fernet
from postgres import PostgresCluster
from standins import StandIn
from standins import twilio as twilio_standin

from hookengine import create_app
from hookengine.sandbox import Sandbox
from hookengine.triggers import TRIGGERS


@pytest.fixture
def twilio():
    """The Twilio stand-in (tests/standins) on a loopback port; its `requests` are what came."""
    with StandIn(twilio_standin.create_app()) as standin:
        yield standin


@pytest.fixture(scope="session")
def sandbox():
    """One zygote for the whole session: starting one (imports, warm-up) takes a second."""
    sandbox = Sandbox(["twilio", "vonage", "requests"]).start()
    yield sandbox
    sandbox.close()


BACKENDS = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc):
    """Run a test marked `backends` (or in a marked module) once per store backend.

    Only tests that reach the `backend` fixture (through app_settings or backend_settings)
    are parametrized, with ids ending [sqlite] / [postgresql]: `-k postgresql` selects the
    PostgreSQL half. Unmarked tests stay on SQLite, with the ids they always had.
    """
    if "backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker("backends"):
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture(scope="session")
def pg_cluster():
    """One PostgreSQL cluster for the session (tests/postgres.py); about a second to start."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing = "psycopg is not installed (pip install -e '.[test]' again)"
    else:
        missing = None if PostgresCluster.available() else (
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/pg_ctl)")
    if missing:
        # Under CI a missing PostgreSQL must not quietly turn the PostgreSQL tests into skips.
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing}; .ci/run installs it", pytrace=False)
        pytest.skip(missing)
    cluster = PostgresCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster):
    """A URL whose connections use a new, empty schema of their own; dropped after the test."""
    url = pg_cluster.fresh_schema()
    yield url
    pg_cluster.drop_schema(url)


@pytest.fixture(scope="session")
def pg_secret_key():
    """One Fernet key for the session: processes sharing a database must share the key."""
    return Fernet.generate_key().decode()


@pytest.fixture
def backend(request):
    """The store backend: "sqlite", or per test of a `backends` module both in turn."""
    return getattr(request, "param", "sqlite")


@pytest.fixture
def sqlite_only(backend):
    """sqlite_only(why): skip this test's PostgreSQL half, for a test about SQLite itself (its
    file, WAL, its locking, its migrations of older data directories). `why` is the reason
    pytest shows; a test about the store's behaviour must run on both instead."""
    def skip(why: str) -> None:
        if backend != "sqlite":
            pytest.skip(f"about SQLite itself: {why}")
    return skip


@pytest.fixture
def backend_settings(backend, request):
    """Settings that put the store on the backend: none for SQLite (the data directory).

    app_settings includes them; a test starting servers passes them on, as in
    `ServerProcess(data_dir, **backend_settings)`, so every node shares the schema and key.
    """
    if backend == "sqlite":
        return {}
    return {"DATABASE_URL": request.getfixturevalue("pg_url"),
            "SECRET_KEY": request.getfixturevalue("pg_secret_key")}


@pytest.fixture
def app_settings(tmp_path, backend_settings):
    """Settings of the `app` fixture; tests add to it (before `app` is built) as they need."""
    # No package index: a hook's own dependencies resolve against nothing (no network in
    # tests); tests of installs bring their own index (tests/packageindex.py).
    return {"DATA_DIR": str(tmp_path / "data"), "TIMEOUT_SECONDS": 5, "CPU_SECONDS": 2,
            "INDEX_URL": "none", **backend_settings}


@pytest.fixture
def app(app_settings, sandbox):
    """An app on its own data directory (and schema, on PostgreSQL), running hooks in the
    session's sandbox."""
    app = create_app(app_settings, env_file=None, sandbox=sandbox)
    yield app
    app.extensions["hookengine"].close()


@pytest.fixture
def engine(app):
    return app.extensions["hookengine"]


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def token(engine):
    """token(*scopes) -> a new bearer token holding those scopes (all scopes when none)."""
    def create(*scopes: str) -> str:
        return engine.tokens.create(list(scopes))
    return create


@pytest.fixture
def auth(token):
    """auth(*scopes) -> Authorization headers for a new token holding those scopes."""
    def headers(*scopes: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token(*scopes)}"}
    return headers


@pytest.fixture
def script_for():
    """script_for(trigger_id) -> the smallest script defining that trigger's entry function."""
    def script(trigger_id: str = "send-phone-message") -> str:
        return f"def {TRIGGERS[trigger_id].signature()}:\n    return None\n"
    return script


@pytest.fixture
def make_hook(client, auth, script_for):
    """make_hook(**fields) -> the created hook (201 asserted); defaults fill what is missing."""
    headers = auth("create:hooks")
    counter = iter(range(1, 10_000))

    def create(**fields) -> dict:
        trigger_id = fields.setdefault("triggerId", "send-phone-message")
        fields.setdefault("name", f"hook-{next(counter)}")
        fields.setdefault("script", script_for(trigger_id))
        response = client.post("/api/v2/hooks", json=fields, headers=headers)
        assert response.status_code == 201, response.json
        return response.json
    return create


@pytest.fixture
def sample_payload():
    """sample_payload(trigger_id) -> a deep copy of that trigger's sample payload."""
    def payload(trigger_id: str) -> dict:
        return copy.deepcopy(TRIGGERS[trigger_id].sample_payload)
    return payload
