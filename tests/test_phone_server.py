"""Phone delivery through a real `hookengine serve`: the bucket outlives a restart, and the
CLI's `phone test` and `phone outbox` talk to it."""

from __future__ import annotations

import json
import os
import sys

import pytest
from serverprocess import ServerProcess, hookengine

PHONE_SERVER = os.path.join(os.path.dirname(__file__), "phone_server.py")


@pytest.fixture
def server(tmp_path):
    server = ServerProcess(tmp_path / "data")
    server.argv = [sys.executable, PHONE_SERVER]
    server.env["PHONE_TEST_CONFIG"] = json.dumps({
        "sms_enabled": True, "message_types": ["sms"], "provider": "auth0",
        "friendly_name": "Acme", "bucket_size": 3})
    server.start()
    yield server
    if server.process.poll() is None:
        server.terminate()


def deliver(server, user_id="auth0|u1"):
    return server.call("POST", "/guardian/factors/phone/deliveries", json={
        "recipient": "+14155550123", "user_id": user_id, "message_type": "sms",
        "action": "authentication", "code": "123456", "ip": "127.0.0.1"})


def test_the_bucket_survives_a_restart(server):
    assert [deliver(server).status_code for _ in range(2)] == [200, 200]
    assert server.terminate() == 0
    server.start()
    last = deliver(server)
    assert (last.status_code, last.headers["X-RateLimit-Remaining"]) == (200, "0")
    refused = deliver(server)
    assert (refused.status_code, refused.json()["errorCode"]) == (429, "too_many_sms")


def test_cli_sends_a_test_message_and_prints_the_outbox(server):
    env = {**server.env, "HOOKENGINE_URL": server.base, "HOOKENGINE_TOKEN": server.token}
    sent = hookengine("phone", "test", "+14155550123", env=env)
    assert sent.startswith("sent by auth0;")
    printed = hookengine("phone", "outbox", env=env)
    assert "+14155550123 sms: " in printed
    assert "is your verification code for Acme" in printed
