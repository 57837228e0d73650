"""Promises kept while things go wrong: kills, a dead zygote, a locked or full database,
slow clients and oversized bodies."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from hookengine import create_app
from serverprocess import ServerProcess

SLEEPER = '''# /// script
# [tool.hookengine]
# trigger = "send-phone-message"
# secrets = ["TOKEN"]
# ///
import time

def send_phone_message(recipient, text, context):
    print("start", context.code)
    time.sleep(float(context.code) / 1000)
    return {"slept_ms": context.code}
'''


def payload(code: str) -> dict:
    return {"payload": {"recipient": "+15550001111", "text": "t", "context": {
        "message_type": "sms", "action": "enrollment", "language": "en", "code": code,
        "ip": "::1", "user_agent": "t", "user": {}}}}


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found


def wait_gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.05)
    return False


def test_sigkill_mid_run_loses_nothing_confirmed_and_marks_runs_interrupted(tmp_path):
    server = ServerProcess(tmp_path / "data", TIMEOUT_SECONDS=20).start()
    hooks = []
    for n in range(3):
        hook = server.call("POST", "/hooks", json={"name": f"sleeper-{n}", "script": SLEEPER,
                                                   "triggerId": "send-phone-message"}).json()
        assert server.call("POST", f"/hooks/{hook['id']}/secrets",
                           json={"TOKEN": f"secret-{n}"}).status_code == 201
        hooks.append(hook)
    finished = [server.call("POST", f"/hooks/{h['id']}/run", json=payload("1")).json()
                for h in hooks]
    assert all(r["status"] == "success" for r in finished)

    # Runs that will still be going when the server dies.
    threads = [threading.Thread(target=lambda h=h: _ignore_errors(
        server.call, "POST", f"/hooks/{h['id']}/run", json=payload("5000"))) for h in hooks]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _count_running(server.data_dir) < len(hooks):
        time.sleep(0.05)
    assert _count_running(server.data_dir) == len(hooks)
    zygotes = children_of(server.process.pid)
    server.kill()
    for thread in threads:
        thread.join(30)
    assert zygotes and all(wait_gone(pid) for pid in zygotes), "the zygote outlived the server"

    restarted = ServerProcess(tmp_path / "data")
    restarted.token = server.token  # the old token must still work after the restart
    restarted.session.headers["Authorization"] = f"Bearer {server.token}"
    restarted.start()
    try:
        listed = restarted.call("GET", "/hooks").json()
        assert sorted(h["name"] for h in listed) == ["sleeper-0", "sleeper-1", "sleeper-2"]
        for hook, record in zip(hooks, finished):
            assert restarted.call("GET", f"/hooks/{hook['id']}/secrets").json() == {
                "TOKEN": "_VALUE_NOT_SHOWN_"}
            assert restarted.call("GET", f"/executions/{record['id']}").json() == record
            executions = restarted.call("GET", f"/hooks/{hook['id']}/executions").json()
            assert [e["status"] for e in executions] == ["interrupted", "success"]
            assert executions[0]["error"]["name"] == "Interrupted"
        # Secrets still decrypt: a new run of each hook works.
        rerun = restarted.call("POST", f"/hooks/{hooks[0]['id']}/run", json=payload("1")).json()
        assert rerun["status"] == "success"
    finally:
        restarted.terminate()
    database = sqlite3.connect(Path(server.data_dir) / "hookengine.sqlite3")
    assert database.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _count_running(data_dir) -> int:
    database = sqlite3.connect(Path(data_dir) / "hookengine.sqlite3", timeout=5)
    try:
        return database.execute("SELECT COUNT(*) FROM executions WHERE status = 'running'"
                                ).fetchone()[0]
    finally:
        database.close()


def _ignore_errors(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except Exception:  # the server is killed under this request on purpose
        pass


@pytest.fixture
def own_sandbox_app(tmp_path):
    """An app with a zygote of its own, because this test kills it."""
    app = create_app({"DATA_DIR": str(tmp_path / "data"), "TIMEOUT_SECONDS": 10},
                     env_file=None)
    yield app
    app.extensions["hookengine"].close()


def test_killing_the_zygote_fails_only_the_runs_in_flight(own_sandbox_app):
    engine = own_sandbox_app.extensions["hookengine"]
    client = own_sandbox_app.test_client()
    headers = {"Authorization": f"Bearer {engine.tokens.create()}"}
    hook = client.post("/api/v2/hooks", json={"name": "s", "script": SLEEPER,
                                              "triggerId": "send-phone-message"},
                       headers=headers).json
    client.post(f"/api/v2/hooks/{hook['id']}/secrets", json={"TOKEN": "tok-1"},
                headers=headers)
    assert client.post(f"/api/v2/hooks/{hook['id']}/run", json=payload("1"),
                       headers=headers).json["status"] == "success"
    sandbox = engine.sandboxes.for_dependencies({})  # the sleeper declares no dependencies
    zygote = sandbox.process.pid
    hook_processes = children_of(zygote)
    results = []
    runner = threading.Thread(target=lambda: results.append(client.post(
        f"/api/v2/hooks/{hook['id']}/run", json=payload("5000"), headers=headers).json))
    runner.start()
    time.sleep(1.0)
    os.kill(zygote, signal.SIGKILL)
    runner.join(20)
    [record] = results
    assert record["status"] == "killed"
    assert "restarted" in record["error"]["message"]
    assert all(wait_gone(pid) for pid in hook_processes), "a hook process outlived the zygote"
    after = client.post(f"/api/v2/hooks/{hook['id']}/run", json=payload("1"), headers=headers)
    assert after.json["status"] == "success"
    assert sandbox.process.pid != zygote


def test_a_locked_database_gives_503_and_changes_nothing(app, client, auth, monkeypatch):
    engine = app.extensions["hookengine"]
    monkeypatch.setattr("hookengine.store.BUSY_TIMEOUT_MS", 200)
    engine.store.close()  # reconnect with the short busy timeout
    headers = auth("create:hooks", "read:hooks")
    locker = sqlite3.connect(engine.store.path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        response = client.post("/api/v2/hooks", headers=headers, json={
            "name": "locked", "triggerId": "send-phone-message",
            "script": "def send_phone_message(recipient, text, context):\n    return 1\n"})
    finally:
        locker.execute("ROLLBACK")
    assert response.status_code == 503, response.json
    assert response.json["errorCode"] == "service_unavailable"
    assert client.get("/api/v2/hooks", headers=headers).json == []


def test_a_full_disk_gives_503_and_changes_nothing(app, client, auth, make_hook):
    engine = app.extensions["hookengine"]
    hook = make_hook(name="before")
    db = engine.store.connection()
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite now reports SQLITE_FULL
    try:
        response = client.patch(f"/api/v2/hooks/{hook['id']}", headers=auth("update:hooks"),
                                json={"script": "def send_phone_message(recipient, text, "
                                      "context):\n    return '" + "x" * 90000 + "'\n"})
    finally:
        db.execute("PRAGMA max_page_count = 1073741823")
    assert response.status_code == 503, response.json
    assert "full" in response.json["message"]
    assert engine.hooks.get(hook["id"])["script"] == hook["script"]


@pytest.fixture
def server(tmp_path):
    server = ServerProcess(tmp_path / "data", MAX_BODY_BYTES=65536).start()
    yield server
    server.terminate()


def test_an_oversized_body_is_refused_before_it_is_read(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /api/v2/hooks HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/json\r\nAuthorization: Bearer " + server.token.encode()
                     + b"\r\nContent-Length: 50000000\r\n\r\n{\"name\":")
        # Only the headers and 8 bytes were sent, yet the whole answer comes (and the close).
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        answer = b"".join(chunks).decode()
    assert answer.startswith("HTTP/1.1 413")
    assert '"statusCode": 413' in answer and "application/json" in answer


def test_slow_clients_do_not_tie_up_the_server(server):
    stalled = []
    for _ in range(40):  # more than the worker threads
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(b"POST /api/v2/hooks HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        stalled.append(sock)
    try:
        started = time.monotonic()
        for _ in range(5):
            assert server.call("GET", "/hooks").status_code == 200
        assert time.monotonic() - started < 10
    finally:
        for sock in stalled:
            sock.close()
