"""`python -m benchmarks`: every performance figure, each with a baseline from the same run."""

from __future__ import annotations

import argparse
import os
import platform

from benchmarks import (dependencies_bench, http_bench, jail_bench, load_bench, phone_bench,
                        sandbox_bench, scale_bench, streaming_bench, ui_bench)
from benchmarks.common import print_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per figure (medians)")
    parser.add_argument("--only", choices=["sandbox", "http", "jail", "streaming",
                                                   "dependencies", "abuse", "memory", "phone", "ui",
                                                   "scale"],
                        default=None)
    parser.add_argument("--executions", type=int, default=10000,
                        help="executions for the memory-growth figure")
    parser.add_argument("--abuse-seconds", type=float, default=20)
    args = parser.parse_args()
    print(f"host: {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.machine()}", flush=True)
    if args.only in (None, "sandbox"):
        sandbox_bench.run(args.rounds)
    if args.only in (None, "http"):
        http_bench.run(args.rounds)
    if args.only in (None, "jail"):
        jail_bench.run(args.rounds)
    if args.only in (None, "streaming"):
        streaming_bench.run(args.rounds)
    if args.only in (None, "dependencies"):
        dependencies_bench.run(args.rounds)
    if args.only in (None, "phone"):
        phone_bench.run(args.rounds)
    if args.only in (None, "ui"):
        ui_bench.run(args.rounds)
    if args.only in (None, "scale"):
        scale_bench.run(args.rounds)
    if args.only in (None, "abuse"):
        load_bench.run_abuse(args.abuse_seconds)
    if args.only in (None, "memory"):
        load_bench.run_memory(args.executions)
    print_table()


if __name__ == "__main__":
    main()
