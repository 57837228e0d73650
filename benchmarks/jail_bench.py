"""What the kernel jail costs: the same figures with the jail on and off, in the same run
(measured in turns, see on_off.py)."""

from __future__ import annotations

import statistics

from benchmarks.common import paced_samples, record
from benchmarks.on_off import compare_servers, cost, on_off_rounds
from benchmarks.sandbox_bench import TRIVIAL, job
from hookengine.sandbox import Sandbox


def run_sandbox(rounds: int = 3) -> None:
    print("jail: starting bare zygotes with the jail on and off", flush=True)
    sandboxes = {"on": Sandbox([]).start(), "off": Sandbox([], jail=False).start()}
    try:
        for name, sandbox in sandboxes.items():
            layers = sandbox.layers
            print(f"  jail {name}: filesystem {layers.get('filesystem_jail')}, network "
                  f"{layers.get('network_jail')}", flush=True)
        trivial = job(TRIVIAL, {}, dependencies=())
        for sandbox in sandboxes.values():
            outcome = sandbox.execute(trivial)
            assert outcome.status == "success", outcome.error
        boot_ms: dict[str, list[float]] = {"on": [], "off": []}

        def execute(name: str) -> None:
            outcome = sandboxes[name].execute(trivial)
            boot_ms[name].append(outcome.stats["boot_duration_ms"])

        # As sandbox_bench's figure: 40 runs a round, one every 20 ms, in blocks of 10.
        spaced_on, spaced_off = on_off_rounds(
            lambda name: paced_samples(lambda: execute(name), 0.02, 10), rounds, 2,
            statistics.median)
        record("trivial hook, isolated execution, one every 20 ms, jail on (median ms)",
               f"{spaced_on:.2f}", f"jail off {spaced_off:.2f} ms",
               cost(spaced_on / spaced_off))
        boot_on, boot_off = (statistics.median(boot_ms[name]) for name in ("on", "off"))
        record("in those runs, from the zygote's accept to the hook's first line (median ms)",
               f"{boot_on:.2f}", f"jail off {boot_off:.2f} ms",
               f"+{boot_on - boot_off:.2f} ms with the jail")
    finally:
        for sandbox in sandboxes.values():
            sandbox.close()


def run_http(rounds: int = 3) -> None:
    compare_servers("jail", {"JAIL": "false"}, rounds, paced=False)


def run(rounds: int = 3) -> None:
    run_sandbox(rounds)
    run_http(rounds)


if __name__ == "__main__":
    run()
