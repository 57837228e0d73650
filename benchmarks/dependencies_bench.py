"""Hooks' own dependencies: what a first run costs (the install, then a cold zygote) and what
a warm run in an environment costs against a hook on the engine's own packages.

The packages come from a local index of tiny wheels (tests/packageindex.py), so the figures
measure the engine and uv, not a network.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import requests

from benchmarks.common import paced_samples, record
from benchmarks.http_bench import Server
from benchmarks.on_off import cost, on_off_rounds
from packageindex import build, wheel

BLOCK = ("# /// script\n# dependencies = [{requirement!r}]\n# [tool.hookengine]\n"
         "# trigger = \"send-phone-message\"\n# ///\n")
ENVIRONMENT_HOOK = BLOCK + ("import hookdemo\n\ndef send_phone_message(recipient, text, context):\n"
                            "    print('hookdemo', hookdemo.VERSION)\n"
                            "    return {{\"MessageID\": hookdemo.VERSION}}\n")
BUILT_IN_HOOK = BLOCK + ("import requests\n\ndef send_phone_message(recipient, text, context):\n"
                         "    print('requests', requests.codes.ok)\n"
                         "    return {{\"MessageID\": str(requests.codes.ok)}}\n")


def run(rounds: int = 3) -> None:
    index = Path(tempfile.mkdtemp(prefix="hookengine-bench-index-"))
    build(index)
    for n in range(rounds):
        wheel(index, "hookdemo", f"1.1.{n}")
    print("dependencies: starting `hookengine serve` on a local index", flush=True)
    server = Server({"INDEX_URL": "none", "FIND_LINKS": str(index),
                     "ALLOWED_PACKAGES": "twilio,vonage,requests,hookdemo", "MAX_ZYGOTES": "1"})
    session = requests.Session()
    session.headers.update(server.headers)

    def create(name: str, source: str) -> str:
        response = session.post(f"{server.url}/hooks", json={
            "name": name, "script": source, "triggerId": "send-phone-message",
            "enabled": False})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def run_once(hook_id: str) -> None:
        answer = session.post(f"{server.url}/hooks/{hook_id}/run", json={}).json()
        assert answer["status"] == "success", answer

    try:
        first = []
        for n in range(rounds):  # a version no environment has yet: resolve, install, start
            started = time.perf_counter()
            hook_id = create(f"first-{n}", ENVIRONMENT_HOOK.format(
                requirement=f"hookdemo==1.1.{n}"))
            run_once(hook_id)
            first.append((time.perf_counter() - started) * 1000)
        hooks = {"on": create("env", ENVIRONMENT_HOOK.format(requirement="hookdemo==1.0.0")),
                 "other": create("env2", ENVIRONMENT_HOOK.format(requirement="hookdemo==2.0.0")),
                 "off": create("built-in", BUILT_IN_HOOK.format(requirement="requests"))}
        for hook_id in hooks.values():
            run_once(hook_id)
        built_in = statistics.median(paced_samples(lambda: run_once(hooks["off"]), 0.02, 20))
        record("first run after saving a hook with a new dependency, install included (ms)",
               f"{statistics.median(first):.0f}", f"a warm built-in run {built_in:.1f} ms",
               "resolve + install with uv from a local index, then a new zygote")
        # One environment zygote at a time (MAX_ZYGOTES=1): alternating two environments
        # makes every run start its environment's zygote.
        cold = []
        for _ in range(rounds * 3):
            for name in ("on", "other"):
                started = time.perf_counter()
                run_once(hooks[name])
                cold.append((time.perf_counter() - started) * 1000)
        record("first run of an installed environment whose zygote is stopped (median ms)",
               f"{statistics.median(cold):.0f}", f"a warm built-in run {built_in:.1f} ms",
               "the environment's zygote starts")
        for name in ("on", "on"):
            run_once(hooks[name])
        warm_env, warm_built_in = on_off_rounds(
            lambda name: paced_samples(lambda: run_once(hooks[name]), 0.02, 10), rounds, 2,
            statistics.median)
        record("warm run of a hook in its environment, one every 20 ms (median ms)",
               f"{warm_env:.2f}", f"hook on the engine's own requests {warm_built_in:.2f} ms",
               cost(warm_env / warm_built_in))
    finally:
        server.stop()
