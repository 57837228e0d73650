"""Several identical `hookengine serve` nodes on one PostgreSQL: shared state, a node killed
mid-run, live logs across nodes, draining, back-pressure, starting together."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
import requests
from auth0.management import Auth0
from serverprocess import ServerProcess, free_port, read_db, wait_for
from test_faults import SLEEPER, payload

LEASE = 2.0
PRINTER = '''def post_user_registration(user, context):
    for n in range(3):
        print(user["id"], "line", n)
    return {}
'''


@pytest.fixture
def nodes(tmp_path, pg_url, pg_secret_key):
    """nodes(name, **settings) -> a started node on the test's schema; all stopped after."""
    started = []

    def start(name: str, **settings) -> ServerProcess:
        node = ServerProcess(tmp_path / name, DATABASE_URL=pg_url, SECRET_KEY=pg_secret_key,
                             NODE_LEASE_SECONDS=LEASE, INDEX_URL="none", LOG_LEVEL="WARNING",
                             **settings)
        started.append(node)
        return node.start()
    yield start
    for node in started:
        if node.process is not None:
            node.kill()  # also closes its log file, whether it is still running or not


def sleeper(node: ServerProcess, name: str = "sleeper") -> dict:
    hook = node.call("POST", "/hooks", json={"name": name, "script": SLEEPER,
                                             "triggerId": "send-phone-message"}).json()
    assert node.call("POST", f"/hooks/{hook['id']}/secrets",
                     json={"TOKEN": "t"}).status_code == 201
    return hook


def run_in_background(node: ServerProcess, hook: dict, milliseconds: int | None) -> dict:
    """Start a run in a thread (of the sleeper for `milliseconds`; None: the trigger's
    sample); the returned dict gets its response (or its error)."""
    answer: dict = {}
    body = {} if milliseconds is None else payload(str(milliseconds))

    def call():
        try:
            answer["response"] = node.call("POST", f"/hooks/{hook['id']}/run", json=body)
        except requests.RequestException as error:
            answer["error"] = error
    answer["thread"] = threading.Thread(target=call, daemon=True)
    answer["thread"].start()
    return answer


def running(url: str) -> list[tuple]:
    return read_db(url, "SELECT id, node_id FROM executions WHERE status = 'running'")


def test_a_hook_made_through_one_node_is_read_and_run_through_another(nodes):
    a, b = nodes("a"), nodes("b")
    http = httpx.Client(timeout=10)
    try:
        created = Auth0(base_url=a.api, token=a.token, httpx_client=http, max_retries=0
                        ).hooks.create(name="welcome", script=PRINTER,
                                       trigger_id="post-user-registration")
        read = Auth0(base_url=b.api, token=b.token, httpx_client=http, max_retries=0
                     ).hooks.get(created.id)
    finally:
        http.close()
    assert (read.name, read.script) == ("welcome", PRINTER)
    on_a = a.call("POST", f"/hooks/{created.id}/run", json={}).json()
    on_b = b.call("POST", f"/hooks/{created.id}/run", json={}).json()
    assert on_a["status"] == on_b["status"] == "success"
    assert on_a["node_id"] != on_b["node_id"]
    # Secrets set through one node are read (decrypted) by the other: one key.
    hook = sleeper(a)
    assert b.call("POST", f"/hooks/{hook['id']}/run", json=payload("1")).json()[
        "status"] == "success"


def test_a_killed_nodes_run_is_interrupted_while_the_other_keeps_answering(nodes, pg_url):
    a, b = nodes("a"), nodes("b")
    hook = sleeper(a)
    answer = run_in_background(a, hook, 30000)
    [(execution_id, node_id)] = wait_for(lambda: running(pg_url), "the run to start")
    a.kill()
    killed = time.monotonic()
    quick = sleeper(b, "quick")
    while True:
        # B answers all along: reads, and runs of its own.
        record = b.call("GET", f"/executions/{execution_id}").json()
        assert b.call("POST", f"/hooks/{quick['id']}/run", json=payload("1")).status_code == 200
        if record["status"] != "running":
            break
        assert time.monotonic() - killed < 2 * LEASE, "not marked within twice the lease"
        time.sleep(0.1)
    assert record["status"] == "interrupted" and record["node_id"] == node_id
    assert record["logs"][-1]["stream"] == "error"
    answer["thread"].join(10)
    assert "error" in answer  # A's caller learned at once: the connection was reset
    # B's own runs are untouched.
    assert {r[0] for r in read_db(pg_url, "SELECT status FROM executions WHERE node_id <> ?",
                                  (node_id,))} == {"success"}


def test_a_follower_on_one_node_receives_every_line_of_runs_on_another(nodes):
    a, b = nodes("a"), nodes("b")
    hook = a.call("POST", "/hooks", json={"name": "printer", "script": PRINTER,
                                          "triggerId": "post-user-registration"}).json()
    stream = b.session.get(f"{b.api}/hooks/{hook['id']}/logs?follow=true", stream=True,
                           timeout=(5, 30))
    events = read_events(stream)
    runs = [run_in_background(a, hook, None) for _ in range(5)]
    for run in runs:
        run["thread"].join(30)
    executions = {run["response"].json()["id"] for run in runs}
    got = [events.get(timeout=10) for _ in range(15)]
    assert {event["data"]["execution_id"] for event in got} == executions
    positions = [event["id"] for event in got]
    assert positions == sorted(positions) and len(set(positions)) == 15
    stream.close()
    # Resuming after the last position repeats nothing and misses nothing.
    again = b.session.get(f"{b.api}/hooks/{hook['id']}/logs?follow=true&after={positions[-1]}",
                          stream=True, timeout=(5, 30))
    events = read_events(again)
    late = a.call("POST", f"/hooks/{hook['id']}/run", json={}).json()
    got = [events.get(timeout=10) for _ in range(3)]
    assert {event["data"]["execution_id"] for event in got} == {late["id"]}
    again.close()


def read_events(response):
    """A queue of a Server-Sent Events stream's events ({id, data}), read in a thread."""
    import queue

    events: queue.Queue = queue.Queue()

    def read():
        event: dict = {}
        try:
            for line in response.iter_lines(decode_unicode=True):
                if line.startswith("id: "):
                    event["id"] = int(line[4:])
                elif line.startswith("data: "):
                    event["data"] = json.loads(line[6:])
                elif line == "" and "data" in event:
                    events.put(event)
                    event = {}
        except (requests.RequestException, AttributeError, ValueError):
            pass
    threading.Thread(target=read, daemon=True).start()
    return events


def test_a_draining_node_finishes_its_run_in_flight_and_takes_no_new_one(nodes, pg_url):
    a, b = nodes("a"), nodes("b")
    hook = sleeper(a)
    answer = run_in_background(a, hook, 1500)
    wait_for(lambda: running(pg_url), "the run to start")
    a.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(requests.ConnectionError):  # no new connection: try another node
        requests.post(f"{a.api}/hooks/{hook['id']}/run", json=payload("1"), timeout=5,
                      headers={"Authorization": f"Bearer {a.token}"})
    assert b.call("POST", f"/hooks/{hook['id']}/run", json=payload("1")).status_code == 200
    answer["thread"].join(30)
    assert answer["response"].status_code == 200
    assert answer["response"].json()["status"] == "success"
    assert a.process.wait(30) == 0


def test_a_node_with_every_run_slot_busy_answers_503_before_recording(nodes, pg_url):
    a = nodes("a", MAX_RUNS=1)
    hook = sleeper(a)
    answer = run_in_background(a, hook, 2000)
    wait_for(lambda: running(pg_url), "the run to start")
    refused = a.call("POST", f"/hooks/{hook['id']}/run", json=payload("1"))
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert refused.json()["errorCode"] == "node_busy"
    assert read_db(pg_url, "SELECT COUNT(*) FROM executions")[0][0] == 1  # nothing recorded
    answer["thread"].join(30)
    assert a.call("POST", f"/hooks/{hook['id']}/run", json=payload("1")).status_code == 200


def test_nodes_starting_together_migrate_once(nodes, pg_url):
    threads = [threading.Thread(target=nodes, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    versions = [row[0] for row in read_db(pg_url, "SELECT version FROM schema_version")]
    assert versions == sorted(set(versions)) and versions[-1] == len(versions)
    assert len(read_db(pg_url, "SELECT id FROM nodes")) == 2


def test_without_a_secret_key_a_postgresql_node_refuses_to_start(tmp_path, pg_url):
    done = subprocess.run([sys.executable, "-m", "hookengine.cli", "serve", "--port",
                           str(free_port())],
                          env={"HOOKENGINE_DATA_DIR": str(tmp_path / "data"),
                               "HOOKENGINE_DATABASE_URL": pg_url, "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "HOOKENGINE_SECRET_KEY is required" in done.stderr


def test_a_database_restart_is_503_then_the_node_recovers(nodes, pg_cluster):
    a = nodes("a")
    hook = sleeper(a)
    pg_cluster.restart()
    answers = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = a.call("POST", f"/hooks/{hook['id']}/run", json=payload("1"))
        answers.append(response.status_code)
        if response.status_code == 200:
            break
        time.sleep(0.2)
    assert answers[-1] == 200 and set(answers) <= {200, 503}, answers


def test_each_node_installs_a_hooks_locked_dependencies_on_first_use(nodes, tmp_path):
    from packageindex import build
    from test_dependencies import ALLOWED, script

    index = tmp_path / "index"
    index.mkdir()
    build(index)
    packages = {"FIND_LINKS": str(index), "ALLOWED_PACKAGES": ALLOWED}
    a, b = nodes("a", **packages), nodes("b", **packages)
    hook = a.call("POST", "/hooks", json={"name": "demo", "script": script("hookdemo==2.0.0"),
                                          "triggerId": "send-phone-message"}).json()
    installed = wait_for(lambda: (lambda h: h if h["dependencies_status"] != "installing"
                                  else None)(a.call("GET", f"/hooks/{hook['id']}").json()),
                         "the install on node A", 120)
    assert installed["dependencies_status"] == "ready", installed
    # Both nodes' first runs at once: B builds the environment from the shared lockfile.
    answers = [run_in_background(node, hook, None) for node in (a, b, b)]
    for answer in answers:
        answer["thread"].join(120)
    results = [answer["response"].json() for answer in answers]
    assert [r["status"] for r in results] == ["success"] * 3, results
    assert {r["result"]["MessageID"] for r in results} == {"2.0.0"}
    assert any((tmp_path / "b" / "envs").iterdir())  # B's own copy
