"""Shared state under concurrency: what SQLite's single writer made safe must hold on
PostgreSQL too, where READ COMMITTED lets two transactions read the same state before either
writes on it.

Each test races two engines on one database (create_app twice on the same settings: two
nodes, or two processes on one data directory) from many threads released at once, and
checks the invariant: never more than the cap, one claim per key, one delivering worker,
one enabled hook per trigger.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from hookengine import create_app
from hookengine.errors import Conflict, HookEngineError
from hookengine.phone.errors import DeliveryRefused
from hookengine.phone.idempotency import STALE_CLAIM_SECONDS, IdempotencyKeys
from hookengine.phone.providers import DevOutbox, Message
from hookengine.phone.ratelimit import Buckets
from loopback import LoopbackServer, QuietHandler

pytestmark = pytest.mark.backends

THREADS = 12  # per engine: within a PostgreSQL engine's pool (SERVER_THREADS + 4)
ROUNDS = 3    # a race lost by chance once is unlikely to be lost three times


@pytest.fixture
def app_settings(app_settings):
    return {**app_settings, "EGRESS_ALLOW": "127.0.0.1/32", "MAX_LOG_STREAMS": 3,
            "MAX_SECRETS": 6}


@pytest.fixture
def apps(app, app_settings, sandbox):
    """The `app` and a second one on the same database: two nodes."""
    other = create_app(app_settings, env_file=None, sandbox=sandbox)
    yield [app, other]
    other.extensions["hookengine"].close()


@pytest.fixture
def engines(apps):
    return [each.extensions["hookengine"] for each in apps]


def race(*calls) -> list:
    """Run every call at once, each on a thread of its own released by one barrier; the
    results in order, an exception standing for the result of a call that raised one."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index, call):
        barrier.wait()
        try:
            results[index] = call()
        except Exception as error:  # noqa: BLE001 - the test looks at what each one got
            results[index] = error

    threads = [threading.Thread(target=run, args=item) for item in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def on_both(engines, make, count: int = THREADS) -> list:
    """`count` calls per engine, `make(engine, n)` building each."""
    return [make(engine, n) for n in range(count) for engine in engines]


def unexpected(results, *expected: type) -> list:
    return [r for r in results if isinstance(r, Exception) and not isinstance(r, expected)]


def test_a_bucket_is_never_overspent(engines):
    size = 5
    for round_ in range(ROUNDS):
        user = f"auth0|{round_}"
        takes = race(*on_both(engines, lambda engine, n: lambda: Buckets(engine.store).take(
            user, size=size, refill_seconds=3600, now=1000.0)))
        assert unexpected(takes) == []
        assert sum(take.allowed for take in takes) == size, [t.remaining for t in takes]
        # And a bucket that exists already: refilled by one token, then raced again.
        takes = race(*on_both(engines, lambda engine, n: lambda: Buckets(engine.store).take(
            user, size=size, refill_seconds=3600, now=1000.0 + 3600)))
        assert sum(take.allowed for take in takes) == 1


def message(n: int) -> Message:
    return Message(recipient="+14155550123", text=f"code {n}", message_type="sms",
                   action="enrollment", user_id=f"auth0|{n}")


def test_the_development_outbox_never_passes_its_cap(engines):
    cap = 0
    for _ in range(ROUNDS):
        cap += 4  # the cap is the table's lifetime count: raise it for each round
        sends = race(*on_both(engines, lambda engine, n: lambda: DevOutbox(
            engine.store, cap=cap).send(message(n))))
        assert unexpected(sends, DeliveryRefused) == []
        assert DevOutbox(engines[0].store, cap=cap).count() == cap
        assert len([s for s in sends if not isinstance(s, Exception)]) == 4


def test_an_idempotency_key_never_sends_twice(engines):
    body = {"recipient": "+14155550123", "code": "123456"}

    def deliver(engine, key, now):
        keys = IdempotencyKeys(engine.store)
        if keys.begin(key, body, now) is not None:
            return "replayed"
        sent = DevOutbox(engine.store).send(message(0))
        keys.finish(key, 200, {"status": "sent", "id": sent.reference}, {})
        return "sent"

    for round_ in range(ROUNDS):
        key = f"key-{round_}"
        answers = race(*on_both(engines, lambda engine, n: lambda: deliver(engine, key, 0)))
        assert unexpected(answers, Conflict) == []
        assert answers.count("sent") == 1, answers
    # A claim left by a killed request, taken over by many retries at once: by one of them.
    IdempotencyKeys(engines[0].store).begin("stale", body, 0)
    later = STALE_CLAIM_SECONDS + 1
    answers = race(*on_both(engines, lambda engine, n: lambda: deliver(engine, "stale", later)))
    assert unexpected(answers, Conflict) == [] and answers.count("sent") == 1, answers
    assert DevOutbox(engines[0].store).count() == ROUNDS + 1


class Receiver:
    """A log stream's receiver that counts the requests it is serving at once."""

    def __init__(self):
        self.lock = threading.Lock()
        self.in_flight = self.most_at_once = 0
        self.log_ids: list[str] = []
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.in_flight += 1
                    receiver.most_at_once = max(receiver.most_at_once, receiver.in_flight)
                time.sleep(0.05)  # a SIEM taking its time: room for a second worker to come
                with receiver.lock:
                    receiver.in_flight -= 1
                    receiver.log_ids += [json.loads(line)["log_id"]
                                         for line in body.decode().splitlines()]
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = LoopbackServer(Handler)
        self.url = f"{self.server.url}/ingest"


@pytest.fixture
def receiver():
    made = Receiver()
    yield made
    made.server.close()


def test_one_worker_delivers_log_streams_across_engines(engines, receiver):
    engines[0].log_streams.create({"name": "siem", "type": "http",
                                   "sink": {"httpEndpoint": receiver.url}})
    recorded = [engines[n % 2].logs.record({"type": "gd_send_sms"})["log_id"]
                for n in range(450)]  # five batches
    deadline = time.monotonic() + 60

    def work(engine):
        def loop():
            while time.monotonic() < deadline and engine.store.query_one(
                    "SELECT COUNT(*) FROM log_stream_outbox")[0]:
                engine.log_delivery.deliver_due()
        return loop

    assert unexpected(race(*on_both(engines, lambda engine, n: work(engine), 3))) == []
    assert receiver.most_at_once == 1
    assert sorted(receiver.log_ids) == sorted(recorded)  # each once: no batch sent twice


def test_one_trigger_never_has_two_hooks_enabled(apps, engines, script_for):
    headers = {"Authorization": f"Bearer {engines[0].tokens.create([])}"}
    trigger = "send-phone-message"

    def create(app, n):
        return lambda: app.test_client().post("/api/v2/hooks", headers=headers, json={
            "name": f"hook-{n}-{id(app)}", "script": script_for(trigger), "triggerId": trigger})

    # The first hooks of a trigger, created at once: the first is enabled, and only it.
    created = race(*on_both(apps, create, 4))
    assert [r.status_code for r in created] == [201] * len(created), [r.json for r in created]
    assert sum(r.json["enabled"] for r in created) == 1
    ids = [r.json["id"] for r in created]

    def enable(app, n):
        hook_id = ids[n % len(ids)]
        return lambda: app.test_client().patch(f"/api/v2/hooks/{hook_id}", headers=headers,
                                               json={"enabled": True})

    for _ in range(ROUNDS):
        answers = race(*on_both(apps, enable))
        assert [r.status_code for r in answers] == [200] * len(answers), [
            r.json for r in answers if r.status_code != 200]
        enabled = [h["id"] for h in engines[1].hooks.list(per_page=100)[1] if h["enabled"]]
        assert len(enabled) == 1


def test_log_streams_never_pass_their_cap(engines, receiver):
    body = {"name": "siem", "type": "http", "sink": {"httpEndpoint": receiver.url}}
    made = race(*on_both(engines, lambda engine, n: lambda: engine.log_streams.create(body)))
    assert unexpected(made, Conflict) == []
    assert len(engines[0].log_streams.list()) == 3  # MAX_LOG_STREAMS
    assert len([m for m in made if not isinstance(m, Exception)]) == 3


def test_a_hooks_secrets_never_pass_their_cap(engines, make_hook):
    hook = make_hook()
    limit = engines[0].secrets.max_secrets
    added = race(*on_both(engines, lambda engine, n: lambda: engine.secrets.add(
        hook["id"], {f"S{n}_{id(engine)}": "v"}), limit))
    assert unexpected(added, HookEngineError) == []
    assert len(engines[0].secrets.values(hook["id"])) == limit


def test_the_sign_in_token_is_made_once_and_a_link_signs_in_once(engines):
    links = race(*on_both(engines, lambda engine, n: engine.sessions.create_link, 4))
    assert unexpected(links) == []
    tokens = [t for t in engines[0].tokens.list() if t["description"].startswith("hookengine ui")]
    assert len(tokens) == 1
    sessions = race(*on_both(engines, lambda engine, n: lambda: engine.sessions.redeem_link(
        links[0]), 4))
    assert unexpected(sessions) == [] and len([s for s in sessions if s]) == 1


def test_concurrent_settings_changes_are_all_kept(engines):
    """PATCHes of different fields at once: each is applied to what the one before wrote."""
    race(*on_both(engines, lambda engine, n: lambda: engine.phoneconfig.update_tenant(
        {"flags": {f"flag_{n}_{id(engine)}": True}})))
    assert len(engines[0].phoneconfig.tenant()["flags"]) >= 2 * THREADS
    changes = race(*on_both(engines, lambda engine, n: lambda: engine.phoneconfig.
                            update_delivery_settings({"allowed_countries": ["US"]}
                                                     if n % 2 else {"bucket_size": 7})))
    assert unexpected(changes) == []
    settings = engines[1].phoneconfig.delivery_settings()
    assert (settings["allowed_countries"], settings["bucket_size"]) == (["US"], 7)


def test_phone_templates_are_made_once_and_keep_every_change(engines):
    made = race(*on_both(engines, lambda engine, n: lambda: engine.branding.create_template(
        {"type": "otp_verify"}), 4))
    assert unexpected(made, Conflict) == []
    [template] = [m for m in made if not isinstance(m, Exception)]
    # Each update changes one part of the body, as the one before left it.
    parts = ("text", "voice")
    race(*on_both(engines, lambda engine, n: lambda: engine.branding.update_template(
        template["id"], {"content": {"body": {parts[n % 2]: f"{{{{ code }}}} {n} {id(engine)}"}}}),
        4))
    body = engines[0].branding.get_template(template["id"])["content"]["body"]
    assert all(body[part] != template["content"]["body"][part] for part in parts), body


def test_the_delivery_lock_passes_on_when_its_holder_goes(engines, backend):
    first, second = (engine.store for engine in engines)
    with first.exclusive("log-delivery") as held:
        assert held
        with second.exclusive("log-delivery") as also:
            assert not also
        if backend == "postgresql":  # the node dies: its session ends, and the lock with it
            first.query("SELECT pg_terminate_backend(pid, 5000) FROM pg_locks WHERE "
                        "locktype = 'advisory' AND granted AND pid <> pg_backend_pid()")
            with second.exclusive("log-delivery") as taken_over:
                assert taken_over
    with second.exclusive("log-delivery") as after:
        assert after
