"""The zygote: a secret-free, single-threaded process that forks one child per execution.

It is started with exec (never forked from the server), so it holds none of the server's
memory: no secret key, no database. It imports and warms the allowed SDKs once, caches
compiled scripts by hash, and for each request forks a child, enforces its wall-clock limit,
passes on what the child writes as it writes it, reaps it and says how it ended.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib
import json
import logging
import os
import selectors
import shutil
import signal
import socket
import sys
import time
from collections import OrderedDict, deque

from hookengine.sandbox import warmup
from hookengine.sandbox.child import encode_job, prepare_rehearsal, run_spare
from hookengine.sandbox.contract import HOOK_FILENAME
from hookengine.sandbox.isolation import ProcessJail
from hookengine.sandbox.policy import C_LEVEL_IMPORTS, STDLIB_MODULES, compile_hook
from hookengine.sandbox.protocol import (DATA, END, PING, RecordScanner, frame, read_frame,
                                         splice_frame, write_all, write_frame)

log = logging.getLogger("hookengine.zygote")

SLOTS = 1000          # uids per zygote: the last is the broker's, the rest one per run
BROKER_SLOT = SLOTS - 1
CODE_CACHE_SIZE = 256
# Children forked ahead of need and already locked down: a run pays neither fork nor setup.
SPARES = 2
# How long passing a child's output on to the server may block this loop before the run is
# given up on. The connection's send buffer is sized to hold a whole run's output, so only
# a server that stopped reading ever waits this long.
FORWARD_SECONDS = 5.0

class Child:
    """A forked child: a spare until it is given a job, then that job's run. Never reused."""

    def __init__(self, pid: int, job_fd: int, answer_fd: int, slot: int, workdir: str,
                 broker_end=None):
        self.pid, self.job_fd, self.answer_fd = pid, job_fd, answer_fd
        self.slot, self.workdir = slot, workdir
        self.broker_end = broker_end  # handed to the broker with the job's egress policy
        self.conn = None           # the server's connection, once the child has a job
        self.deadline = None
        self.max_answer = 0
        self.scanner = RecordScanner()  # record boundaries only: the bytes are passed on
        self.size = 0
        self.overflow = self.timed_out = self.abandoned = self.replied = False
        self.status = self.rusage = None
        self.answer_open = True


class Zygote:
    """The event loop: accept requests, hand each to a spare child, answer, reap, refill."""

    def __init__(self, listener: socket.socket, jail: ProcessJail, spares: int = SPARES):
        self.listener = listener
        self.jail = jail
        self.pool_size = spares
        self.selector = selectors.DefaultSelector()
        self.children: dict[int, Child] = {}  # every live child, by pid
        self.spares: list[Child] = []
        # Taken from the front, returned to the back: a uid comes round again only after
        # every other one has served, so no run meets files or processes of the last one.
        self.free_slots = deque(range(BROKER_SLOT))
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
            try:
                self._refill()
            except OSError:  # no fork now (EAGAIN, ENOMEM): runs fork on demand, or fail alone
                log.exception("zygote: cannot fork a spare")
            for key, _ in self.selector.select(self._next_timeout()):
                try:
                    self._dispatch(key, wake_r)
                except Exception:  # one bad event must never stop every other run
                    log.exception("zygote: error handling %r", key.data)
            self._enforce_deadlines()
            self._reap()

    def _dispatch(self, key, wake_r: int) -> None:
        if key.data == "accept":
            self._accept()
        elif key.data == "wake":
            os.read(wake_r, 4096)
        elif key.data == "lifeline":
            if not os.read(sys.stdin.fileno(), 4096):
                self._shutdown()  # the server is gone: so are we and our children
        elif key.data[0] == "answer":
            self._read_answer(key.data[1])
        elif key.data[0] == "conn":
            self._abandon(key.data[1])

    def _next_timeout(self):
        if self._wants_spare():
            return 0  # more spares to fork: come straight back after polling
        deadlines = [c.deadline for c in self.children.values() if c.deadline is not None]
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.monotonic())

    def _refill(self) -> None:
        """Fork spares ahead of need, but only while no run waits for its answer.

        A fork of this process costs a few milliseconds; done while a run is in flight it
        would delay that run's reply, which is the latency spares exist to remove.
        """
        # One per loop turn: a request arriving meanwhile is served before the next fork.
        if self._wants_spare():
            self.spares.append(self._fork())

    def _wants_spare(self) -> bool:
        busy = any(c.conn is not None and not c.replied for c in self.children.values())
        return not busy and len(self.spares) < self.pool_size and len(self.free_slots) > 1

    def _fork(self) -> Child:
        slot = self.free_slots.popleft()
        uid = self.jail.uid_for(slot)
        self.counter += 1
        workdir = self.jail.workdir_for(f"run-{slot}-{self.counter}")
        fds: list[int] = []
        hook_end = broker_end = None
        try:
            if self.jail.broker is not None:
                hook_end, broker_end = self.jail.broker.pair()
            if self.jail.host_workdir:
                os.mkdir(workdir, 0o700)
                if uid is not None:
                    os.chown(workdir, uid, uid)
            job_r, job_w = os.pipe()
            fds += [job_r, job_w]
            answer_r, answer_w = os.pipe()
            fds += [answer_r, answer_w]
            parent = os.getpid()
            pid = os.fork()
        except OSError:
            for fd in fds:
                os.close(fd)
            for end in (hook_end, broker_end):
                if end is not None:
                    end.close()
            if self.jail.host_workdir:
                shutil.rmtree(workdir, ignore_errors=True)
            self.free_slots.append(slot)
            raise
        if pid == 0:  # pragma: no cover - the child
            run_spare(self.jail, job_r, answer_w, workdir, uid, parent,
                      hook_end.fileno() if hook_end is not None else None)
        os.close(job_r)
        os.close(answer_w)
        if hook_end is not None:
            hook_end.close()
        os.set_blocking(answer_r, False)
        child = self.children[pid] = Child(pid, job_w, answer_r, slot, workdir, broker_end)
        self.selector.register(answer_r, selectors.EVENT_READ, ("answer", child))
        return child

    def _accept(self) -> None:
        conn, _ = self.listener.accept()
        conn.settimeout(10)
        try:
            started = time.perf_counter()
            request = read_frame(conn)
            if request is None:
                conn.close()
                return
            if request == PING:  # a health check: the loop is turning; nothing else to do
                self._reply(conn, {"pong": True})
                return
            self._start(conn, request, started)
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

    def _start(self, conn, request: bytes, started: float) -> None:
        job = json.loads(request)
        code, errors = self._compiled(job)
        if errors:
            self._reply(conn, {"compile_errors": errors})
            return
        if not self.spares and len(self.free_slots) < 1:
            self._reply(conn, {"engine_error": "too many executions at once"})
            return
        child = self.spares.pop(0) if self.spares else self._fork()
        limits = job["limits"]
        child.conn = conn
        child.deadline = time.monotonic() + limits["timeout_seconds"]
        # JSON escaping can double text, and each capped log line carries its time and stream.
        child.max_answer = 4 * (limits["max_output_bytes"] + limits["max_result_bytes"]) + 65536
        try:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, child.max_answer)
        except OSError:
            pass  # the default buffer: forwarding may wait on the server now and then
        try:
            write_all(child.job_fd, encode_job(started, request, code))
            # The run's arguments and secrets go from the connection to the child's pipe
            # inside the kernel: never read here, where every later child would inherit them.
            splice_frame(conn, child.job_fd)
        except (OSError, ValueError):
            pass  # the child died as a spare: its reaping answers this request as killed
        try:
            # After the job, so the hook starts first: a request it sends the broker waits
            # in the socket until the broker has its end and policy.
            if child.broker_end is not None:
                self.jail.broker.grant(child.broker_end, job["egress"])
                child.broker_end = None
        except OSError:
            log.exception("zygote: could not hand a run to the broker")
        os.close(child.job_fd)
        conn.setblocking(False)
        self.selector.register(conn, selectors.EVENT_READ, ("conn", child))

    def _read_answer(self, child: Child) -> None:
        if not child.answer_open:  # a stale event: its descriptor may belong to another now
            return
        try:
            chunk = os.read(child.answer_fd, 1 << 16)
        except BlockingIOError:
            return
        if not chunk:
            self._close_answer(child)
            if child.scanner.answered:  # a complete answer is final: reply before reaping
                self._end(child, {})
            return
        child.size += len(chunk)
        if child.size > max(child.max_answer, 1):
            child.overflow = True
            self._kill(child)
            self._close_answer(child)
            return
        child.scanner.feed(chunk)
        self._forward(child, DATA + chunk)

    def _forward(self, child: Child, data: bytes) -> None:
        """Pass a child's bytes on to the server now: it shows them while the run goes on."""
        if child.conn is None or child.replied:
            return  # a spare's stray bytes, or a run already answered
        try:
            child.conn.settimeout(FORWARD_SECONDS)
            child.conn.sendall(frame(data))
            child.conn.setblocking(False)
        except OSError:  # the server stopped reading: it gave up on the run
            child.abandoned = True
            self._kill(child)
            self._finish_conn(child, None)

    def _close_answer(self, child: Child) -> None:
        if child.answer_open:
            self.selector.unregister(child.answer_fd)
            os.close(child.answer_fd)
            child.answer_open = False

    def _end(self, child: Child, how: dict) -> None:
        """The run's last frame: how the child ended (empty when its answer says it all)."""
        if child.conn is not None and not child.replied:
            self._finish_conn(child, how)

    def _abandon(self, child: Child) -> None:
        """The server closed the connection (it gave up waiting): stop the run."""
        if child.replied:  # a stale event: the answer went out earlier in this same batch
            return
        try:
            if child.conn.recv(1, socket.MSG_PEEK):
                return
        except BlockingIOError:
            return
        except OSError:
            pass
        child.abandoned = True
        self._kill(child)
        self._finish_conn(child, None)

    def _kill(self, child: Child) -> None:
        for kill in (os.killpg, os.kill):  # its group, and itself if it left the group
            try:
                kill(child.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for child in list(self.children.values()):
            if (child.deadline is not None and child.status is None and not child.replied
                    and now >= child.deadline and not child.timed_out):
                child.timed_out = True
                self._kill(child)

    def _reap(self) -> None:
        for child in list(self.children.values()):
            try:
                pid, status, rusage = os.wait4(child.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status, rusage = child.pid, 0, None
            if pid == 0:
                continue
            child.status, child.rusage = status, rusage
            self._kill(child)  # anything it started in its group goes with it
            while child.answer_open:  # drain what is buffered; nobody holds the write end now
                before = child.size
                self._read_answer(child)
                if child.answer_open and child.size == before:
                    self._close_answer(child)
            self._retire(child)

    def _retire(self, child: Child) -> None:
        del self.children[child.pid]
        if child.broker_end is not None:
            child.broker_end.close()
        if child in self.spares:
            self.spares.remove(child)
            os.close(child.job_fd)
        elif child.conn is not None and not child.replied:
            status = child.status
            self._end(child, {
                "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                "timed_out": child.timed_out, "overflow": child.overflow,
                "cpu_seconds": (child.rusage.ru_utime + child.rusage.ru_stime)
                if child.rusage else None,
                "max_rss_kb": child.rusage.ru_maxrss if child.rusage else None,
            })
        if self.jail.host_workdir:
            shutil.rmtree(child.workdir, ignore_errors=True)
        self.free_slots.append(child.slot)

    def _finish_conn(self, child: Child, reply: dict | None) -> None:
        child.replied = True
        self.selector.unregister(child.conn)
        child.conn.setblocking(True)
        if reply is None:
            child.conn.close()
        else:
            self._reply(child.conn, reply)

    def _reply(self, conn, reply: dict) -> None:
        try:
            conn.settimeout(10)
            write_frame(conn, END + json.dumps(reply).encode())
        except OSError:
            pass
        finally:
            conn.close()

    def _shutdown(self) -> None:
        for child in self.children.values():
            self._kill(child)
        if self.jail.broker is not None:
            self.jail.broker.stop()
        if self.jail.runs_dir is not None:
            shutil.rmtree(self.jail.runs_dir, ignore_errors=True)
        os._exit(0)


def warm(packages: list[str]) -> None:
    """Import what hooks may use, load the SDKs' lazy parts, then freeze the heap for COW.

    An environment's own packages are not imported here: they come from an index, and the
    zygote is root and not yet jailed, so their import-time code would run on the host with
    every privilege. A hook imports them in its locked-down child (from bytecode compiled at
    install); only the engine's own, vetted SDKs are preloaded."""
    for name in sorted(STDLIB_MODULES | C_LEVEL_IMPORTS):
        importlib.import_module(name)
    import RestrictedPython  # noqa: F401 - compiled scripts need its guards loaded
    for package in packages:
        warmup.warm(package)
    prepare_rehearsal()
    gc.collect()
    gc.freeze()  # children do not dirty the shared pages when they collect


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--socket", required=True)
    parser.add_argument("--packages", default="")
    parser.add_argument("--uid-base", type=int, default=61000)
    parser.add_argument("--seccomp", type=int, default=1)
    parser.add_argument("--namespaces", type=int, default=1)
    parser.add_argument("--jail", type=int, default=1)
    parser.add_argument("--disk-bytes", type=int, default=8 * 1024 * 1024)
    parser.add_argument("--ca-bundle", default="")
    parser.add_argument("--site", default="", help="an environment's package directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s zygote %(message)s")
    packages = [p for p in args.packages.split(",") if p]
    started = time.perf_counter()
    if args.site:
        # First on the path: the environment's packages shadow the engine's own (its twilio 8
        # wins over the engine's 9). Children inherit the path; the jail lets them read it.
        sys.path.insert(0, os.path.abspath(args.site))
    warm(packages)
    jail = ProcessJail(args.uid_base, bool(args.seccomp), bool(args.namespaces),
                       bool(args.jail), args.disk_bytes, args.ca_bundle,
                       site=os.path.abspath(args.site) if args.site else None)
    # Bound before the jail starts: the socket lives in the host's tree, which the zygote
    # leaves. Its directory is the server's to remove, so the jail's mount point goes there.
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(args.socket)
    os.chmod(args.socket, 0o600)
    listener.listen(256)
    jail.start(jail.uid_for(BROKER_SLOT), os.path.dirname(args.socket))
    ready = {"ready": True, "pid": os.getpid(), "layers": jail.layers(),
             "warm_ms": round((time.perf_counter() - started) * 1000, 1)}
    sys.stdout.write(json.dumps(ready) + "\n")
    sys.stdout.flush()
    Zygote(listener, jail).serve()


if __name__ == "__main__":
    main()
