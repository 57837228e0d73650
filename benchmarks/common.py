"""Shared helpers: repeated timing with medians, a result table, loopback servers."""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

# The provider stand-ins live with the tests; the benchmark reuses them.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

ROWS: list[tuple[str, str, str, str]] = []


def timed(fn, count: int) -> list[float]:
    """Milliseconds of `count` calls of fn()."""
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def median_of_rounds(fn, count: int, rounds: int) -> float:
    """Median over `rounds` rounds of each round's median: steadier on a noisy shared host."""
    return statistics.median(statistics.median(timed(fn, count)) for _ in range(rounds))


def paced_samples(fn, gap: float, count: int) -> list[float]:
    """Milliseconds of `count` calls of fn(), each after `gap` s of idle."""
    samples = []
    for _ in range(count):
        time.sleep(gap)
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def median_of_paced(fn, gap: float, rounds: int, count: int = 50) -> float:
    """Median over rounds of the median latency of fn() called after `gap` s of idle."""
    return statistics.median(statistics.median(paced_samples(fn, gap, count))
                             for _ in range(rounds))


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def record(metric: str, value: str, baseline: str = "", ratio: str = "") -> None:
    ROWS.append((metric, value, baseline, ratio))
    print(f"  {metric}: {value}" + (f"  (baseline {baseline}; {ratio})" if baseline else ""),
          flush=True)


def print_table() -> None:
    widths = [max(len(r[i]) for r in ROWS + [("metric", "value", "baseline", "ratio")])
              for i in range(4)]
    header = ("metric", "value", "baseline (same run)", "ratio")
    widths = [max(w, len(h)) for w, h in zip(widths, header)]
    print()
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in ROWS:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and all its descendants, the exited ones too
    (each parent's reaped children are in its own figures). Other load on a shared host moves
    it far less than it moves wall-clock figures."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # exited meanwhile: its time is in its parent's once reaped
    ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):  # a thread's children are its own
        try:
            children += (task / "children").read_text().split()
        except OSError:
            pass  # the thread ended
    return ticks / os.sysconf("SC_CLK_TCK") + sum(tree_cpu_seconds(int(c)) for c in children)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
