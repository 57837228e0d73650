"""What streaming log lines costs: the trivial hook (it prints one line) with lines sent as
printed and with them held until the run ends (HOOKENGINE_LIVE_LOGS=false), in one run."""

from __future__ import annotations

from benchmarks.on_off import compare_servers


def run(rounds: int = 3) -> None:
    compare_servers("live logs", {"LIVE_LOGS": "false"}, rounds, paced=True)
