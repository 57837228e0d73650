"""Log streams: /api/v2/log-streams, and tenant logs delivered to a real receiver on loopback."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hookengine.store import Store
from hookengine.tenantlogs import TenantLogs
from serverprocess import ServerProcess

# The store's own behaviour: the same on SQLite and on PostgreSQL.
pytestmark = pytest.mark.backends


class Receiver:
    """An HTTP receiver on 127.0.0.1 that keeps what it is sent.

    `failures`: how many requests to answer 500 first. `hold`: the first request waits until
    `release` is set, and what it carried is not kept (it never reached the SIEM).
    """

    def __init__(self, failures: int = 0, hold: bool = False):
        self.requests: list[dict] = []
        self.failures, self.hold = failures, hold
        self.held, self.release = threading.Event(), threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.answer(dict(self.headers), body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/ingest"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, headers: dict, body: bytes) -> int:
        with self.lock:
            holding = self.hold
            self.hold = False
            failing = self.failures > 0
            self.failures -= failing
        if holding:
            self.held.set()
            self.release.wait(60)
            return 200
        if failing:
            return 500
        with self.lock:
            self.requests.append({"headers": headers, "body": body})
        return 200

    def log_ids(self) -> list[str]:
        """Every log id received, from any of the three formats."""
        ids = []
        for request in self.requests:
            body = request["body"].decode()
            if body.startswith("{\"logs\""):
                envelopes = json.loads(body)["logs"]
            elif body.startswith("["):
                envelopes = json.loads(body)
            else:
                envelopes = [json.loads(line) for line in body.splitlines()]
            ids += [envelope["log_id"] for envelope in envelopes]
        return ids

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def start(**kwargs) -> Receiver:
        made.append(Receiver(**kwargs))
        return made[-1]
    yield start
    for each in made:
        each.close()


@pytest.fixture
def app_settings(app_settings):
    return {**app_settings, "EGRESS_ALLOW": "127.0.0.1/32", "MAX_LOG_STREAMS": 3}


def stream_body(url: str, **sink) -> dict:
    return {"name": "siem", "type": "http", "sink": {"httpEndpoint": url, **sink}}


def wait_for(condition, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


# --- the API -------------------------------------------------------------------------------

def test_create_read_update_delete(client, auth, engine):
    headers = auth("create:log_streams", "read:log_streams", "update:log_streams",
                   "delete:log_streams")
    created = client.post("/api/v2/log-streams", headers=headers, json=stream_body(
        "https://siem.example/ingest", httpAuthorization="Bearer abc",
        httpCustomHeaders=[{"header": "X-Tenant", "value": "t1"}]))
    assert created.status_code == 200, created.json
    stream = created.json
    assert stream["id"].startswith("lst_") and stream["status"] == "active"
    assert stream["sink"] == {"httpEndpoint": "https://siem.example/ingest",
                              "httpContentType": "application/json",
                              "httpContentFormat": "JSONLINES",
                              "httpAuthorization": "Bearer abc",
                              "httpCustomHeaders": [{"header": "X-Tenant", "value": "t1"}]}
    raw = engine.store.query_one("SELECT sink FROM log_streams")["sink"]
    assert "Bearer abc" not in raw  # encrypted at rest, returned in clear (as Auth0)

    assert client.get("/api/v2/log-streams", headers=headers).json == [stream]
    paused = client.patch(f"/api/v2/log-streams/{stream['id']}", headers=headers,
                          json={"status": "paused", "sink": {"httpContentFormat": "JSONARRAY"}})
    assert paused.json["status"] == "paused"
    assert paused.json["sink"]["httpContentFormat"] == "JSONARRAY"
    assert paused.json["sink"]["httpAuthorization"] == "Bearer abc"  # other keys kept
    assert client.get(f"/api/v2/log-streams/{stream['id']}", headers=headers).json == paused.json

    assert client.delete(f"/api/v2/log-streams/{stream['id']}",
                         headers=headers).status_code == 204
    missing = client.get(f"/api/v2/log-streams/{stream['id']}", headers=headers)
    assert missing.status_code == 404
    assert missing.json["message"] == "The log stream does not exist."


@pytest.mark.parametrize("body, words", [
    ({"type": "eventbridge", "sink": {"httpEndpoint": "https://a.example"}}, "type http only"),
    (stream_body("http://siem.example/ingest"), "only https://"),
    (stream_body("http://127.0.0.2:9/x"), "only https://"),   # loopback, not egress-allowed
    (stream_body("ftp://siem.example"), "not an https:// URL"),
    (stream_body("https://a.example", httpContentFormat="XML"), "XML"),
    (stream_body("https://a.example", httpAuthorization="a\r\nX-Evil: 1"), "httpAuthorization"),
    (stream_body("https://a.example", httpCustomHeaders=[{"header": "Host", "value": "x"}]),
     "may not set Host"),
    ({**stream_body("https://a.example"), "filters": [{"type": "category", "name": "x"}]},
     "filters"),
    ({**stream_body("https://a.example"), "pii_config": {"method": "mask"}}, "pii_config"),
    ({**stream_body("https://a.example"), "startFrom": "yesterday"}, "startFrom"),
    ({"type": "http"}, "sink"),
])
def test_bad_streams_are_400s(client, auth, body, words):
    response = client.post("/api/v2/log-streams", headers=auth("create:log_streams"),
                           json=body)
    assert response.status_code == 400, response.json
    assert words in response.json["message"]


def test_status_suspended_cannot_be_set(client, auth):
    headers = auth("create:log_streams", "update:log_streams")
    stream = client.post("/api/v2/log-streams", headers=headers,
                         json=stream_body("https://a.example")).json
    assert client.patch(f"/api/v2/log-streams/{stream['id']}", headers=headers,
                        json={"status": "suspended"}).status_code == 400


def test_the_stream_limit_is_a_409(client, auth):
    headers = auth("create:log_streams")
    for _ in range(3):
        assert client.post("/api/v2/log-streams", headers=headers,
                           json=stream_body("https://a.example")).status_code == 200
    refused = client.post("/api/v2/log-streams", headers=headers,
                          json=stream_body("https://a.example"))
    assert refused.status_code == 409
    assert refused.json["message"] == ("You have reached the maximum number of log streams "
                                       "for your account.")


# --- delivery, driven in-process -----------------------------------------------------------

@pytest.mark.parametrize("content_format", ["JSONLINES", "JSONARRAY", "JSONOBJECT"])
def test_each_format_arrives_with_its_headers(engine, receiver, content_format):
    sink = receiver()
    engine.log_streams.create(stream_body(
        sink.url, httpContentFormat=content_format, httpContentType="application/x-ndjson",
        httpAuthorization="Splunk abc", httpCustomHeaders=[{"header": "X-Tenant",
                                                             "value": "t1"}]))
    sent = [engine.logs.record({"type": "gd_send_sms", "user_id": f"auth0|{n}"})
            for n in range(3)]
    assert engine.log_delivery.deliver_due()
    (request,) = sink.requests
    assert request["headers"]["Authorization"] == "Splunk abc"
    assert request["headers"]["Content-Type"] == "application/x-ndjson"
    assert request["headers"]["X-Tenant"] == "t1"
    body = request["body"].decode()
    envelopes = {"JSONLINES": lambda: [json.loads(line) for line in body.splitlines()],
                 "JSONARRAY": lambda: json.loads(body),
                 "JSONOBJECT": lambda: json.loads(body)["logs"]}[content_format]()
    assert envelopes == [{"log_id": entry["log_id"], "data": entry} for entry in sent]
    assert not engine.log_delivery.deliver_due()  # delivered rows are gone


def test_filters_paused_streams_and_start_from(engine, receiver):
    notified, everything = receiver(), receiver()
    engine.logs.record({"type": "gd_send_sms"})  # before any stream exists
    engine.log_streams.create({**stream_body(notified.url),
                               "filters": [{"type": "category", "name": "user.notification"}]})
    engine.log_streams.create({**stream_body(everything.url), "startFrom": "2000-01-01T00:00Z"})
    enrolled = engine.logs.record({"type": "gd_start_enroll"})
    engine.logs.record({"type": "gd_send_sms"})
    engine.log_delivery.deliver_due()
    assert notified.log_ids() == [enrolled["log_id"]]
    assert len(everything.log_ids()) == 3  # startFrom also sent the older event

    paused = engine.log_streams.list()[0]
    engine.log_streams.update(paused["id"], {"status": "paused"})
    engine.logs.record({"type": "gd_start_enroll"})  # not queued for a paused stream
    engine.log_delivery.deliver_due()
    assert len(notified.requests) == 1


def test_failing_for_the_suspend_period_suspends_and_keeps_the_queue(engine, receiver):
    engine.log_delivery.suspend_seconds = 0  # as LOG_STREAM_SUSPEND_DAYS=0: at once
    sink = receiver(failures=3)
    stream = engine.log_streams.create(stream_body(sink.url))
    entry = engine.logs.record({"type": "gd_send_voice_failure"})
    assert not engine.log_delivery.deliver_due()
    assert engine.log_streams.get(stream["id"])["status"] == "suspended"
    assert sink.requests == []

    engine.log_streams.update(stream["id"], {"status": "active"})
    assert engine.log_delivery.deliver_due()
    assert sink.log_ids() == [entry["log_id"]]


# --- delivery by a real server -------------------------------------------------------------

def server_for(tmp_path) -> ServerProcess:
    return ServerProcess(tmp_path / "data", EGRESS_ALLOW="127.0.0.1/32",
                         LOG_STREAM_RETRY_SECONDS=0.1)


def record_many(data_dir, count: int) -> list[str]:
    """Record events from this process into the server's database (as another writer)."""
    store = Store(data_dir).open()
    try:
        logs = TenantLogs(store)
        return [logs.record({"type": "gd_send_sms", "user_id": f"auth0|{n}"})["log_id"]
                for n in range(count)]
    finally:
        store.close()


def test_a_receiver_failing_for_a_while_gets_everything(tmp_path, receiver):
    sink = receiver(failures=5)  # two rounds of three attempts fail, then it recovers
    server = server_for(tmp_path).start()
    try:
        created = server.call("POST", "/log-streams", json=stream_body(sink.url))
        assert created.status_code == 200, created.text
        sent = record_many(server.data_dir, 250)  # three batches
        wait_for(lambda: set(sent) <= set(sink.log_ids()))
        wait_for(lambda: server.call("GET", "/logs?per_page=1&include_totals=true")
                 .json()["total"] == 250)
    finally:
        server.terminate()
    database = sqlite3.connect(Path(server.data_dir) / "hookengine.sqlite3")
    assert database.execute("SELECT COUNT(*) FROM log_stream_outbox").fetchone()[0] == 0


def test_an_engine_killed_mid_delivery_loses_nothing(tmp_path, receiver):
    sink = receiver(hold=True)
    server = server_for(tmp_path).start()
    assert server.call("POST", "/log-streams", json=stream_body(
        sink.url, httpContentFormat="JSONARRAY")).status_code == 200
    sent = record_many(server.data_dir, 150)
    assert sink.held.wait(60)  # the first batch is on the wire
    server.kill()
    sent += record_many(server.data_dir, 20)  # while the engine is down
    sink.release.set()  # the held request's answer goes to a dead socket

    restarted = server_for(tmp_path)
    restarted.start()
    try:
        # At least once: the interrupted batch comes again; duplicates are allowed.
        wait_for(lambda: set(sent) <= set(sink.log_ids()))
    finally:
        restarted.terminate()
