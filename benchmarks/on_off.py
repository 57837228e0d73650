"""One feature's cost: the same figures with it on and off, measured in turns in one run.

Both configurations stay up side by side and every round measures them in turns, on, off,
off, on (a part of the round's work each time), so load that other processes put on a shared
host weighs on both alike as long as it changes slowly. Ratios are the feature's cost:
latency on / latency off, throughput off / throughput on.
"""

from __future__ import annotations

import statistics

import requests

from benchmarks.common import paced_samples, record, tree_cpu_seconds
from benchmarks.http_bench import SCRIPT, Server, throughput

GOAL = 1.10


def on_off_rounds(measure, rounds: int, repeats: int, combine) -> tuple[float, float]:
    """Medians over rounds of each configuration's figure for the round: `combine` of the
    samples that measure("on") and measure("off") return, taken `repeats` times in the
    order on, off, off, on."""
    on, off = [], []
    for _ in range(rounds):
        samples: dict[str, list[float]] = {"on": [], "off": []}
        for name in ("on", "off", "off", "on") * repeats:
            samples[name] += measure(name)
        on.append(combine(samples["on"]))
        off.append(combine(samples["off"]))
    return statistics.median(on), statistics.median(off)


def cost(ratio: float) -> str:
    return f"{ratio:.2f}x (goal ≤ {GOAL:.2f})"


def compare_servers(feature: str, off_settings: dict, rounds: int, paced: bool) -> None:
    """`hookengine serve` twice, with `feature` on and with `off_settings`: the trivial hook
    over HTTP one run every 20 ms (when `paced`), throughput of 8 clients, CPU per run."""
    print(f"{feature}: starting `hookengine serve` twice, once with {off_settings}", flush=True)
    servers: dict[str, Server] = {}
    try:
        servers["on"] = Server()
        servers["off"] = Server(off_settings)
        sessions, hooks = {}, {}
        for name, server in servers.items():
            session = sessions[name] = requests.Session()
            session.headers.update(server.headers)
            hook = session.post(f"{server.url}/hooks", json={
                "name": "bench", "script": SCRIPT, "triggerId": "send-phone-message"}).json()
            hooks[name] = hook["id"]
            for _ in range(20):  # the zygote starts on the first run; warm both alike
                answer = session.post(f"{server.url}/hooks/{hook['id']}/run", json={}).json()
                assert answer["status"] == "success", answer
        if paced:
            def run_once(name: str) -> None:
                answer = sessions[name].post(f"{servers[name].url}/hooks/{hooks[name]}/run",
                                             json={}).json()
                assert answer["status"] == "success", answer

            spaced_on, spaced_off = on_off_rounds(
                lambda name: paced_samples(lambda: run_once(name), 0.02, 10), rounds, 2,
                statistics.median)
            record(f"trivial hook over HTTP, one run every 20 ms, {feature} on (median ms)",
                   f"{spaced_on:.2f}", f"{feature} off {spaced_off:.2f} ms",
                   cost(spaced_on / spaced_off))
        failures = {"on": 0, "off": 0}
        cpu_ms: dict[str, list[float]] = {"on": [], "off": []}

        def ms_per_run(name: str) -> float:
            """Wall-clock ms per run of 8 clients x 30 runs (half of http_bench's round)."""
            server = servers[name]
            before = tree_cpu_seconds(server.process.pid)
            rate, failed = throughput(server, hooks[name], clients=8, runs_each=30)
            # CPU of the server and everything it started (zygotes, broker, hook processes)
            cpu_ms[name].append((tree_cpu_seconds(server.process.pid) - before) * 1000 / 240)
            failures[name] += failed
            return 1000 / rate

        per_run_on, per_run_off = on_off_rounds(lambda name: [ms_per_run(name)], rounds, 1,
                                                statistics.mean)
        rate_on, rate_off = 1000 / per_run_on, 1000 / per_run_off
        record(f"throughput, 8 concurrent clients, {feature} on (runs/s, median of rounds)",
               f"{rate_on:.0f}", f"{feature} off {rate_off:.0f}/s",
               f"{cost(rate_off / rate_on)}; {failures['on']} / {failures['off']} failed")
        cpu_on, cpu_off = (statistics.median(cpu_ms[name]) for name in ("on", "off"))
        record("CPU time per run in that test (server, zygote, broker, hook process; ms)",
               f"{cpu_on:.2f}", f"{feature} off {cpu_off:.2f} ms", f"{cpu_on / cpu_off:.2f}x")
    finally:
        for server in servers.values():
            server.stop()
