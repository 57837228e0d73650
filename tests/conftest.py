"""Shared fixtures: an app on a fresh data directory, its client, tokens and hooks."""

from __future__ import annotations

import copy

import pytest
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


@pytest.fixture
def app_settings(tmp_path):
    """Settings of the `app` fixture; tests add to it (before `app` is built) as they need."""
    # No package index: a hook's own dependencies resolve against nothing (no network in
    # tests); tests of installs bring their own index (tests/packageindex.py).
    return {"DATA_DIR": str(tmp_path / "data"), "TIMEOUT_SECONDS": 5, "CPU_SECONDS": 2,
            "INDEX_URL": "none"}


@pytest.fixture
def app(app_settings, sandbox):
    """An app on its own SQLite data directory, running hooks in the session's sandbox."""
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
