"""Scale-out: one node on SQLite (the baseline), one node on PostgreSQL, and two nodes on one
PostgreSQL behind a client-side round robin, measured in turns in one run; then the database
time of one run on each backend, in-process.

PostgreSQL runs with its defaults, fsync and synchronous_commit on (durable commits); SQLite
with the engine's WAL + synchronous=NORMAL.
"""

from __future__ import annotations

import contextlib
import shutil
import statistics
import tempfile
import threading
import time

import requests
from cryptography.fernet import Fernet

from benchmarks.common import percentile, record
from benchmarks.http_bench import SCRIPT
from hookengine import create_app

CLIENTS = 4
RUNS_EACH = 250  # per client and round: 1000 runs per configuration and round, ~5 s
STORE_RUNS = 100  # in-process runs per backend and round
# Nodes of the HTTP part; MAX_RUNS well above CLIENTS, so no run is refused with 503.
NODE_SETTINGS = {"INDEX_URL": "none", "LOG_LEVEL": "WARNING", "MAX_RUNS": 4 * CLIENTS}


def start_nodes(count: int, data_dirs: list[str], **settings) -> list:
    from serverprocess import ServerProcess

    nodes = []
    for _ in range(count):
        data_dirs.append(tempfile.mkdtemp(prefix="hookengine-bench-scale-"))
        nodes.append(ServerProcess(data_dirs[-1], **NODE_SETTINGS, **settings).start())
    return nodes


def batch(nodes: list, hook_id: str) -> tuple[list[float], float, int, int]:
    """CLIENTS threads, each a requests.Session sending RUNS_EACH runs, alternating between
    the nodes: each run's ms, runs/s over the whole batch, runs refused with 503, other
    failures."""
    latencies: list[float] = []
    refused, failed = [], []

    def client(first: int) -> None:
        session = requests.Session()
        for n in range(first, first + RUNS_EACH):
            node = nodes[n % len(nodes)]
            start = time.perf_counter()
            response = session.post(f"{node.api}/hooks/{hook_id}/run", json={}, timeout=60,
                                    headers=node.session.headers)
            latencies.append((time.perf_counter() - start) * 1000)
            if response.status_code == 503:
                refused.append(response)
            elif response.status_code != 200 or response.json()["status"] != "success":
                failed.append(response.text)
        session.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, len(latencies) / (time.perf_counter() - start), len(refused), len(failed)


def measure_http(cluster, postgresql: str, rounds: int) -> None:
    pg = {"SECRET_KEY": Fernet.generate_key().decode()}
    data_dirs: list[str] = []
    configurations: dict[str, list] = {}
    try:
        configurations["SQLite, 1 node"] = start_nodes(1, data_dirs)
        configurations[f"{postgresql}, 1 node"] = start_nodes(
            1, data_dirs, DATABASE_URL=cluster.fresh_schema(), **pg)
        configurations[f"{postgresql}, 2 nodes"] = start_nodes(
            2, data_dirs, DATABASE_URL=cluster.fresh_schema(), **pg)
        hooks = {}
        for name, nodes in configurations.items():
            hooks[name] = nodes[0].call("POST", "/hooks", json={
                "name": "bench", "script": SCRIPT, "triggerId": "send-phone-message"}).json()["id"]
            for node in nodes:  # each node's zygote starts on its first run: warm them alike
                for _ in range(20):
                    answer = node.call("POST", f"/hooks/{hooks[name]}/run", json={}).json()
                    assert answer["status"] == "success", answer
        figures = {name: {"p50": [], "p99": [], "rate": [], "refused": 0, "failed": 0}
                   for name in configurations}
        for _ in range(rounds):  # the configurations in turns, so slow drift weighs on all
            for name, nodes in configurations.items():
                latencies, rate, refused, failed = batch(nodes, hooks[name])
                figure = figures[name]
                figure["p50"].append(percentile(latencies, 0.50))
                figure["p99"].append(percentile(latencies, 0.99))
                figure["rate"].append(rate)
                figure["refused"] += refused
                figure["failed"] += failed
    finally:
        for nodes in configurations.values():
            for node in nodes:
                node.terminate()
        for data_dir in data_dirs:
            shutil.rmtree(data_dir, ignore_errors=True)
    report_http(figures)


def report_http(figures: dict) -> None:
    base_name = "SQLite, 1 node"
    base = {key: statistics.median(figures[base_name][key]) for key in ("p50", "p99", "rate")}
    for name, figure in figures.items():
        for key, what, unit in (("p50", "run latency p50", "ms"),
                                ("p99", "run latency p99", "ms"),
                                ("rate", "throughput", "runs/s")):
            value = statistics.median(figure[key])
            metric = f"scale: {what}, {CLIENTS} clients, {name} ({unit}, median of rounds)"
            text = f"{value:.0f}" if key == "rate" else f"{value:.2f}"
            if name == base_name:
                baseline, ratio = "", "the baseline"
            else:
                baseline = f"{base_name}: " + (f"{base[key]:.0f}/s" if key == "rate"
                                               else f"{base[key]:.2f} ms")
                ratio = f"{value / base[key]:.2f}x"
            if key == "rate":
                ratio += f"; {figure['refused']} refused (503), {figure['failed']} failed"
            record(metric, text, baseline, ratio)


class StoreTimer:
    """Milliseconds and calls spent in one store's transaction(), query() and query_one(),
    wrapped on that instance only: the engine's own code path is unchanged. A transaction
    counts from its BEGIN to its COMMIT, the engine's work between statements included."""

    def __init__(self, store):
        self.ms, self.calls = 0.0, 0
        self._lock = threading.Lock()
        for name in ("query", "query_one"):
            setattr(store, name, self._timed(getattr(store, name)))
        transaction = store.transaction

        @contextlib.contextmanager
        def timed_transaction():
            start = time.perf_counter()
            try:
                with transaction() as db:
                    yield db
            finally:
                self._add(start)
        store.transaction = timed_transaction

    def _timed(self, method):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self._add(start)
        return timed

    def _add(self, start: float) -> None:
        with self._lock:  # a run may write its log lines from another thread
            self.ms += (time.perf_counter() - start) * 1000
            self.calls += 1


def measure_store(cluster, postgresql: str, rounds: int) -> None:
    """The trivial hook run in-process (test client) on each backend: the store time of a
    run (each round's median) and store calls per run (each round's mean), medians of the
    rounds."""
    settings = {"SQLite": {}, "PostgreSQL": {"DATABASE_URL": cluster.fresh_schema()}}
    key = Fernet.generate_key().decode()  # both: no key file (and its warning) for SQLite
    data_dirs, engines, runs = [], [], {}
    figures = {name: {"ms": [], "calls": []} for name in settings}
    try:
        for name, backend in settings.items():
            data_dirs.append(tempfile.mkdtemp(prefix="hookengine-bench-store-"))
            app = create_app({"DATA_DIR": data_dirs[-1], "LOG_LEVEL": "WARNING",
                              "INDEX_URL": "none", "SECRET_KEY": key, **backend},
                             env_file=None)
            engine = app.extensions["hookengine"]
            engines.append(engine)
            engine.sandboxes.start()
            client = app.test_client()
            headers = {"Authorization": f"Bearer {engine.tokens.create()}"}
            hook = client.post("/api/v2/hooks", headers=headers, json={
                "name": "bench", "script": SCRIPT, "triggerId": "send-phone-message"}).json
            runs[name] = run_once(client, f"/api/v2/hooks/{hook['id']}/run", headers,
                                  StoreTimer(engine.store))
            for _ in range(20):  # warm: the zygote's first fork, the first pages
                runs[name]()
        for _ in range(rounds):
            for name, run_hook in runs.items():
                samples = [run_hook() for _ in range(STORE_RUNS)]
                figures[name]["ms"].append(statistics.median(ms for ms, _ in samples))
                # A mean: a printed line is stored in a transaction of its own or with the
                # outcome, as it happens to arrive, so runs make 6 or 7 calls.
                figures[name]["calls"].append(statistics.mean(calls for _, calls in samples))
    finally:
        for engine in engines:
            engine.close()
        for data_dir in data_dirs:
            shutil.rmtree(data_dir, ignore_errors=True)
    ms = {name: statistics.median(figure["ms"]) for name, figure in figures.items()}
    calls = {name: statistics.median(figure["calls"]) for name, figure in figures.items()}
    record("scale: database time per run, in-process, SQLite (ms, median of rounds)",
           f"{ms['SQLite']:.3f}", "", f"the baseline; {calls['SQLite']:.1f} store calls per run")
    record(f"scale: database time per run, in-process, {postgresql} (ms, median of rounds)",
           f"{ms['PostgreSQL']:.3f}", f"SQLite {ms['SQLite']:.3f} ms",
           f"{ms['PostgreSQL'] / ms['SQLite']:.1f}x; "
           f"{calls['PostgreSQL']:.1f} store calls per run")


def run_once(client, url: str, headers: dict, timer: StoreTimer):
    """A function running the hook once: (store ms, store calls) of that run."""
    def run() -> tuple[float, int]:
        ms, calls = timer.ms, timer.calls
        answer = client.post(url, json={}, headers=headers).json
        assert answer["status"] == "success", answer
        return timer.ms - ms, timer.calls - calls
    return run


def run(rounds: int = 3) -> None:
    from postgres import PostgresCluster

    print("scale: starting a PostgreSQL cluster (defaults: fsync on, synchronous_commit on)",
          flush=True)
    with PostgresCluster() as cluster:
        # As the server reports them, so the rows say which durability was measured.
        postgresql = "PostgreSQL ({})".format(", ".join(
            f"{name} {cluster.execute(f'SHOW {name}')[0][0]}"
            for name in ("fsync", "synchronous_commit")))
        print(f"scale: {postgresql}; SQLite in WAL mode, synchronous=NORMAL; {CLIENTS} "
              f"clients x {RUNS_EACH} runs per configuration and round", flush=True)
        measure_http(cluster, postgresql, rounds)
        measure_store(cluster, postgresql, rounds)
