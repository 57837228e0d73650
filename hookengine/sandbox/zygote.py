"""The zygote: a secret-free, single-threaded process that forks one child per execution.

It is started with exec (never forked from the server), so it holds none of the server's
memory: no secret key, no database. It imports and warms the allowed SDKs once, caches
compiled scripts by hash, and for each request forks a child, enforces its wall-clock limit,
reaps it and sends back what the child wrote plus how it ended.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib
import json
import logging
import os
import select
import selectors
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections import OrderedDict

from hookengine.sandbox import warmup
from hookengine.sandbox.child import run_child
from hookengine.sandbox.contract import HOOK_FILENAME, Clock
from hookengine.sandbox.isolation import ProcessJail
from hookengine.sandbox.policy import STDLIB_MODULES, compile_hook
from hookengine.sandbox.protocol import read_frame, write_frame

log = logging.getLogger("hookengine.zygote")

SLOTS = 1000          # concurrent executions, each with its own uid
CODE_CACHE_SIZE = 256

class Job:
    """One execution in flight: its child, pipe, deadline and what it has written so far."""

    def __init__(self, conn, pid, pipe_fd, slot, workdir, deadline, max_answer):
        self.conn, self.pid, self.pipe_fd = conn, pid, pipe_fd
        self.slot, self.workdir, self.deadline = slot, workdir, deadline
        self.max_answer = max_answer
        self.chunks: list[bytes] = []
        self.size = 0
        self.overflow = self.timed_out = self.abandoned = False
        self.status = self.rusage = None
        self.pipe_open = True


class Zygote:
    def __init__(self, listener: socket.socket, jail: ProcessJail, runs_dir: str):
        self.listener = listener
        self.jail = jail
        self.runs_dir = runs_dir
        self.selector = selectors.DefaultSelector()
        self.jobs: dict[int, Job] = {}  # by pid
        self.free_slots = list(range(SLOTS - 1, -1, -1))
        self.code_cache: OrderedDict[str, object] = OrderedDict()
        self.counter = 0

    def serve(self) -> None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake select via the fd
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(wake_r, selectors.EVENT_READ, "wake")
        self.selector.register(sys.stdin, selectors.EVENT_READ, "lifeline")
        while True:
            for key, _ in self.selector.select(self._next_timeout()):
                if key.data == "accept":
                    self._accept()
                elif key.data == "wake":
                    os.read(wake_r, 4096)
                elif key.data == "lifeline":
                    if not os.read(sys.stdin.fileno(), 4096):
                        self._shutdown()  # the server is gone: so are we and our children
                elif key.data[0] == "pipe":
                    self._read_pipe(key.data[1])
                elif key.data[0] == "conn":
                    self._abandon(key.data[1])
            self._enforce_deadlines()
            self._reap()

    def _next_timeout(self):
        if not self.jobs:
            return None
        soonest = min(job.deadline for job in self.jobs.values())
        return max(0.0, soonest - time.monotonic())

    def _accept(self) -> None:
        conn, _ = self.listener.accept()
        conn.settimeout(10)
        try:
            request = read_frame(conn)
            if request is None:
                conn.close()
                return
            self._start(conn, json.loads(request))
        except Exception as error:  # a bad request must never stop the zygote
            log.exception("zygote could not start a run")
            self._reply(conn, {"engine_error": f"{type(error).__name__}: {error}"})

    def _compiled(self, job: dict):
        key = hashlib.sha256(job["source"].encode("utf-8", "surrogatepass")).hexdigest()
        code = self.code_cache.get(key)
        if code is None:
            result = compile_hook(job["source"], HOOK_FILENAME, job["max_script_bytes"],
                                  job["max_ast_depth"])
            if result.errors:
                return None, list(result.errors)
            code = self.code_cache[key] = result.code
            if len(self.code_cache) > CODE_CACHE_SIZE:
                self.code_cache.popitem(last=False)
        else:
            self.code_cache.move_to_end(key)
        return code, None

    def _start(self, conn, request: dict) -> None:
        clock = Clock()
        code, errors = self._compiled(request)
        if errors:
            self._reply(conn, {"compile_errors": errors})
            return
        if not self.free_slots:
            self._reply(conn, {"engine_error": "too many executions at once"})
            return
        slot = self.free_slots.pop()
        uid = self.jail.uid_for(slot)
        self.counter += 1
        workdir = os.path.join(self.runs_dir, f"run-{slot}-{self.counter}")
        os.mkdir(workdir, 0o700)
        if uid is not None:
            os.chown(workdir, uid, uid)
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            run_child(self.jail, request, code, workdir, uid, write_fd, clock)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        limits = request["limits"]
        max_answer = 2 * (limits["max_output_bytes"] + limits["max_result_bytes"]) + 65536
        job = Job(conn, pid, read_fd, slot, workdir,
                  time.monotonic() + limits["timeout_seconds"], max_answer)
        self.jobs[pid] = job
        self.selector.register(read_fd, selectors.EVENT_READ, ("pipe", job))
        conn.setblocking(False)
        self.selector.register(conn, selectors.EVENT_READ, ("conn", job))

    def _read_pipe(self, job: Job) -> None:
        try:
            chunk = os.read(job.pipe_fd, 1 << 16)
        except BlockingIOError:
            return
        if not chunk:
            self._close_pipe(job)
            self._maybe_finish(job)
            return
        job.size += len(chunk)
        if job.size > job.max_answer:
            job.overflow = True
            self._kill(job)
            self._close_pipe(job)
            return
        job.chunks.append(chunk)

    def _close_pipe(self, job: Job) -> None:
        if job.pipe_open:
            self.selector.unregister(job.pipe_fd)
            os.close(job.pipe_fd)
            job.pipe_open = False

    def _abandon(self, job: Job) -> None:
        """The server closed the connection (it gave up waiting): stop the run."""
        try:
            if job.conn.recv(1, socket.MSG_PEEK):
                return
        except BlockingIOError:
            return
        except OSError:
            pass
        job.abandoned = True
        self._kill(job)

    def _kill(self, job: Job) -> None:
        for kill in (os.killpg, os.kill):  # its group, and itself if it left the group
            try:
                kill(job.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for job in list(self.jobs.values()):
            if job.status is None and now >= job.deadline and not job.timed_out:
                job.timed_out = True
                self._kill(job)

    def _reap(self) -> None:
        for job in list(self.jobs.values()):
            if job.status is not None:
                continue
            try:
                pid, status, rusage = os.wait4(job.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status, rusage = job.pid, 0, None
            if pid == 0:
                continue
            job.status, job.rusage = status, rusage
            self._kill(job)  # anything it started in its group goes with it
            if job.pipe_open:
                # Drain what is already buffered; nobody else can hold the write end now.
                while job.pipe_open:
                    self._read_pipe(job)
                    if job.pipe_open and not self._pipe_has_data(job):
                        self._close_pipe(job)
            self._maybe_finish(job)

    def _pipe_has_data(self, job: Job) -> bool:
        readable, _, _ = select.select([job.pipe_fd], [], [], 0)
        return bool(readable)

    def _maybe_finish(self, job: Job) -> None:
        if job.status is None or job.pipe_open:
            return
        del self.jobs[job.pid]
        self.selector.unregister(job.conn)
        job.conn.setblocking(True)
        status = job.status
        reply = {
            "answer": b"".join(job.chunks).decode("utf-8", "replace") if job.chunks else None,
            "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            "timed_out": job.timed_out, "overflow": job.overflow,
            "cpu_seconds": (job.rusage.ru_utime + job.rusage.ru_stime) if job.rusage else None,
            "max_rss_kb": job.rusage.ru_maxrss if job.rusage else None,
        }
        if not job.abandoned:
            self._reply(job.conn, reply)
        else:
            job.conn.close()
        shutil.rmtree(job.workdir, ignore_errors=True)
        self.free_slots.append(job.slot)

    def _reply(self, conn, reply: dict) -> None:
        try:
            conn.settimeout(10)
            write_frame(conn, json.dumps(reply).encode())
        except OSError:
            pass
        finally:
            conn.close()

    def _shutdown(self) -> None:
        for job in self.jobs.values():
            self._kill(job)
        shutil.rmtree(self.runs_dir, ignore_errors=True)
        os._exit(0)


def warm(packages: list[str]) -> None:
    """Import what hooks may use, load the SDKs' lazy parts, then freeze the heap for COW."""
    for name in sorted(STDLIB_MODULES):
        importlib.import_module(name)
    import RestrictedPython  # noqa: F401 - compiled scripts need its guards loaded
    for package in packages:
        warmup.warm(package)
    gc.collect()
    gc.freeze()  # children do not dirty the shared pages when they collect


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--packages", default="")
    parser.add_argument("--uid-base", type=int, default=61000)
    parser.add_argument("--seccomp", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s zygote %(message)s")
    packages = [p for p in args.packages.split(",") if p]
    started = time.perf_counter()
    warm(packages)
    jail = ProcessJail(args.uid_base, bool(args.seccomp))
    runs_dir = tempfile.mkdtemp(prefix="hookengine-runs-")
    os.chmod(runs_dir, 0o711)  # each run's uid may enter only its own 0700 subdirectory
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(args.socket)
    os.chmod(args.socket, 0o600)
    listener.listen(256)
    ready = {"ready": True, "pid": os.getpid(), "layers": jail.layers(),
             "warm_ms": round((time.perf_counter() - started) * 1000, 1)}
    sys.stdout.write(json.dumps(ready) + "\n")
    sys.stdout.flush()
    Zygote(listener, jail, runs_dir).serve()


if __name__ == "__main__":
    main()
