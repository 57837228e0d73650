"""GET /healthz and GET /readyz: no token, and readyz says which check failed."""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path

import pytest
import requests

from serverprocess import ServerProcess, wait_for
from test_faults import children_of


def test_healthz_answers_without_a_token(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok"}


def test_readyz_checks_the_store_and_the_started_zygote(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"status": "ready", "checks": {"store": "ok", "node": "ok", "zygote_full": "ok"}}


def test_readyz_is_503_naming_the_store_while_it_cannot_take_a_write(client, engine):
    writer = sqlite3.connect(engine.store.path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another writer holds the database
    try:
        response = client.get("/readyz")
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert response.status_code == 503
    assert response.json["errorCode"] == "not_ready"
    assert response.json["errors"] == ["store: cannot write: database is locked"]
    assert client.get("/readyz").status_code == 200


def test_health_routes_are_documented_without_security(client):
    paths = client.get("/api/v2/openapi.json").json["paths"]
    assert paths["/healthz"]["get"]["security"] == []
    assert set(paths["/readyz"]["get"]["responses"]) == {"200", "400", "503"}
    assert paths["/readyz"]["get"]["security"] == []


@pytest.fixture
def server(tmp_path):
    server = ServerProcess(tmp_path / "data").start()
    yield server
    server.terminate()


def test_a_killed_zygote_makes_readyz_503_until_it_is_restarted(server):
    assert requests.get(f"{server.base}/healthz", timeout=10).json() == {"status": "ok"}
    ready = requests.get(f"{server.base}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"store": "ok", "node": "ok", "zygote_full": "ok",
                                      "zygote_bare": "ok"}
    [bare] = [pid for pid in children_of(server.process.pid)
              if any(s.endswith("-bare/zygote.sock") for s in zygote_sockets_of(pid))]
    os.kill(bare, signal.SIGKILL)
    wait_for(lambda: dead(bare), "the zygote to die")  # the server has not reaped it yet

    response = requests.get(f"{server.base}/readyz", timeout=10)

    assert response.status_code == 503
    [problem] = response.json()["errors"]
    assert problem.startswith("zygote_bare: not answering") and problem.endswith("restarting it")
    # It was restarted in the background: ready again without a run to wake it.
    wait_for(lambda: requests.get(f"{server.base}/readyz", timeout=10).status_code == 200,
             "readyz to be 200 again")
    assert bare not in children_of(server.process.pid)


def dead(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def zygote_sockets_of(pid: int) -> list[str]:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    return [argv[argv.index("--socket") + 1]] if "--socket" in argv else []
