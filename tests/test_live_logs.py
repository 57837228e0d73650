"""Logs with a real server: lines reach followers while the run goes on, failures and cut-off
runs keep what they printed, streams resume exactly and let go of their thread at once.

A hook that must stay in the middle of its run waits on a gate: a local HTTP server whose
answer the test holds back. So "while the run is still going" is a fact the test controls,
not a matter of timing.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from loopback import LoopbackServer, QuietHandler
from serverprocess import ServerProcess

# The store's own behaviour: the same on SQLite and on PostgreSQL.
pytestmark = pytest.mark.backends

GATED = '''# /// script
# dependencies = ["requests"]
# [tool.hookengine]
# trigger = "send-phone-message"
# ///
import requests

def send_phone_message(recipient, text, context):
    print("first")
    requests.get("http://gate.test/wait", timeout=60)
    print("second")
    return {"MessageID": "m-1"}
'''

COUNTING = '''# /// script
# [tool.hookengine]
# trigger = "send-phone-message"
# ///
def send_phone_message(recipient, text, context):
    for n in range(5):
        print(context.code, n)
    return {"MessageID": "m-" + context.code}
'''


class Gate:
    """A local HTTP server whose answers wait until `open()`."""

    def __init__(self):
        self.opened = threading.Event()
        self.arrived = threading.Event()
        gate = self

        class Handler(QuietHandler):
            def do_GET(self):
                gate.arrived.set()
                gate.opened.wait(60)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.loopback = LoopbackServer(Handler)
        self.url = self.loopback.url

    def open(self):
        self.opened.set()

    def close(self):
        self.opened.set()
        self.loopback.close()


class EventStream:
    """A live log stream read on a thread: `next()` waits for the next event."""

    def __init__(self, server, hook_id: str, after: int | None = None,
                 last_event_id: int | None = None):
        query = "follow=true" + (f"&after={after}" if after is not None else "")
        headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
        self.response = server.session.get(f"{server.api}/hooks/{hook_id}/logs?{query}",
                                           headers=headers, stream=True, timeout=(5, 60))
        self.status = self.response.status_code
        self.events: queue.Queue = queue.Queue()
        self.ready = threading.Event()
        if self.status == 200:
            threading.Thread(target=self._read, daemon=True).start()
            assert self.ready.wait(10), "the stream never said it was following"

    def _read(self):
        event: dict = {}
        try:
            for line in self.response.iter_lines(decode_unicode=True):
                if line.startswith(": following"):
                    self.ready.set()
                elif line.startswith("id: "):
                    event["id"] = int(line[4:])
                elif line.startswith("data: "):
                    event["data"] = json.loads(line[6:])
                elif line == "" and "data" in event:  # an id alone is a resume point
                    self.events.put(event)
                    event = {}
        except (requests.RequestException, AttributeError, ValueError):
            pass  # closed by the test, or by the server

    def next(self) -> dict:
        return self.events.get(timeout=30)

    def take(self, count: int) -> list[dict]:
        return [self.next() for _ in range(count)]

    def close(self):
        self.response.close()


@pytest.fixture
def gate():
    gate = Gate()
    yield gate
    gate.close()


@pytest.fixture
def start_server(tmp_path, gate, backend_settings):
    started = []

    def start(**settings):
        server = ServerProcess(tmp_path / "data", HOST_MAP=f"gate.test={gate.url}",
                               EGRESS_ALLOW="gate.test", **backend_settings,
                               **settings).start()
        started.append(server)
        return server
    yield start
    for server in started:
        if server.process.poll() is None:
            server.terminate()


def create(server, name: str, script: str) -> dict:
    created = server.call("POST", "/hooks", json={"name": name, "script": script,
                                                  "triggerId": "send-phone-message"})
    assert created.status_code == 201, created.text
    return created.json()


def runner_with_code(server, hook_id: str):
    """run(code): a run of the hook on the sample payload with context.code set to `code`."""
    payload = server.call("GET", "/triggers/send-phone-message").json()["payload"]

    def run(code: str) -> None:
        body = {"payload": {**payload, "context": {**payload["context"], "code": code}}}
        assert server.call("POST", f"/hooks/{hook_id}/run", json=body).status_code == 200
    return run


def run_in_background(server, hook_id: str, body: dict | None = None):
    """POST a run on a thread; its response (or the error, if the server dies) is queued."""
    results: queue.Queue = queue.Queue()

    def run():
        try:
            results.put(server.call("POST", f"/hooks/{hook_id}/run", json=body or {}))
        except requests.ConnectionError as error:
            results.put(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, results


def test_lines_reach_a_follower_while_the_run_is_still_going(start_server, gate):
    server = start_server()
    hook = create(server, "gated", GATED)
    stream = EventStream(server, hook["id"])
    thread, results = run_in_background(server, hook["id"])

    first = stream.next()
    assert first["data"]["message"] == "first"
    assert gate.arrived.wait(30) and thread.is_alive()  # the hook waits at the gate still
    gate.open()
    http, second = stream.take(2)
    record = results.get(timeout=30).json()

    assert (http["data"]["stream"], second["data"]["message"]) == ("http", "second")
    assert http["data"]["request"]["host"] == "gate.test" and http["data"]["request"][
        "status"] == 200
    assert first["id"] < http["id"] < second["id"]  # each line its own position
    assert {e["data"]["execution_id"] for e in (first, http, second)} == {record["id"]}
    assert [line["message"] for line in record["logs"] if line["stream"] == "stdout"] == [
        "first", "second"]
    stream.close()


def test_a_timeout_keeps_what_was_printed_and_ends_with_its_error_in_every_view(
        start_server, gate):
    server = start_server(TIMEOUT_SECONDS=2)
    hook = create(server, "stuck", GATED)
    stream = EventStream(server, hook["id"])
    record = server.call("POST", f"/hooks/{hook['id']}/run", json={}).json()  # gate shut

    assert record["status"] == "timeout"
    expected = [("stdout", "first"), ("error", "TimeoutError: the hook ran longer than the 2 s "
                                               "wall-clock limit and was stopped")]
    stored = server.call("GET", f"/executions/{record['id']}").json()
    recent = server.call("GET", f"/hooks/{hook['id']}/logs").json()["logs"]
    live = [e["data"] for e in stream.take(2)]
    for lines in (record["logs"], stored["logs"], list(reversed(recent)), live):
        assert [(line["stream"], line["message"]) for line in lines] == expected
    stream.close()


def test_last_event_id_resumes_without_loss_or_repeat(start_server):
    server = start_server()
    hook = create(server, "counting", COUNTING)
    run = runner_with_code(server, hook["id"])
    run("a")
    first = EventStream(server, hook["id"], after=0)
    seen = first.take(5)
    first.close()
    assert [e["data"]["message"] for e in seen] == [f"a {n}" for n in range(5)]

    # A browser reconnects with the URL it had (after=0) and the last id it saw: the header
    # wins, and the stream goes on from the third line, then the next run's lines.
    resumed = EventStream(server, hook["id"], after=0, last_event_id=seen[1]["id"])
    run("b")
    rest = resumed.take(8)
    resumed.close()
    assert [e["data"]["message"] for e in rest] == [f"a {n}" for n in (2, 3, 4)] + [
        f"b {n}" for n in range(5)]
    assert [e["id"] for e in rest] == sorted({e["id"] for e in rest})


def test_a_bad_last_event_id_is_refused(start_server):
    server = start_server()
    hook = create(server, "counting", COUNTING)
    response = server.session.get(f"{server.api}/hooks/{hook['id']}/logs?follow=true",
                                  headers={"Last-Event-ID": "yesterday"}, timeout=10)
    assert response.status_code == 400 and "Last-Event-ID" in response.json()["message"]


def test_a_closed_stream_frees_its_slot_at_once(start_server):
    server = start_server(SERVER_THREADS=4)  # one live stream at a time
    hook = create(server, "counting", COUNTING)
    held = EventStream(server, hook["id"])
    refused = server.session.get(f"{server.api}/hooks/{hook['id']}/logs?follow=true",
                                 timeout=10)
    assert refused.status_code == 503
    held.close()
    # Freed when waitress sees the client go, not at the next heartbeat (5 s) as before.
    deadline = time.monotonic() + 3
    while True:
        again = EventStream(server, hook["id"])
        if again.status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert again.status == 200
    again.close()


def test_sigterm_with_a_stream_open_stops_at_once(start_server):
    server = start_server()
    hook = create(server, "counting", COUNTING)
    stream = EventStream(server, hook["id"])
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(4) == 0  # was about 6 s: the stream held a thread
    stream.close()
    server.terminate()


def test_an_engine_killed_mid_run_keeps_the_lines_and_the_last_moment_alive(start_server,
                                                                            gate):
    server = start_server()
    hook = create(server, "gated", GATED)
    thread, _ = run_in_background(server, hook["id"])
    assert gate.arrived.wait(30)  # "first" is printed: the hook waits at the gate
    printed = server.call("GET", f"/hooks/{hook['id']}/logs").json()["logs"]
    assert [line["message"] for line in printed] == ["first"]
    server.kill()
    gate.open()

    # On SQLite the new server marks the run at start (it holds the data directory alone);
    # on PostgreSQL once the dead node's lease has run out (here 1 s; 10 by default).
    restarted = start_server(NODE_LEASE_SECONDS=1)
    deadline = time.monotonic() + 10
    while True:
        [record] = restarted.call("GET", f"/hooks/{hook['id']}/executions").json()
        if record["status"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert record["status"] == "interrupted"
    assert [(line["stream"], line["message"]) for line in record["logs"]] == [
        ("stdout", "first"),
        ("error", "Interrupted: the node running this execution stopped (or lost the "
                  "database) before it ended")]
    assert record["started_at"] <= printed[0]["time"] <= record["ended_at"]
    assert record["logs"][-1]["time"] == record["ended_at"]


def test_cli_follow_resumes_after_an_engine_restart(start_server):
    server = start_server()
    hook = create(server, "counting", COUNTING)
    run = runner_with_code(server, hook["id"])
    run("a")
    env = {**server.env, "HOOKENGINE_URL": server.base, "HOOKENGINE_TOKEN": server.token}
    follower = subprocess.Popen([sys.executable, "-m", "hookengine.cli", "logs", "counting",
                                 "--follow"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    shown: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [shown.put(line.rstrip("\n")) for line in follower.stdout],
                     daemon=True).start()
    try:
        before = [shown.get(timeout=30) for _ in range(5)]  # the recent lines, printed first
        run("b")
        live = [shown.get(timeout=30) for _ in range(5)]
        server.terminate()
        server.start()  # the same port and data directory
        run("c")  # before the follower is back: it must still get these, once
        after = [shown.get(timeout=30) for _ in range(5)]
    finally:
        follower.terminate()
        _, errors = follower.communicate(timeout=10)
    assert [line.rsplit(": ", 1)[1] for line in before + live + after] == [
        f"{code} {n}" for code in "abc" for n in range(5)]
    assert shown.empty()
    assert "reconnecting" in errors and "reconnected" in errors
