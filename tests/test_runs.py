"""The Run button: test runs of saved hooks and drafts, payload checks, execution records."""

from __future__ import annotations

import json
import threading

import pytest

from hookengine.executions import listing_sql

# The store's own behaviour: the same on SQLite and on PostgreSQL.
pytestmark = pytest.mark.backends

PHONE = "send-phone-message"

HELLO = '''
# /// script
# [tool.hookengine]
# trigger = "send-phone-message"
# secrets = ["API_KEY"]
# ///
def send_phone_message(recipient, text, context):
    print("sending to", recipient, "with", context.webtask.secrets.API_KEY)
    return {"MessageID": "m-" + context.code, "key": context.webtask.secrets.API_KEY}
'''


@pytest.fixture
def hook(make_hook, client, auth):
    """A saved send-phone-message hook with its secret set."""
    hook = make_hook(name="hello", script=HELLO)
    response = client.post(f"/api/v2/hooks/{hook['id']}/secrets", json={"API_KEY": "k-123"},
                           headers=auth("update:hooks"))
    assert response.status_code == 201
    return hook


DRAFT_SCOPES = ("execute:hooks", "update:hooks")


def run(client, auth, hook_id, body, scopes=("execute:hooks",)):
    return client.post(f"/api/v2/hooks/{hook_id}/run", json=body, headers=auth(*scopes))


def test_run_returns_the_execution_record(client, auth, hook, sample_payload):
    response = run(client, auth, hook["id"], {"payload": sample_payload(PHONE)})
    assert response.status_code == 200
    record = response.json
    assert record["status"] == "success"
    assert record["result"] == {"MessageID": "m-999111", "key": "[secret:API_KEY]"}
    assert record["source"] == "test" and record["trigger_id"] == PHONE
    assert record["hook_id"] == hook["id"] and record["error"] is None
    [line] = record["logs"]
    assert line["stream"] == "stdout" and line["time"].endswith("Z")
    assert line["message"] == "sending to +15558675310 with [secret:API_KEY]"
    assert set(record["stats"]) >= {"total_duration_ms", "boot_duration_ms", "hook_duration_ms"}
    assert record["started_at"] <= record["ended_at"]
    stored = client.get(f"/api/v2/executions/{record['id']}", headers=auth("read:hooks")).json
    assert stored == record


def test_run_without_payload_uses_the_trigger_sample(client, auth, hook):
    record = run(client, auth, hook["id"], {}).json
    assert record["status"] == "success"
    assert record["payload"]["recipient"] == "+15558675310"


def test_draft_runs_without_overwriting_the_saved_script(client, auth, hook,
                                                         engine):
    draft = HELLO.replace('"m-" + context.code', '"draft"')
    record = run(client, auth, hook["id"], {"script": draft}, DRAFT_SCOPES).json
    assert record["status"] == "success" and record["result"]["MessageID"] == "draft"
    assert engine.hooks.get(hook["id"])["script"] == HELLO
    record = run(client, auth, hook["id"], {}).json
    assert record["result"]["MessageID"] == "m-999111"


def test_draft_that_does_not_compile_is_a_failed_run_with_its_lines(client, auth, hook,
                                                                     engine):
    """Compiled once, in the zygote: the problems are the run's error and its log."""
    response = run(client, auth, hook["id"], {"script": "def send_phone_message(r, t, c):\n"
                                                        "    return r.__class__\n"},
                   DRAFT_SCOPES)
    record = response.json
    assert response.status_code == 200 and record["status"] == "error"
    assert record["error"]["name"] == "CompileError" and "Line 2" in record["error"]["message"]
    assert record["logs"][-1]["stream"] == "error" and "Line 2" in record["logs"][-1]["message"]
    assert engine.hooks.get(hook["id"])["script"] == hook["script"]


@pytest.mark.parametrize("payload, problem", [
    ({"recipient": 5, "text": "t", "context": {}}, "payload.recipient must be a string"),
    ({"recipient": "+1", "text": "t", "context": {"message_type": "fax"}},
     "payload.context.message_type must be one of sms, voice"),
    ({"recipient": "+1", "text": "t", "context": {"action": "login"}},
     "payload.context.action must be one of enrollment, second-factor-authentication"),
    ({"recipient": "+1", "text": "t"}, "payload.context must be an object"),
    ({"recipient": "+1", "text": "t", "context": {}, "extra": 1},
     "payload.extra is not a parameter"),
])
def test_bad_payload_is_refused_before_running(client, auth, hook, payload, problem, engine):
    response = run(client, auth, hook["id"], {"payload": payload})
    assert response.status_code == 400
    assert problem in response.json["message"]
    assert engine.executions.list({"hook_id": hook["id"]}, 0, 10)[0] == 0


def test_a_draft_needs_update_scope_too(client, auth, hook):
    """An execute-only token (the identity platform's) cannot run code of its choosing
    with the hook's secrets, which would read them out past the redaction."""
    draft = ("def send_phone_message(recipient, text, context):\n"
             "    return context.webtask.secrets.API_KEY[::-1]\n")
    response = run(client, auth, hook["id"], {"script": draft})
    assert response.status_code == 403
    assert response.json["message"].startswith(
        "Insufficient scope; expected any of: update:hooks.")
    assert run(client, auth, hook["id"], {"script": draft}, DRAFT_SCOPES).status_code == 200


def test_dependencies_without_a_draft_are_refused(client, auth, hook):
    response = run(client, auth, hook["id"], {"dependencies": {"twilio": "latest"}},
                   DRAFT_SCOPES)
    assert response.status_code == 400 and "draft" in response.json["message"]


@pytest.mark.parametrize("body, status", [
    ({"payload": "text"}, 400), ({"script": 5}, 400), ({"unknown": 1}, 400),
    ({"dependencies": {"twilio": 9}}, 400),
])
def test_bad_run_body_is_refused(client, auth, hook, body, status):
    assert run(client, auth, hook["id"], body, DRAFT_SCOPES).status_code == status


def test_unknown_hook_is_404(client, auth):
    response = run(client, auth, "01NOPE", {})
    assert response.status_code == 404
    assert response.json["message"] == "Hook not found."


def test_run_needs_the_execute_scope(client, auth, hook):
    response = run(client, auth, hook["id"], {}, ("read:hooks",))
    assert response.status_code == 403
    assert response.json["message"] == "Insufficient scope; expected any of: execute:hooks."


def test_missing_secret_fails_before_the_hook_starts(client, auth, make_hook, engine):
    hook = make_hook(name="needs-secret", script=HELLO)
    response = run(client, auth, hook["id"], {})
    assert response.status_code == 400
    assert "API_KEY" in response.json["message"]
    assert engine.executions.list({"hook_id": hook["id"]}, 0, 10)[0] == 0


@pytest.mark.parametrize("body, status, name", [
    ("raise SendPhoneMessageError('provider said no', 'Try later')", "error",
     "SendPhoneMessageError"),
    ("return {1, 2}", "error", "TypeError"),
    ("return float('nan')", "error", "ValueError"),
    ("x = 'a' * (10 ** 10)", "memory_limit", "MemoryError"),
    ("while True:\n        pass", "timeout", "TimeoutError"),
])
def test_failures_are_200_with_status_and_error(client, auth, make_hook, body,
                                                 status, name):
    hook = make_hook(script=f"def send_phone_message(recipient, text, context):\n    {body}\n")
    response = run(client, auth, hook["id"], {})
    assert response.status_code == 200
    assert response.json["status"] == status
    assert response.json["error"]["name"] == name


def test_error_stack_shows_only_the_hooks_lines(client, auth, make_hook):
    script = ("def helper(code):\n    raise SendPhoneMessageError('bad ' + code)\n\n"
              "def send_phone_message(recipient, text, context):\n    helper(context.code)\n")
    error = run(client, auth, make_hook(script=script)["id"], {}).json["error"]
    assert error["message"] == "bad 999111"
    assert "hook.py:5" in error["stack"] and "hook.py:2" in error["stack"]
    assert "site-packages" not in error["stack"] and "hookengine" not in error["stack"]


def test_hook_printing_its_secret_is_redacted_everywhere(client, auth, hook,
                                                        engine):
    payload = {"recipient": "+15550000000", "text": "k-123 is the key",
               "context": {"message_type": "sms", "action": "enrollment", "language": "en",
                           "code": "1", "ip": "1.2.3.4", "user_agent": "x", "user": {}}}
    record = run(client, auth, hook["id"], {"payload": payload}).json
    raw = json.dumps(record)
    assert "k-123" not in raw and "[secret:API_KEY]" in raw
    stored = [[tuple(row) for row in engine.store.query(sql)]
              for sql in ("SELECT payload, result FROM executions",
                          "SELECT message, request FROM log_lines")]
    assert "k-123" not in json.dumps(stored)


def test_a_one_letter_secret_never_renames_a_line_field(client, auth, make_hook):
    """Lines and errors are the engine's shapes: only what the hook wrote is redacted."""
    hook = make_hook(script="def send_phone_message(recipient, text, context):\n"
                            "    print('it is', context.webtask.secrets.S)\n"
                            "    raise ValueError('stop ' + context.webtask.secrets.S)\n")
    client.post(f"/api/v2/hooks/{hook['id']}/secrets", json={"S": "t"},
                headers=auth("update:hooks"))
    record = run(client, auth, hook["id"], {}).json
    assert [(line["stream"], line["message"]) for line in record["logs"]][0] == (
        "stdout", "i[secret:S] is [secret:S]")
    assert set(record["logs"][0]) == {"time", "stream", "message"}
    assert set(record["error"]) == {"name", "message", "stack"}
    assert record["error"]["message"] == "s[secret:S]op [secret:S]"


def test_executions_are_listed_newest_first_with_totals(client, auth, hook):
    ids = [run(client, auth, hook["id"], {}).json["id"] for _ in range(3)]
    headers = auth("read:hooks")
    listed = client.get(f"/api/v2/hooks/{hook['id']}/executions", headers=headers).json
    assert [e["id"] for e in listed] == ids[::-1]
    page = client.get(f"/api/v2/hooks/{hook['id']}/executions?include_totals=true&per_page=2"
                      "&page=1", headers=headers).json
    assert page["total"] == 3 and page["start"] == 2 and page["limit"] == 2
    assert [e["id"] for e in page["executions"]] == ids[:1]


def test_unknown_execution_is_404(client, auth):
    response = client.get("/api/v2/executions/01NOPE", headers=auth("read:hooks"))
    assert response.status_code == 404
    assert response.json["errorCode"] == "inexistent_execution"


def test_hook_logs_across_executions_newest_first(client, auth, hook):
    first = run(client, auth, hook["id"], {}).json["id"]
    second = run(client, auth, hook["id"], {}).json["id"]
    logs = client.get(f"/api/v2/hooks/{hook['id']}/logs", headers=auth("read:hooks")).json
    assert [line["execution_id"] for line in logs["logs"]] == [second, first]
    assert {"execution_id", "time", "stream", "message"} <= set(logs["logs"][0])


def test_print_flood_is_capped_with_a_visible_marker(client, auth, make_hook):
    script = ("def send_phone_message(recipient, text, context):\n"
              "    for i in range(100000):\n        print('line', i)\n    return 'done'\n")
    record = run(client, auth, make_hook(script=script)["id"], {}).json
    assert record["status"] == "success"
    assert record["logs"][-1]["stream"] == "engine"
    assert "output truncated" in record["logs"][-1]["message"]
    assert sum(len(line["message"]) for line in record["logs"]) < 70_000


@pytest.fixture
def app_settings(app_settings):
    # Room for every concurrent run these tests make at once (MAX_RUNS is 12 by default).
    return {**app_settings, "MAX_RUNS": 32}


def test_sixteen_concurrent_runs_do_not_cross_talk(client, auth, make_hook):
    """Each hook prints and returns its own secret; no run sees another's."""
    script = ('# /// script\n# [tool.hookengine]\n# secrets = ["MINE"]\n# ///\n'
              "def send_phone_message(recipient, text, context):\n"
              "    print('me', context.webtask.secrets.MINE)\n"
              "    return {'mine': context.webtask.secrets.MINE}\n")
    hooks = []
    for n in range(16):
        hook = make_hook(name=f"tenant-{n}", script=script)
        client.post(f"/api/v2/hooks/{hook['id']}/secrets", json={"MINE": f"value-{n}-x"},
                    headers=auth("update:hooks"))
        hooks.append(hook)
    headers = auth("execute:hooks")
    results: dict[int, dict] = {}

    def go(n):
        results[n] = client.post(f"/api/v2/hooks/{hooks[n]['id']}/run", json={},
                                 headers=headers).json

    threads = [threading.Thread(target=go, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for n, record in results.items():
        assert record["status"] == "success", record["error"]
        assert record["hook_id"] == hooks[n]["id"]
        # Redacted with its own secret's name, so the value was this hook's and no other's.
        assert record["result"] == {"mine": "[secret:MINE]"}
        assert [line["message"] for line in record["logs"]] == ["me [secret:MINE]"]
        assert all(f"value-{m}-x" not in json.dumps(record) for m in range(16))


def test_the_zygote_survives_many_back_to_back_runs(client, auth, hook, engine):
    """A reply and the client's close landing in one zygote poll once stopped the zygote."""
    zygote = engine.sandboxes.for_dependencies({}).process.pid
    statuses = {run(client, auth, hook["id"], {}).json["status"] for _ in range(60)}
    assert statuses == {"success"}
    assert engine.sandboxes.for_dependencies({}).process.pid == zygote and engine.sandboxes.for_dependencies({}).process.poll() is None


def test_strptime_works_in_hooks(client, auth, make_hook):
    """time/datetime.strptime import _strptime from C on first use (twilio's Verify needs it)."""
    script = ("import time\nimport datetime\n"
              "def send_phone_message(recipient, text, context):\n"
              "    when = datetime.datetime.strptime('2026-11-23', '%Y-%m-%d')\n"
              "    return [when.year, time.strptime('12', '%H').tm_hour]\n")
    record = run(client, auth, make_hook(script=script)["id"], {}).json
    assert record["status"] == "success", record["error"]
    assert record["result"] == [2026, 12]


def query_plan(store, sql: str, args) -> str:
    """The plan the store's database picks for `sql`, as one text. PostgreSQL's planner
    weighs statistics, brought up to date first, and reading the whole table is priced out:
    what is checked is that an index serves the query, not which plan wins at this size."""
    if store.backend == "sqlite":
        return " ".join(row[3] for row in store.query(f"EXPLAIN QUERY PLAN {sql}", args))
    store.connection().execute("VACUUM ANALYZE executions")
    with store.transaction() as db:
        db.execute("SET LOCAL enable_seqscan = off")
        return " ".join(row[0] for row in db.execute(f"EXPLAIN {sql}", args).fetchall())


def uses_index(store, plan: str, index: str) -> bool:
    """Whether `plan` reads through `index` (or one whose name starts so), not a table scan."""
    if store.backend == "sqlite":
        return "USING" in plan and f"INDEX {index}" in plan
    return f" {index}" in plan and "Seq Scan" not in plan


def test_execution_listing_uses_indexes_with_many_records(client, auth, hook, engine):
    """60,000 records, a sixth of them the hook's: pages come from the (hook_id, id) index,
    never a table scan. (With half the table one hook's, PostgreSQL rightly pages it through
    the primary key.)"""
    with engine.store.transaction() as db:
        db.executemany(
            "INSERT INTO executions (id, hook_id, trigger_id, source, status, started_at) "
            "VALUES (?, ?, 'send-phone-message', 'test', 'success', '2026-11-23T00:00:00Z')",
            [(f"01H{n:023d}", hook["id"] if n % 6 == 1 else "other") for n in range(60_000)])
    count_sql, list_sql, values = listing_sql({"hook_id": hook["id"], "status": None})
    plans = [query_plan(engine.store, sql, args)
             for sql, args in ((list_sql, (*values, 50, 9000)), (count_sql, values))]
    assert all(uses_index(engine.store, plan, "executions_hook") for plan in plans), plans
    count_sql, list_sql, values = listing_sql({"status": "error"})
    plan = query_plan(engine.store, list_sql, (*values, 50, 0))
    assert uses_index(engine.store, plan, "executions_status"), plan
    page = client.get(f"/api/v2/hooks/{hook['id']}/executions?include_totals=true&page=99"
                      "&per_page=100", headers=auth("read:hooks")).json
    assert page["total"] == 10_000 and len(page["executions"]) == 100


def test_an_engine_fault_mid_run_closes_the_record(app, client, auth, hook, engine,
                                                   monkeypatch):
    def broken(job, on_lines=None):
        raise RuntimeError("zygote exploded")

    monkeypatch.setattr(engine.sandboxes.for_dependencies({}), "execute", broken)
    response = run(client, auth, hook["id"], {})
    assert response.status_code == 500
    assert "zygote exploded" not in response.json["message"]  # no internals in the body
    [record] = engine.executions.list({"hook_id": hook["id"]}, 0, 10)[1]
    assert record["status"] == "killed" and record["error"]["name"] == "EngineError"


def test_a_run_whose_record_cannot_be_saved_still_answers(client, auth, hook, engine,
                                                          monkeypatch):
    """Once the hook ran (an SMS may be out), a full disk must not turn into a retryable 503."""
    def full(record, lines):
        raise engine.store.unavailable[0]("database or disk is full")

    monkeypatch.setattr(engine.executions, "finish", full)
    response = run(client, auth, hook["id"], {})
    assert response.status_code == 200
    assert response.json["status"] == "success"


def test_executions_are_filtered_and_listed_across_hooks(client, auth, hook, make_hook):
    headers = auth("read:hooks")
    other = make_hook(script="def send_phone_message(recipient, text, context):\n"
                             "    raise ValueError('no')\n")
    ok = run(client, auth, hook["id"], {}).json
    failed = run(client, auth, other["id"], {}).json
    assert (ok["status"], failed["status"]) == ("success", "error")

    every = client.get("/api/v2/executions?include_totals=true", headers=headers).json
    assert every["total"] == 2 and [e["id"] for e in every["executions"]] == [failed["id"],
                                                                             ok["id"]]
    errors = client.get("/api/v2/executions?status=error", headers=headers).json
    assert [e["id"] for e in errors] == [failed["id"]]
    assert errors[0]["logs"][-1]["stream"] == "error"
    mine = client.get(f"/api/v2/hooks/{hook['id']}/executions?status=error",
                      headers=headers).json
    assert mine == []
    assert client.get("/api/v2/executions?source=trigger", headers=headers).json == []
    window = f"from={ok['started_at']}&to={failed['started_at']}"
    assert [e["id"] for e in client.get(f"/api/v2/executions?{window}",
                                        headers=headers).json] == [ok["id"]]
    later = client.get("/api/v2/executions?from=2999-01-01T00:00:00%2B02:00",
                       headers=headers).json
    assert later == []


@pytest.mark.parametrize("query, named", [
    ("status=great", "status"), ("source=cron", "source"), ("from=yesterday", "from"),
    ("to=2026-13-01", "to"), ("per_page=0", "per_page"),
])
def test_bad_execution_filters_are_refused_by_name(client, auth, query, named):
    response = client.get(f"/api/v2/executions?{query}", headers=auth("read:hooks"))
    assert response.status_code == 400 and named in response.json["message"]


def test_a_busy_store_mid_run_holds_the_lines_for_the_outcome(client, auth, make_hook, engine,
                                                              monkeypatch):
    """Writing live lines can meet a locked database: the run goes on, nothing is lost."""
    attempts = []

    def busy(record, lines):
        attempts.append(lines)
        raise engine.store.unavailable[0]("database is locked")

    monkeypatch.setattr(engine.executions, "add_lines", busy)
    hook = make_hook(script="import time\n"
                            "def send_phone_message(recipient, text, context):\n"
                            "    print('one')\n"
                            "    time.sleep(0.5)\n"
                            "    print('two')\n")
    record = run(client, auth, hook["id"], {}).json
    assert record["status"] == "success" and attempts  # the first line was tried on its own
    stored = engine.executions.get(record["id"])
    assert [line["message"] for line in stored["logs"]] == ["one", "two"]


@pytest.mark.parametrize("header", ["9" * 5000, "-1", "", "yesterday", str(2**63)])
def test_a_last_event_id_that_is_not_a_position_is_a_400(client, auth, hook, header):
    """Read by the `after` parameter's own rule (5,000 digits was a 500)."""
    response = client.get(f"/api/v2/hooks/{hook['id']}/logs?follow=true",
                          headers={**auth("read:hooks"), "Last-Event-ID": header})
    assert response.status_code == 400
    assert "Header Last-Event-ID must be" in response.json["message"]


def test_a_time_filter_must_look_like_a_time(client, auth):
    """Python's ISO parser alone took 5,000 digits for 1111-11-11T11:11:11."""
    response = client.get("/api/v2/executions?to=" + "1" * 5000, headers=auth("read:hooks"))
    assert response.status_code == 400 and "ISO 8601" in response.json["message"]
