"""One data directory, one server: the lock, its heartbeat, and what a killed server leaves."""

from __future__ import annotations

import glob
import os
import socket
import sqlite3
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from hookengine.cli import main
from hookengine.clock import utc_from_timestamp, utc_now
from hookengine.config import load_settings
from hookengine.engine import Engine
from hookengine.errors import DataDirInUse
from hookengine.serverlock import ServerLock, socket_dir
from serverprocess import ServerProcess, free_port, hookengine, read_db, wait_for
from test_faults import SLEEPER, children_of, payload, wait_gone


def serve(env: dict, *args: str) -> subprocess.CompletedProcess:
    """`hookengine serve` expected to refuse to start: its exit and what it printed."""
    return subprocess.run([sys.executable, "-m", "hookengine.cli", "serve", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def statuses(data_dir) -> dict[str, tuple]:
    database = sqlite3.connect(Path(data_dir) / "hookengine.sqlite3", timeout=5)
    try:
        return {row[0]: row[1:] for row in database.execute(
            "SELECT id, status, ended_at, finished_seq FROM executions")}
    finally:
        database.close()


def start_sleeper(server, milliseconds: str):
    """Create the sleeper hook and start one run of it in a thread; return when it runs."""
    hook = server.call("POST", "/hooks", json={"name": f"sleeper-{milliseconds}",
                                               "script": SLEEPER,
                                               "triggerId": "send-phone-message"}).json()
    server.call("POST", f"/hooks/{hook['id']}/secrets", json={"TOKEN": "t"})
    finished = server.call("POST", f"/hooks/{hook['id']}/run", json=payload("1")).json()
    assert finished["status"] == "success", finished
    answers = []
    thread = threading.Thread(target=lambda: answers.append(
        _quietly(server.call, "POST", f"/hooks/{hook['id']}/run", json=payload(milliseconds))))
    thread.start()
    wait_for(lambda: "running" in [s[0] for s in statuses(server.data_dir).values()],
             "the run to start")
    return hook, finished, thread, answers


def _quietly(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception:  # the server is killed under this request on purpose
        return None


def zygote_sockets(pid: int) -> list[str]:
    """The --socket argument of each zygote the server process started."""
    sockets = []
    for child in children_of(pid):
        argv = Path(f"/proc/{child}/cmdline").read_bytes().decode().split("\0")
        if "hookengine.sandbox.zygote" in argv:
            sockets.append(argv[argv.index("--socket") + 1])
    return sorted(sockets)


def test_a_second_server_on_the_same_data_directory_exits_and_changes_nothing(tmp_path):
    server = ServerProcess(tmp_path / "data", TIMEOUT_SECONDS=30).start()
    try:
        hook, finished, thread, answers = start_sleeper(server, "8000")
        before = statuses(server.data_dir)
        hooks_before = server.call("GET", "/hooks").json()

        second = serve(server.env, "--port", str(free_port()))

        assert second.returncode != 0
        [line] = second.stderr.strip().splitlines()
        assert f"pid {server.process.pid}" in line and server.data_dir in line
        assert "stop that one first" in line and "Traceback" not in second.stderr
        assert statuses(server.data_dir) == before  # the running run is still running
        assert server.call("GET", "/hooks").json() == hooks_before
        assert server.call("GET", f"/executions/{finished['id']}").json() == finished
        # Other commands do not take the lock.
        assert hookengine("token", "create", env=server.env).startswith("he_")
        thread.join(60)
        assert answers[0].json()["status"] == "success"
    finally:
        server.terminate()


def test_a_busy_port_is_one_line_not_a_traceback(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "HOOKENGINE_DATA_DIR": str(tmp_path / "data")}
        done = serve(env, "--port", str(port))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"Error: cannot listen on 127.0.0.1:{port}: Address already in use; stop what uses "
        "it, or choose another --host/--port")
    # It let go of everything on the way out: the lock and its zygotes' directories.
    assert not glob.glob(socket_dir(tmp_path / "data", "*"))
    ServerLock(tmp_path / "data").acquire().release()


@pytest.mark.parametrize("port", ["0", "65536", "-1"])
def test_a_port_outside_1_to_65535_is_refused(tmp_path, port):
    result = CliRunner().invoke(main, ["serve", "--port", port],
                                env={"HOOKENGINE_DATA_DIR": str(tmp_path / "data")})
    assert result.exit_code == 2
    assert f"Invalid value for '--port': {port} is not in the range 1<=x<=65535" in result.output
    assert not (tmp_path / "data").exists()  # refused before anything was touched


def test_the_lock_is_held_once(tmp_path):
    first = ServerLock(tmp_path / "data").acquire()
    with pytest.raises(DataDirInUse, match=rf"in use by .* \(pid {os.getpid()}\)"):
        ServerLock(tmp_path / "data").acquire()
    first.release()
    ServerLock(tmp_path / "data").acquire().release()


def test_a_dead_nodes_run_ends_at_its_last_heartbeat_not_before_it_started(tmp_path):
    engine = Engine(load_settings({"DATA_DIR": str(tmp_path / "data")}, env_file=None))
    last_beat = datetime(2026, 1, 1, 10, 0, 5, tzinfo=timezone.utc).timestamp()
    engine.store.connection().execute(
        "INSERT INTO nodes (id, host, pid, started_at, heartbeat_at) VALUES "
        "('dead', 'elsewhere', 1, ?, ?)", (last_beat - 60, last_beat))
    engine.executions.node_id = "dead"
    hook = {"id": "h1", "triggerId": "send-phone-message"}
    old, new = (engine.executions.start(hook, "test", {}) for _ in range(2))
    engine.store.connection().execute("UPDATE executions SET started_at = ? WHERE id = ?",
                                      ("2026-01-01T10:00:00.000Z", old["id"]))

    assert engine.nodes.reap() == 2

    assert engine.executions.get(old["id"])["ended_at"] == "2026-01-01T10:00:05.000Z"
    assert engine.executions.get(new["id"])["ended_at"] == new["started_at"]
    assert engine.nodes.reap() == 0  # marked once
    engine.close()


def test_a_run_cut_off_by_kill_9_ended_at_the_servers_last_heartbeat(tmp_path):
    server = ServerProcess(tmp_path / "data", TIMEOUT_SECONDS=30).start()
    hook, _, thread, _ = start_sleeper(server, "20000")
    [(execution_id, _)] = [(k, v) for k, v in statuses(server.data_dir).items()
                           if v[0] == "running"]
    started_at = server.call("GET", f"/executions/{execution_id}").json()["started_at"]
    heartbeat = wait_for(lambda: (lambda t: t if t > started_at else None)(
        utc_from_timestamp(read_db(server.data_dir, "SELECT MAX(heartbeat_at) FROM nodes")[0][0]
                           )), "a heartbeat after the run started")
    zygotes = children_of(server.process.pid)
    server.kill()
    killed_at = utc_now()
    thread.join(60)
    assert all(wait_gone(pid) for pid in zygotes)

    restarted = ServerProcess(tmp_path / "data").start()
    try:
        record = restarted.call("GET", f"/executions/{execution_id}").json()
    finally:
        restarted.terminate()
    assert record["status"] == "interrupted"
    # Not "now" (the restart): the last moment the killed server was known alive.
    assert heartbeat <= record["ended_at"] <= killed_at


def test_kill_9_leaves_no_zygote_directories_after_the_next_start(tmp_path):
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir).start()
    ours = sorted(socket_dir(data_dir, kind) for kind in ("bare", "full"))
    assert [os.path.dirname(s) for s in zygote_sockets(server.process.pid)] == ours
    zygotes = children_of(server.process.pid)
    server.kill()
    assert zygotes and all(wait_gone(pid) for pid in zygotes)
    for path in ours:  # what the killed server left behind, marked to see it go
        Path(path, "left-behind").write_text("")

    restarted = ServerProcess(data_dir)
    restarted.start()
    try:
        assert sorted(glob.glob(socket_dir(data_dir, "*"))) == ours
        for path in ours:
            assert not Path(path, "left-behind").exists()
            assert os.stat(path).st_mode & 0o777 == 0o700
        assert [os.path.dirname(s) for s in zygote_sockets(restarted.process.pid)] == ours
        assert restarted.call("GET", "/hooks").status_code == 200
    finally:
        assert restarted.terminate() == 0
    assert not glob.glob(socket_dir(data_dir, "*"))  # a clean stop leaves none either
