"""The server reading what a hook gave back: never recursion, never a 5xx (issue 10, class 5).

The child refuses results it cannot write as capped plain JSON (tests/attacks/
test_result_abuse.py); here the server side is checked on its own, as if a child had been
taken over and wrote anything at all, and then the whole engine through a real server.
"""

from __future__ import annotations

import json

import pytest

from hookengine.config import DEFAULTS
from hookengine.runner import limits_from
from hookengine.sandbox import interpret
from hookengine.sandbox.contract import MAX_ANSWER_DEPTH
from hookengine.secrets import redact
from serverprocess import ServerProcess


def test_redaction_walks_any_depth_without_recursion():
    deep = "the s3cr3t"
    for _ in range(100_000):
        deep = [{"k": deep, "s3cr3t": 1}]
    redacted = redact(deep, {"TOKEN": "s3cr3t"})
    levels = 0
    while isinstance(redacted, list):
        assert set(redacted[0]) == {"k", "[secret:TOKEN]"}
        redacted, levels = redacted[0]["k"], levels + 1
    assert (levels, redacted) == (100_000, "the [secret:TOKEN]")


def test_redaction_keeps_shapes_and_leaves_other_values_alone():
    data = {"a": ["x-s3cr3t-y", 1, None, True], "s3cr3t": {"b": 2.5}}
    assert redact(data, {"TOKEN": "s3cr3t"}) == {
        "a": ["x-[secret:TOKEN]-y", 1, None, True], "[secret:TOKEN]": {"b": 2.5}}
    assert data["a"][0] == "x-s3cr3t-y"  # a copy: the original is not changed


def answer(**fields) -> str:
    return json.dumps({"status": "success", "result": None, "logs": [], "stats": {},
                       **fields})


def nested(levels: int) -> str:
    return '{"status":"success","result":' + "[" * levels + "]" * levels + "}"


UNREADABLE = {
    "deep result": (nested(100_000), f"more than {MAX_ANSWER_DEPTH} levels deep"),
    "just too deep": (nested(MAX_ANSWER_DEPTH), "levels deep"),
    "open brackets only": ('{"status":"success","result":' + "[" * 100_000,
                           "brackets do not match"),
    "NaN": ('{"status":"success","result":NaN}', "NaN is not a JSON number"),
    "Infinity": ('{"status":"success","result":[-Infinity]}', "Infinity"),
    "overflowing float": ('{"status":"success","result":1e999}', "out of a float's range"),
    "huge integer": ('{"status":"success","result":' + "9" * 5000 + "}", "4300 digits"),
    "not JSON": ("garbage", "not valid JSON"),
    "not an object": ("[1, 2]", "not an object with the status"),
    "unknown status": (answer(status="great"), "the status of a finished run"),
    "a status a run cannot end with": (answer(status="running"), "of a finished run"),
    "bad error": (answer(status="error", error={"name": {"a": 1}}), "error is not"),
    "bad stats": (answer(stats={"cpu_ms": "lots"}), "stats are not"),
}


@pytest.mark.parametrize("case", list(UNREADABLE))
def test_an_answer_that_cannot_be_read_is_the_runs_error(case):
    text, fragment = UNREADABLE[case]
    result = interpret({"exit_code": 0, "signal": None}, text, limits_from(DEFAULTS))
    assert result.status == "error"
    assert result.error["name"] == "AnswerError"
    assert result.error["message"].startswith("the hook's answer could not be read: ")
    assert fragment in result.error["message"]


def test_an_answer_at_the_depth_limit_is_read():
    result = interpret({}, nested(MAX_ANSWER_DEPTH - 1), limits_from(DEFAULTS))
    assert result.status == "success", result.error
    value, levels = result.result, 0
    while value:
        value, levels = value[0], levels + 1
    assert levels == MAX_ANSWER_DEPTH - 2  # the innermost list is empty


def test_brackets_inside_strings_do_not_count_as_nesting():
    text = answer(result=["[" * 10_000 + '\\"{' * 1000], error=None)
    result = interpret({}, text, limits_from(DEFAULTS))
    assert result.status == "success", result.error
    assert result.result == ["[" * 10_000 + '\\"{' * 1000]


HOSTILE = '''# /// script
# [tool.hookengine]
# trigger = "send-phone-message"
# secrets = ["TOKEN"]
# ///
import statistics

class Hiding(statistics.Counter):
    def values(self):
        return []

def send_phone_message(recipient, text, context):
    print("hostile run with", context.webtask.secrets.TOKEN)
    cur = context.webtask.secrets.TOKEN
    for i in range(900):
        cur = Hiding({"k": cur})
    return cur
'''
BENIGN = '''def send_phone_message(recipient, text, context):
    return {"MessageID": "sent-" + context.code}
'''


def test_a_hostile_result_through_a_real_server_is_an_execution_error(tmp_path):
    server = ServerProcess(tmp_path / "data").start()
    try:
        created = server.call("POST", "/hooks", json={
            "name": "hostile", "script": HOSTILE, "triggerId": "send-phone-message"})
        assert created.status_code == 201, created.text
        hook = created.json()
        assert server.call("POST", f"/hooks/{hook['id']}/secrets",
                           json={"TOKEN": "tok-s3cr3t"}).status_code == 201
        assert server.call("PATCH", f"/hooks/{hook['id']}",
                           json={"enabled": True}).status_code == 200

        ran = server.call("POST", f"/hooks/{hook['id']}/run", json={})
        assert ran.status_code == 200, ran.text
        record = ran.json()
        assert record["status"] == "error"
        assert record["error"]["name"] == "ValueError"
        assert "more than 64 levels deep" in record["error"]["message"]
        assert [(line["stream"], line["message"].split(" (")[0]) for line in record["logs"]] == [
            ("stdout", "hostile run with [secret:TOKEN]"),
            ("error", "ValueError: the result nests more than 64 levels deep")]
        assert server.call("GET", f"/executions/{record['id']}").json() == record

        payload = server.call("GET", "/triggers/send-phone-message").json()["payload"]
        executed = server.call("POST", "/triggers/send-phone-message/execute", json=payload)
        assert executed.status_code == 200, executed.text
        body = executed.json()
        assert body["status"] == "error"
        assert body["data"]["name"] == "ValueError"
        assert "levels deep" in body["data"]["message"]

        # The engine is unharmed: a benign script of the same hook runs, by both paths.
        assert server.call("PATCH", f"/hooks/{hook['id']}",
                           json={"script": BENIGN}).status_code == 200
        assert server.call("POST", f"/hooks/{hook['id']}/run", json={}).json()["result"] == {
            "MessageID": "sent-999111"}
        assert server.call("POST", "/triggers/send-phone-message/execute",
                           json=payload).json()["data"] == {"MessageID": "sent-999111"}
        assert "RecursionError" not in server.log()
    finally:
        server.terminate()
