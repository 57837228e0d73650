"""Runs over HTTP: `run` latency against a plain GET on the same server, and throughput."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from benchmarks.common import median_of_paced, record
from benchmarks.sandbox_bench import TRIVIAL

SCRIPT = "# /// script\n# [tool.hookengine]\n# trigger = \"send-phone-message\"\n# ///\n" + TRIVIAL


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A real `hookengine serve` in its own process, so clients here do not share its GIL."""

    def __init__(self, settings: dict | None = None):
        self.data_dir = tempfile.mkdtemp(prefix="hookengine-bench-")
        self.env = {**os.environ, "HOOKENGINE_DATA_DIR": self.data_dir,
                    "HOOKENGINE_LOG_LEVEL": "WARNING",
                    **{f"HOOKENGINE_{k}": v for k, v in (settings or {}).items()}}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api/v2"
        self.token = subprocess.run([sys.executable, "-m", "hookengine.cli", "token", "create"],
                                    env=self.env, check=True, capture_output=True,
                                    text=True).stdout.strip()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hookengine.cli", "serve", "--port", str(self.port)],
            env=self.env, stderr=subprocess.DEVNULL)
        self.headers = {"Authorization": f"Bearer {self.token}"}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.url}/openapi.json", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def zygote_pid(self) -> int:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return int(children.read_text().split()[0])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def throughput(server: Server, hook_id: str, clients: int, runs_each: int) -> tuple[float, int]:
    failures = []

    def client():
        session = requests.Session()
        session.headers.update(server.headers)
        for _ in range(runs_each):
            response = session.post(f"{server.url}/hooks/{hook_id}/run", json={})
            if response.status_code != 200 or response.json()["status"] != "success":
                failures.append(response.text)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return clients * runs_each / (time.perf_counter() - start), len(failures)


def run(rounds: int = 3) -> None:
    print("http: starting `hookengine serve`", flush=True)
    server = Server()
    try:
        session = requests.Session()
        session.headers.update(server.headers)
        hook = session.post(f"{server.url}/hooks", json={
            "name": "bench", "script": SCRIPT, "triggerId": "send-phone-message"}).json()
        url = f"{server.url}/hooks/{hook['id']}"
        assert session.post(f"{url}/run", json={}).json()["status"] == "success"
        for label, gap in (("one request every 20 ms", 0.02), ("back to back", 0)):
            get_ms = median_of_paced(lambda: session.get(url), gap, rounds)
            run_ms = median_of_paced(lambda: session.post(f"{url}/run", json={}), gap, rounds)
            record(f"run latency, trivial hook over HTTP, {label} (median ms)",
                   f"{run_ms:.2f}", f"GET /hooks/{{id}} {get_ms:.2f} ms",
                   f"{run_ms / get_ms:.1f}x (goal <= 3)")
        rates = []
        failures = 0
        for _ in range(rounds):
            rate, failed = throughput(server, hook["id"], clients=8, runs_each=60)
            rates.append(rate)
            failures += failed
        record("throughput, 8 concurrent clients (runs/s, median of rounds)",
               f"{statistics.median(rates):.0f}", "", f"{failures} failed runs (goal >= 150/s)")
    finally:
        server.stop()


if __name__ == "__main__":
    run()
