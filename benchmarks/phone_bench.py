"""What the delivery pipeline costs: a delivery through the development outbox and through
the send-phone-message hook, against POST /triggers/send-phone-message/execute running the
same hook (the production path without the pipeline), in one run. Goal: the hook delivery
within 1.5x of the bare execute."""

from __future__ import annotations

import shutil
import tempfile

from benchmarks.common import median_of_rounds, record
from benchmarks.sandbox_bench import TRIVIAL
from hookengine import create_app

GOAL = 1.5
COUNT = 20  # per round; the outbox is emptied between rounds (its lifetime cap is 100)


def run(rounds: int = 3) -> None:
    print("phone delivery", flush=True)
    data_dir = tempfile.mkdtemp(prefix="hookengine-bench-phone-")
    app = create_app({"DATA_DIR": data_dir, "LOG_LEVEL": "WARNING"}, env_file=None)
    engine = app.extensions["hookengine"]
    try:
        engine.sandboxes.start()
        client = app.test_client()
        headers = {"Authorization": f"Bearer {engine.tokens.create()}"}
        hook = client.post("/api/v2/hooks", headers=headers, json={
            "name": "bench-sms", "script": TRIVIAL, "triggerId": "send-phone-message"}).json
        assert hook.get("enabled"), hook
        body = {"recipient": "+14155550123", "user_id": "auth0|bench", "message_type": "sms",
                "action": "authentication", "code": "123456", "ip": "127.0.0.1"}
        payload = {"recipient": body["recipient"], "text": "123456 is your code",
                   "context": {"message_type": "sms", "action": "second-factor-authentication",
                               "language": "en", "code": "123456", "ip": "127.0.0.1",
                               "user_agent": "", "user": {"user_id": "auth0|bench"}}}

        def configure(provider):
            """Through the API, as an operator configures the phone factor."""
            for method, path, json in (
                    ("PUT", "/guardian/factors/sms", {"enabled": True}),
                    ("PUT", "/guardian/factors/phone/message-types", {"message_types": ["sms"]}),
                    ("PUT", "/guardian/factors/phone/selected-provider", {"provider": provider}),
                    ("PATCH", "/tenants/settings", {"friendly_name": "Bench"}),
                    ("PATCH", "/guardian/factors/phone/delivery-settings",
                     {"bucket_size": 10**9})):
                response = client.open(f"/api/v2{path}", method=method, json=json,
                                       headers=headers)
                assert response.status_code == 200, response.json

        def post(path, json):
            def call():
                response = client.post(path, json=json, headers=headers)
                assert response.status_code == 200, response.json
            return call

        execute = post("/api/v2/triggers/send-phone-message/execute", payload)
        deliver = post("/api/v2/guardian/factors/phone/deliveries", body)

        def dev_round():
            engine.store.connection().execute("DELETE FROM phone_dev_outbox")
            deliver()

        execute()  # warm: the zygote's first fork, the database's first pages
        baseline = median_of_rounds(execute, COUNT, rounds)
        configure("phone-message-hook")
        deliver()
        via_hook = median_of_rounds(deliver, COUNT, rounds)
        configure("auth0")
        via_dev = median_of_rounds(dev_round, COUNT, rounds)
        for name, value in (("delivery via the hook", via_hook),
                            ("delivery via the dev outbox", via_dev)):
            ratio = value / baseline
            record(name, f"{value:.1f} ms", f"{baseline:.1f} ms (trigger execute)",
                   f"{ratio:.2f}x, goal <= {GOAL}x: {'met' if ratio <= GOAL else 'MISSED'}")
    finally:
        engine.close()
        shutil.rmtree(data_dir, ignore_errors=True)
