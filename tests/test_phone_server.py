"""Phone delivery through a real `hookengine serve`: the bucket outlives a restart, and the
CLI's `phone test` and `phone outbox` talk to it."""

from __future__ import annotations

import pytest
from serverprocess import ServerProcess, hookengine

# The phone factor configured through the API, as an operator would.
CONFIGURATION = (
    ("PUT", "/guardian/factors/sms", {"enabled": True}),
    ("PUT", "/guardian/factors/phone/message-types", {"message_types": ["sms"]}),
    ("PUT", "/guardian/factors/phone/selected-provider", {"provider": "auth0"}),
    ("PATCH", "/tenants/settings", {"friendly_name": "Acme"}),
    ("PATCH", "/guardian/factors/phone/delivery-settings", {"bucket_size": 3}),
)


@pytest.fixture
def server(tmp_path):
    server = ServerProcess(tmp_path / "data").start()
    for method, path, body in CONFIGURATION:
        response = server.call(method, path, json=body)
        assert response.status_code == 200, (path, response.text)
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
