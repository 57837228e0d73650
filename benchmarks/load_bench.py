"""Under load: benign latency with and without abusive neighbours; memory over many runs."""

from __future__ import annotations

import statistics
import threading
import time

import requests

from benchmarks.common import percentile, record, rss_kb
from benchmarks.http_bench import SCRIPT, Server

BLOCK = "# /// script\n# [tool.hookengine]\n# trigger = \"send-phone-message\"\n# ///\n"
ABUSE = {
    "cpu-loop": "while True:\n        pass",
    "memory-bomb": "chunks = []\n    while True:\n        chunks.append('x' * 10000000)",
    "sleep": "import time\n    time.sleep(60)",
    "print-flood": "while True:\n        print('flood' * 100)",
    "fork-attempt": "import os\n    os.fork()",
}


def hook_script(body: str) -> str:
    return BLOCK + f"def send_phone_message(recipient, text, context):\n    {body}\n"


def create_hook(session, server: Server, name: str, script: str) -> str:
    response = session.post(f"{server.url}/hooks", json={
        "name": name, "script": script, "triggerId": "send-phone-message", "enabled": False})
    response.raise_for_status()
    return response.json()["id"]


def clients(server: Server, hook_ids: list[str], seconds: float, latencies: list | None,
            outcomes: list) -> list[threading.Thread]:
    """One thread per hook id, each running its hook in a loop for `seconds`."""
    stop_at = time.monotonic() + seconds

    def loop(hook_id):
        session = requests.Session()
        session.headers.update(server.headers)
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            response = session.post(f"{server.url}/hooks/{hook_id}/run", json={}, timeout=60)
            if latencies is not None:
                latencies.append((time.perf_counter() - started) * 1000)
            outcomes.append(response.json().get("status") if response.ok else response.text)

    threads = [threading.Thread(target=loop, args=(h,)) for h in hook_ids]
    for thread in threads:
        thread.start()
    return threads


def benign_round(server, benign, abusive, seconds):
    latencies, benign_outcomes, abusive_outcomes = [], [], []
    threads = clients(server, benign, seconds, latencies, benign_outcomes)
    threads += clients(server, abusive, seconds, None, abusive_outcomes)
    for thread in threads:
        thread.join()
    return latencies, benign_outcomes, abusive_outcomes


def run_abuse(seconds: float = 20) -> None:
    print("load: 8 benign clients, then 8 benign + 4 abusive", flush=True)
    server = Server({"TIMEOUT_SECONDS": "3", "CPU_SECONDS": "2", "MEMORY_MB": "128"})
    try:
        session = requests.Session()
        session.headers.update(server.headers)
        trivial = SCRIPT.replace("# trigger", "# trigger")
        benign = [create_hook(session, server, f"benign-{n}", trivial) for n in range(8)]
        kinds = list(ABUSE)[:4] if seconds < 10 else list(ABUSE)
        abusive = [create_hook(session, server, f"abuse-{k}", hook_script(ABUSE[k]))
                   for k in kinds]
        quiet, quiet_outcomes, _ = benign_round(server, benign, [], seconds)
        noisy, noisy_outcomes, abuse_outcomes = benign_round(server, benign, abusive[:4],
                                                             seconds)
        # The fifth kind (fork) is quick; it runs in the same loop as the others would.
        if len(abusive) > 4:
            _, _, fork_outcomes = benign_round(server, [], abusive[4:], 2)
            abuse_outcomes += fork_outcomes
        failed = [o for o in quiet_outcomes + noisy_outcomes if o != "success"]
        record("benign run latency, no abuse (median / p99 ms)",
               f"{statistics.median(quiet):.1f} / {percentile(quiet, 0.99):.1f}",
               f"{len(quiet)} runs")
        record("benign run latency, 4 abusive clients (median / p99 ms)",
               f"{statistics.median(noisy):.1f} / {percentile(noisy, 0.99):.1f}",
               f"no abuse {statistics.median(quiet):.1f} ms",
               f"{statistics.median(noisy) / statistics.median(quiet):.1f}x; "
               f"{len(failed)} benign failures")
        statuses = sorted(set(abuse_outcomes))
        record("abusive runs stopped (statuses seen)", ", ".join(map(str, statuses)),
               f"{len(abuse_outcomes)} runs")
    finally:
        server.stop()


def run_memory(executions: int = 10000) -> None:
    print(f"memory: {executions} executions over HTTP", flush=True)
    server = Server({})
    try:
        session = requests.Session()
        session.headers.update(server.headers)
        hook_id = create_hook(session, server, "memory", SCRIPT)
        outcomes: list = []
        per_client = 500
        warm = clients_count(server, hook_id, 8, per_client // 5, outcomes)
        before = (rss_kb(server.process.pid), rss_kb(server.zygote_pid()))
        done = clients_count(server, hook_id, 8, executions // 8, outcomes)
        after = (rss_kb(server.process.pid), rss_kb(server.zygote_pid()))
        failed = sum(1 for o in outcomes if o != "success")
        record(f"server RSS growth over {done} executions (MB)",
               f"{(after[0] - before[0]) / 1024:+.1f}", f"{before[0] / 1024:.0f} MB after "
               f"{warm} warm-up runs", f"{failed} failed runs")
        record(f"zygote RSS growth over {done} executions, the zygote that ran them (MB)",
               f"{(after[1] - before[1]) / 1024:+.1f}", f"{before[1] / 1024:.0f} MB")
    finally:
        server.stop()


def clients_count(server, hook_id, count, each, outcomes) -> int:
    def loop():
        session = requests.Session()
        session.headers.update(server.headers)
        for _ in range(each):
            response = session.post(f"{server.url}/hooks/{hook_id}/run", json={}, timeout=60)
            outcomes.append(response.json().get("status") if response.ok else response.text)

    threads = [threading.Thread(target=loop) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return count * each
