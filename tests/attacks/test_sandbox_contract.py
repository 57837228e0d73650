"""The hook contract (DESIGN §2) as the sandbox delivers it: arguments, context, logs, errors,
results, imports and timings. The attack modules beside this one rely on all of it."""

import re

import pytest

from attacklib import RECIPIENT, SMALL, limits_with, refused

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_entry_function_gets_the_triggers_arguments(run):
    result = run('''
def send_phone_message(recipient, text, context):
    return [recipient, text, context.code, context.message_type]
''')
    assert result.status == "success", result.error
    assert result.result == [RECIPIENT, "Your code is 123456", "123456", "sms"]


def test_other_triggers_get_their_own_entry_and_a_writable_user(run):
    result = run('''
def pre_user_registration(user, context):
    user["app_metadata"] = {"plan": "free"}
    return {"user": {"user_metadata": {"seen": user.email}, "app_metadata": user.app_metadata}}
''', entry="pre_user_registration", params=["user", "context"],
        args=[{"email": "a@example.com"}, {"connection": "db"}])
    assert result.status == "success", result.error
    assert result.result == {"user": {"user_metadata": {"seen": "a@example.com"},
                                      "app_metadata": {"plan": "free"}}}


def test_secrets_by_attribute_and_by_item(run):
    result = run('''
def send_phone_message(recipient, text, context):
    return [context.webtask.secrets.TOKEN, context["webtask"]["secrets"]["TOKEN"],
            sorted(context.webtask.secrets.keys())]
''', secrets={"TOKEN": "tok-1", "OTHER": "o"})
    assert result.status == "success", result.error
    assert result.result == ["tok-1", "tok-1", ["OTHER", "TOKEN"]]


@pytest.mark.parametrize("mutation", [
    'context["code"] = "000000"',
    'context.code = "000000"',
    'context.webtask.secrets["TOKEN"] = "stolen"',
    'context.webtask.secrets.TOKEN = "stolen"',
    'del context["code"]',
    'context.update({"code": "000000"})',
    'context.webtask.secrets.pop("TOKEN")',
    'context.webtask.secrets.clear()',
    'context.setdefault("extra", 1)',
    'setattr(context, "code", "000000")',
])
def test_context_is_read_only(run, mutation):
    result = run(f'''
def send_phone_message(recipient, text, context):
    try:
        {mutation}
    except TypeError as error:
        return ["refused", str(error), context.code, context.webtask.secrets.TOKEN]
    return ["mutated"]
''')
    assert result.status == "success", result.error
    assert result.result[0] == "refused"
    assert result.result[2:] == ["123456", "s3cr3t-value"]


def test_print_lines_are_captured_in_order_with_iso_timestamps(run):
    result = run('''
def send_phone_message(recipient, text, context):
    print("one")
    print("two", 2, sep="-")
    helper()
    return None

def helper():
    print("three")
''')
    assert result.status == "success", result.error
    assert [line["message"] for line in result.logs] == ["one", "two-2", "three"]
    assert {line["stream"] for line in result.logs} == {"stdout"}
    times = [line["time"] for line in result.logs]
    assert all(ISO_MS.match(t) for t in times), times
    assert times == sorted(times)


def test_output_over_the_cap_is_cut_with_a_visible_marker(run):
    result = run('''
def send_phone_message(recipient, text, context):
    for i in range(100):
        print("line %03d %s" % (i, "x" * 20))
    return "done"
''', limits=limits_with(timeout_seconds=3, cpu_seconds=2, memory_mb=128, max_output_bytes=300))
    assert result.status == "success", result.error
    assert result.result == "done"
    kept = [line for line in result.logs if line["stream"] == "stdout"]
    assert 0 < len(kept) < 100
    assert kept[0]["message"].startswith("line 000")
    marker = result.logs[-1]
    assert marker["stream"] == "engine"
    assert "truncated" in marker["message"] and "300" in marker["message"]


STACK_CASES = {
    "raised by the hook": '''
def send_phone_message(recipient, text, context):
    check(recipient)

def check(number):
    raise SendPhoneMessageError("m", "friendly")
''',
    "raised inside an SDK": '''
import requests

def send_phone_message(recipient, text, context):
    return prepare()

def prepare():
    return requests.Request("GET", "no-scheme").prepare()
''',
}


@pytest.mark.parametrize("case", sorted(STACK_CASES))
def test_errors_carry_only_the_hooks_own_stack(run, case):
    result = run(STACK_CASES[case])
    assert result.status == "error"
    error = result.error
    stack = error["stack"]
    assert "hook.py:" in stack
    assert "/site-packages/" not in stack and "hookengine" not in stack
    assert re.findall(r"\(([^():]+):\d+\)", stack) == ["hook.py", "hook.py"], stack
    if case == "raised by the hook":
        assert error["name"] == "SendPhoneMessageError"
        assert error["message"] == "m"
        assert error["friendly_message"] == "friendly"
        assert "raise SendPhoneMessageError" in stack
    else:
        assert error["name"] == "MissingSchema"
        assert "no-scheme" in error["message"]


@pytest.mark.parametrize("value, kind", [
    ("{1, 2}", "set"),
    ("datetime.datetime(2026, 1, 1)", "datetime"),
    ("Thing()", "Thing"),
    ("b'bytes'", "bytes"),
    ("{'nested': [Thing()]}", "Thing"),
])
def test_results_must_be_json_data(run, value, kind):
    result = run(f'''
import datetime

class Thing:
    pass

def send_phone_message(recipient, text, context):
    return {value}
''')
    refused(result, "TypeError", kind, "not JSON")


@pytest.mark.parametrize("value", ['float("nan")', 'float("inf")', '[1, -float("inf")]'])
def test_nan_and_infinity_are_refused(run, value):
    refused(run(f"def send_phone_message(recipient, text, context):\n    return {value}\n"),
            "ValueError", "JSON")


def test_result_over_the_limit_is_refused(run):
    result = run('''
def send_phone_message(recipient, text, context):
    return "x" * 5000
''', limits=limits_with(timeout_seconds=3, cpu_seconds=2, memory_mb=128, max_result_bytes=1000))
    refused(result, "ValueError", "limit is 1000")
    assert result.result is None


@pytest.mark.parametrize("source, fragment", [
    ("def send_phone_message(recipient, text, context)\n    return 1\n", "SyntaxError"),
    ("def send_phone_message(recipient, text, context):\n    return context.__class__\n",
     "__class__"),
    ("def send_phone_message(recipient, text, context):\n    return eval('1')\n", "Eval"),
])
def test_scripts_that_do_not_compile_give_compile_error(run, source, fragment):
    result = run(source)
    refused(result, "CompileError", "Line", fragment)


@pytest.mark.parametrize("source", [
    "def some_other_function(recipient, text, context):\n    return 1\n",
    "send_phone_message = 3\n",
    "",
])
def test_missing_entry_function_is_an_error(run, source):
    refused(run(source), "send_phone_message")


def test_allowed_standard_library_modules_work(run):
    result = run('''
import base64
import datetime
import hashlib
import hmac
import json
import math
import re
import urllib.parse
from urllib.parse import quote

def send_phone_message(recipient, text, context):
    digest = hmac.new(b"key", text.encode(), hashlib.sha256).hexdigest()
    return {
        "json": json.loads(json.dumps({"a": [1]})),
        "re": re.sub("[^0-9]", "", recipient),
        "date": datetime.date(2026, 1, 2).isoformat(),
        "sha": hashlib.sha256(b"x").hexdigest()[:8],
        "hmac": len(digest),
        "b64": base64.b64encode(b"hi").decode(),
        "url": urllib.parse.urlencode({"to": recipient}) + "&" + quote("a b"),
        "math": math.floor(2.5),
    }
''')
    assert result.status == "success", result.error
    assert result.result == {
        "json": {"a": [1]}, "re": "15551234567", "date": "2026-01-02", "sha": "2d711642",
        "hmac": 64, "b64": "aGk=", "url": "to=%2B15551234567&a%20b", "math": 2}


@pytest.mark.parametrize("statement, module, reason", [
    ("import os", "os", "harmless standard-library modules"),
    ("import subprocess", "subprocess", "harmless standard-library modules"),
    ("from importlib import import_module", "importlib", "harmless standard-library"),
    ("import flask", "flask", "not provided by a dependency the hook declares"),
    ("import vonage", "vonage", "not provided by a dependency the hook declares"),
])
def test_other_imports_fail_with_an_import_error_naming_the_module(run, statement, module,
                                                                    reason):
    result = run(f"{statement}\ndef send_phone_message(recipient, text, context):\n"
                 "    return 1\n", dependencies={"twilio": "latest"})
    refused(result, "ImportError", repr(module), reason)


def test_a_twilio_hook_builds_a_client(run):
    result = run('''
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

def send_phone_message(recipient, text, context):
    client = Client("AC" + "0" * 32, context.webtask.secrets.TOKEN,
                    http_client=TwilioHttpClient(timeout=5))
    return [client.account_sid, client.password == context.webtask.secrets.TOKEN]
''')
    assert result.status == "success", result.error
    assert result.result == ["AC" + "0" * 32, True]


def test_timings_are_reported(run):
    result = run('''
import time

def send_phone_message(recipient, text, context):
    time.sleep(0.05)
    return 1
''')
    assert result.status == "success", result.error
    stats = result.stats
    assert 0 <= stats["boot_duration_ms"]
    assert stats["hook_duration_ms"] >= 50
    assert stats["boot_duration_ms"] + stats["hook_duration_ms"] < SMALL.timeout_seconds * 1000


def test_large_trigger_data_reaches_the_hook_intact(run):
    # Arguments and secrets travel in their own frame, spliced to the child by the kernel.
    big = "x" * 1_500_000
    result = run('''
def send_phone_message(recipient, text, context):
    return [len(text), text[:3], len(context.webtask.secrets.BIG), context.code]
''', args=[RECIPIENT, big, {"code": "123456"}], secrets={"BIG": "s" * 300_000},
        limits=limits_with(timeout_seconds=3, cpu_seconds=2, memory_mb=256))
    assert result.status == "success", result.error
    assert result.result == [1_500_000, "xxx", 300_000, "123456"]


def test_compile_error_is_reported_even_with_large_trigger_data(run):
    result = run("def send_phone_message(:\n", args=[RECIPIENT, "y" * 3_000_000, {}])
    refused(result, "CompileError", "SyntaxError")
