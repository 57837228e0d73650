"""CPU, memory, output, result, recursion, time and compile-time exhaustion.

Every run must end (never hang past its limits), with a status that says which limit it hit,
and leave the sandbox serving the next hook (`sandbox_survives`). Wall-clock bounds here are
deliberately generous: they catch a run that is not stopped, not a slow machine."""

import pytest

from attacklib import Listener, hook, limits_with, refused
from hookengine.sandbox.egress import EgressPolicy

FAST = limits_with(timeout_seconds=3, cpu_seconds=1, memory_mb=128)
GRACE = 3  # seconds a stopped run may take beyond its limit, at most


def test_cpu_loop_is_stopped_at_the_cpu_limit(run):
    result = run(hook("while True:\n    pass"), limits=FAST)
    assert result.status == "timeout"
    assert "CPU" in result.error["message"] or "wall-clock" in result.error["message"]
    assert result.elapsed < FAST.timeout_seconds + GRACE


def test_recursion_caught_and_retried_is_still_stopped(run):
    result = run(hook('''
def down(n):
    return down(n + 1)
while True:
    try:
        down(0)
    except Exception:  # RecursionError, which hooks see only as an Exception
        pass
'''), limits=FAST)
    assert result.status == "timeout"
    assert result.elapsed < FAST.timeout_seconds + GRACE


def test_sleep_is_stopped_at_the_wall_clock_limit(run):
    limits = limits_with(timeout_seconds=2, cpu_seconds=2, memory_mb=128)
    result = run(hook("time.sleep(100)\nreturn 'woke'", "import time"), limits=limits)
    assert result.status == "timeout"
    assert "2 s wall-clock limit" in result.error["message"]
    assert 2 <= result.elapsed < limits.timeout_seconds + GRACE


def test_a_stalled_provider_is_bounded_by_the_wall_clock(run):
    server = Listener(hold=True)
    try:
        limits = limits_with(timeout_seconds=2, cpu_seconds=2, memory_mb=128)
        egress = EgressPolicy(("api.twilio.com",), (),
                              {"api.twilio.com": f"http://127.0.0.1:{server.port}"})
        result = run(hook('''
client = Client("AC" + "0" * 32, "token")  # the SDK's default: no timeout at all
client.messages.create(to=recipient, from_="+15017122661", body=text)
''', "from twilio.rest import Client"), limits=limits, egress=egress)
        assert result.status == "timeout"
        assert len(server.received) == 1  # it did connect: the stall is the provider's
        assert result.elapsed < limits.timeout_seconds + GRACE
    finally:
        server.close()


@pytest.mark.parametrize("body", [
    "return 'a' * 10**10",
    "return [0] * 10**9",
    "return 'x'.zfill(10**10)",
    "return '{:>{}}'.format(1, 10**10)",
    "chunks = []\nwhile True:\n    chunks.append(' ' * 10**6)",
    "chunks = {}\nn = 0\nwhile True:\n    n += 1\n    chunks[n] = str(n) * 1000",
])
def test_memory_bombs_hit_the_memory_limit(run, body):
    result = run(hook(body), limits=FAST)
    if "format" in body:  # str.format is refused before it can allocate
        refused(result, "NotImplementedError")
        return
    assert result.status == "memory_limit", (result.status, result.error)
    assert "memory limit" in result.error["message"]
    assert result.elapsed < FAST.timeout_seconds + GRACE


def test_huge_integers_never_outlive_the_limits(run):
    result = run(hook("return 10**10**10 % 7"), limits=FAST)
    assert result.status in ("timeout", "memory_limit"), (result.status, result.error)
    assert result.elapsed < FAST.timeout_seconds + GRACE


def test_int_to_str_of_a_huge_integer_is_refused(run):
    refused(run(hook("return str(10**5000)"), limits=FAST), "ValueError", "digits")


def test_bounded_print_flood_is_truncated_and_the_run_ends(run):
    limits = limits_with(timeout_seconds=3, cpu_seconds=2, memory_mb=128, max_output_bytes=4096)
    result = run(hook('''
for i in range(20000):
    print("flood", i, "x" * 50)
return "finished"
'''), limits=limits)
    assert result.status == "success", result.error
    assert result.result == "finished"
    kept = sum(len(line["message"]) for line in result.logs if line["stream"] == "stdout")
    assert kept <= 4096
    assert result.logs[-1]["stream"] == "engine" and "truncated" in result.logs[-1]["message"]


def test_endless_print_flood_is_stopped(run):
    # Stopped by its CPU time: what it printed past the cap is dropped, not buffered (it
    # used to pile up in the `printed` buffer until the memory limit).
    result = run(hook("while True:\n    print('x' * 1000)"), limits=FAST)
    assert result.status == "timeout", (result.status, result.error)
    assert result.elapsed < FAST.timeout_seconds + GRACE


def test_giant_result_is_refused(run):
    result = run(hook("return 'x' * 5 * 10**6"))
    refused(result, "ValueError", "limit is 65536")


@pytest.mark.parametrize("body", [
    "value = []\nfor i in range(100000):\n    value = [value]\nreturn value",
    "value = {}\nvalue['self'] = value\nreturn value",
    "value = []\nvalue.append(value)\nreturn value",
])
def test_deeply_nested_or_self_referencing_results_are_refused(run, body):
    text = refused(run(hook(body)), "ValueError")
    assert any(reason in text for reason in ("nest", "Circular reference")), text


def test_exponential_result_structure_is_stopped(run):
    result = run(hook("value = [1]\nfor i in range(80):\n    value = [value, value]\n"
                      "return value"), limits=FAST)
    assert result.status in ("error", "timeout", "memory_limit"), result.status
    assert result.result is None
    assert result.elapsed < FAST.timeout_seconds + GRACE


def test_recursion_is_contained(run):
    result = run(hook("def down(n):\n    return down(n + 1)\nreturn down(0)"))
    refused(result, "RecursionError", "maximum recursion depth")
    assert result.error["stack"].count("hook.py") >= 2


@pytest.mark.parametrize("source, fragment", [
    ("x = " + "+".join(["1"] * 60000) + "\n", "the limit is 102400"),
    ("x = " + "+".join(["1"] * 2000) + "\n", "nest"),
    ("x = " + "[" * 150 + "]" * 150 + "\n", "nest"),
    ("x = " + "(" * 1000 + ")" * 1000 + "\n", "SyntaxError"),
    ("x = " + "-" * 20000 + "1\n", "nest"),
])
def test_compile_time_bombs_are_compile_errors(run, source, fragment):
    result = run(source + "def send_phone_message(recipient, text, context):\n    return 1\n")
    refused(result, "CompileError", fragment)
    assert result.elapsed < GRACE
