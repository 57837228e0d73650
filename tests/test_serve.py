"""One real `hookengine serve` process, driven with a plain HTTP client."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from serverprocess import ServerProcess

SCRIPT = '''# /// script
# [tool.hookengine]
# trigger = "send-phone-message"
# secrets = ["GREETING"]
# ///
def send_phone_message(recipient, text, context):
    print(context.webtask.secrets.GREETING, recipient)
    return {"MessageID": "m-" + context.code}
'''


@pytest.fixture
def server(tmp_path):
    server = ServerProcess(tmp_path / "data", TIMEOUT_SECONDS=5).start()
    yield server
    if server.process.poll() is None:
        server.terminate()


def test_manage_and_run_a_hook_over_real_http(server):
    created = server.call("POST", "/hooks", json={"name": "greeter", "script": SCRIPT,
                                                  "triggerId": "send-phone-message"})
    assert created.status_code == 201, created.text
    hook_id = created.json()["id"]
    assert created.json()["enabled"] is True
    assert server.call("POST", f"/hooks/{hook_id}/secrets",
                       json={"GREETING": "hello-secret"}).status_code == 201
    assert server.call("GET", f"/hooks/{hook_id}/secrets").json() == {
        "GREETING": "_VALUE_NOT_SHOWN_"}
    assert server.call("PATCH", f"/hooks/{hook_id}/secrets",
                       json={"GREETING": "hi-secret"}).status_code == 200
    listed = server.call("GET", "/hooks?include_totals=true").json()
    assert listed["total"] == 1 and listed["hooks"][0]["id"] == hook_id

    record = server.call("POST", f"/hooks/{hook_id}/run", json={}).json()
    assert record["status"] == "success", record
    assert record["logs"][0]["message"] == "[secret:GREETING] +15558675310"

    patched = server.call("PATCH", f"/hooks/{hook_id}", json={"name": "greeter-2"})
    assert patched.status_code == 200 and patched.json()["name"] == "greeter-2"
    assert server.call("DELETE", f"/hooks/{hook_id}/secrets",
                       json=["GREETING"]).status_code == 204
    assert server.call("DELETE", f"/hooks/{hook_id}").status_code == 204
    assert server.call("GET", f"/hooks/{hook_id}").status_code == 404


def follow(server, hook_id: str, count: int):
    """Start following a hook's logs; a thread collects `count` events' data."""
    stream = server.session.get(f"{server.api}/hooks/{hook_id}/logs?follow=true",
                                stream=True, timeout=(5, 30))
    events: list[dict] = []

    def read():
        for line in stream.iter_lines(decode_unicode=True):
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                if len(events) == count:
                    return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.3)  # the follower is waiting before the runs happen
    return stream, events, reader


def test_follow_streams_new_log_lines_as_server_sent_events(server):
    hook = server.call("POST", "/hooks", json={"name": "live", "script": SCRIPT,
                                               "triggerId": "send-phone-message"}).json()
    server.call("POST", f"/hooks/{hook['id']}/secrets", json={"GREETING": "yo"})
    stream, events, reader = follow(server, hook["id"], count=2)
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    ids = [server.call("POST", f"/hooks/{hook['id']}/run", json={}).json()["id"]
           for _ in range(2)]
    reader.join(20)
    stream.close()
    assert [e["execution_id"] for e in events] == ids
    assert events[0]["message"] == "[secret:GREETING] +15558675310"


def test_sigterm_stops_the_server_and_its_sandbox_cleanly(server):
    log_before = server.log()
    assert "hookengine serving on http://127.0.0.1" in log_before
    assert "seccomp" in log_before
    assert server.terminate() == 0
    assert "hookengine stopped" in server.log()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.api}/openapi.json", timeout=2)


def test_unknown_route_and_method_on_the_real_server(server):
    response = server.call("GET", "/nothing-here")
    assert response.status_code == 404 and response.json()["statusCode"] == 404
    response = server.call("PUT", "/hooks")
    assert response.status_code == 405 and response.json()["error"] == "Method Not Allowed"


SLOW_OR_FAST = """# /// script
# [tool.hookengine]
# trigger = "send-phone-message"
# ///
import time

def send_phone_message(recipient, text, context):
    time.sleep(float(context.code) / 1000)
    print("finished", context.code)
"""


def test_follow_gets_a_run_that_started_first_and_finished_last(server):
    hook = server.call("POST", "/hooks", json={"name": "order", "script": SLOW_OR_FAST,
                                               "triggerId": "send-phone-message"}).json()
    payload = server.call("GET", "/triggers/send-phone-message").json()["payload"]
    stream, events, reader = follow(server, hook["id"], count=2)

    def run(code):
        body = {"payload": {**payload, "context": {**payload["context"], "code": code}}}
        server.call("POST", f"/hooks/{hook['id']}/run", json=body)

    slow = threading.Thread(target=run, args=("1500",))
    slow.start()
    time.sleep(0.3)
    run("1")  # starts second (a larger id), finishes first
    slow.join()
    reader.join(20)
    stream.close()
    assert [e["message"] for e in events] == ["finished 1", "finished 1500"]


def test_live_log_streams_are_capped_so_runs_keep_their_threads(tmp_path):
    server = ServerProcess(tmp_path / "data", SERVER_THREADS=4).start()
    try:
        hook = server.call("POST", "/hooks", json={"name": "capped", "script": SCRIPT,
                                                   "triggerId": "send-phone-message"}).json()
        url = f"{server.api}/hooks/{hook['id']}/logs?follow=true"
        first = server.session.get(url, stream=True, timeout=(5, 30))  # 4 threads: 1 stream
        second = server.session.get(url, stream=True, timeout=(5, 30))
        assert first.status_code == 200
        assert second.status_code == 503 and "Too many live log streams" in second.text
        assert server.call("GET", f"/hooks/{hook['id']}").status_code == 200
        first.close()
    finally:
        server.terminate()
