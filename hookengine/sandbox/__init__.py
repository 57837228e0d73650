"""The sandbox: runs one hook script on one payload, isolated, and returns what happened.

It imports neither Flask nor the store, nor the app's settings, errors or dotenv: a `Job`
carries every limit it runs under. `Sandbox.execute(Job)` hands the job to the zygote, which
forks a locked-down child for it, and turns the reply into a `SandboxResult`.

This module is the package's API (`__all__`): the rest of the engine imports from here, never
from a submodule (tests/test_sandbox_boundary.py checks both rules).
"""

from __future__ import annotations

import json
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from hookengine.clock import utc_now
from hookengine.sandbox.contract import HOOK_FILENAME, LOG_STREAMS, Status, failure
from hookengine.sandbox.deps import allowed_roots
from hookengine.sandbox.egress import EgressDenied, EgressGuard, EgressPolicy
from hookengine.sandbox.isolation import Limits
from hookengine.sandbox.policy import compile_hook
from hookengine.sandbox.problems import Problem
from hookengine.sandbox.protocol import (ANSWER, DATA, END, LINE, PING, PONG, RecordReader,
                                         frame, read_frame)

# The package's API: the rest of the engine imports from here, never from a submodule.
# EgressGuard/EgressDenied: log streams check their endpoints with the hooks' egress rules,
# and the engine's own provider calls (phone delivery) obey the policy too. Problem: what
# compile_hook finds, and the upload rules (hookengine.scripts) report the same way.
__all__ = ["HOOK_FILENAME", "LOG_STREAMS", "EgressDenied", "EgressGuard", "EgressPolicy", "Job",
           "Limits", "Problem", "Sandbox", "SandboxResult", "Sandboxes", "Status",
           "compile_hook", "describe_layers", "failure"]

log = logging.getLogger(__name__)

# Seconds the server waits past the wall-clock limit for the zygote's own verdict.
REPLY_GRACE_SECONDS = 10.0
MAX_FRAME_BYTES = 64 * 1024 * 1024


@dataclass
class Job:
    """Everything one execution needs, and nothing else: no store, no other hook's data."""

    source: str
    entry: str
    params: list[str]
    args: list
    secrets: dict[str, str]
    dependencies: dict[str, str]
    limits: Limits
    egress: EgressPolicy
    max_script_bytes: int  # the zygote compiles the script again under these caps
    max_ast_depth: int
    live_logs: bool = True  # lines leave the child as printed (off: with the answer)
    # An environment's package directory: the hook runs in that environment's zygote and may
    # import the packages it declared as installed there. None: the engine's own packages.
    environment: str | None = None

    def to_request(self) -> bytes:
        return json.dumps({
            "source": self.source, "entry": self.entry, "params": self.params,
            "allowed_roots": sorted(allowed_roots(self.dependencies, self.environment)),
            "limits": self.limits.to_dict(), "egress": self.egress.to_dict(),
            "max_script_bytes": self.max_script_bytes, "max_ast_depth": self.max_ast_depth,
            "live_logs": self.live_logs,
        }).encode()

    def to_payload(self) -> bytes:
        """The second frame, the run's own data: the zygote passes it to the child without
        reading it, so its memory (which every later child copies) never holds secrets."""
        return json.dumps({"args": self.args, "secrets": self.secrets}).encode()


@dataclass
class SandboxResult:
    status: Status
    result: object = None
    error: dict | None = None
    logs: list = field(default_factory=list)
    stats: dict = field(default_factory=dict)


class Sandbox:
    """Owns the zygote process: starts it, restarts it when it dies, sends it jobs.

    `site_dir` is an environment's package directory: the zygote puts it first on its path
    (its packages shadow the engine's own), preloads every package in it, and lets hooks
    read it. Once closed, a sandbox answers runs as failed and is not restarted by them.
    """

    def __init__(self, packages: list[str], uid_base: int = 61000, seccomp: bool = True,
                 namespaces: bool = True, python: str = sys.executable, jail: bool = True,
                 disk_bytes: int = 8 * 1024 * 1024, ca_bundle: str = "",
                 socket_dir: str | None = None, site_dir: str | None = None):
        self.packages = packages
        self.site_dir = site_dir
        self.running = 0  # runs in flight (an idle zygote may be stopped to make room)
        self.closed = False
        self.uid_base = uid_base
        self.seccomp = seccomp
        self.namespaces = namespaces
        self.jail = jail
        self.disk_bytes = disk_bytes
        self.ca_bundle = ca_bundle
        self.python = python
        self.layers: dict = {}
        self.process: subprocess.Popen | None = None
        self._lock = threading.Lock()
        # An empty directory of the caller's (the server's, named after its data directory,
        # so a killed server's is found and removed), or a fresh one. Short: AF_UNIX limit.
        self._dir = socket_dir or tempfile.mkdtemp(prefix="hookengine-zygote-")
        self.socket_path = os.path.join(self._dir, "zygote.sock")

    def start(self) -> "Sandbox":
        with self._lock:
            self.closed = False
            self._start_locked()
        return self

    def start_once(self) -> "Sandbox":
        """Start the zygote unless it runs already (callers racing here start one)."""
        with self._lock:
            if not self.closed and (self.process is None or self.process.poll() is not None):
                self._start_locked()
        return self

    def _start_locked(self) -> None:
        if self.process is not None:  # a dead zygote: reap it and close its pipes
            self.process.kill()
            self.process.wait()
            self.process.stdin.close()
            self.process.stdout.close()
        os.makedirs(self._dir, 0o700, exist_ok=True)  # removed by an earlier close()
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        # exec, not fork: the zygote must not inherit the server's memory (keys, database)
        # or its environment. It gets only what the interpreter needs to find packages.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
               "MALLOC_ARENA_MAX": "2", "PYTHONDONTWRITEBYTECODE": "1"}
        if os.environ.get("PYTHONPATH"):
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        self.process = subprocess.Popen(
            [self.python, "-I", "-m", "hookengine.sandbox.zygote", "--socket",
             self.socket_path, "--packages", ",".join(self.packages),
             "--uid-base", str(self.uid_base), "--seccomp", str(int(self.seccomp)),
             "--namespaces", str(int(self.namespaces)), "--jail", str(int(self.jail)),
             "--disk-bytes", str(self.disk_bytes), "--ca-bundle", self.ca_bundle,
             "--site", self.site_dir or ""],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=self._dir,
            close_fds=True, start_new_session=True)
        line = self.process.stdout.readline()
        try:
            ready = json.loads(line)
        except ValueError:
            self.process.kill()
            raise RuntimeError(f"the sandbox zygote failed to start: {line!r}") from None
        self.layers = ready["layers"]
        log.info("Sandbox zygote %s ready in %s ms; layers: %s", ready["pid"],
                 ready["warm_ms"], describe_layers(self.layers))

    def _ensure_running(self) -> None:
        with self._lock:
            if self.closed:
                return
            if self.process is None or self.process.poll() is not None:
                log.warning("Sandbox zygote is not running; restarting it")
                self._start_locked()

    def execute(self, job: Job, on_lines=None) -> SandboxResult:
        """Run the job in a fresh child; every outcome is a result, never an exception.

        The lines the hook prints go to `on_lines` in batches while it runs; lines still
        held when it ends are the result's `logs`.
        """
        with self._lock:
            self.running += 1
        try:
            return self._execute(job, on_lines)
        finally:
            with self._lock:
                self.running -= 1

    def _execute(self, job: Job, on_lines) -> SandboxResult:
        self._ensure_running()
        if self.closed:
            return _failed(Status.KILLED, "SandboxError",
                           "the sandbox was stopped before the run could start")
        output = Output()
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.monotonic() + job.limits.timeout_seconds + REPLY_GRACE_SECONDS
        try:
            conn.settimeout(REPLY_GRACE_SECONDS)
            conn.connect(self.socket_path)
            try:
                conn.sendall(frame(job.to_request()) + frame(job.to_payload()))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the zygote answered before reading it all (a compile error): read on
            end = _receive(conn, output, deadline, on_lines)
        except socket.timeout:
            end = None
            reason = "the sandbox did not answer in time; the run was stopped"
        except OSError as error:
            end = None
            reason = f"the sandbox process stopped during the run ({error}); it was restarted"
        else:
            reason = "the sandbox process stopped during the run; it was restarted"
        finally:
            conn.close()
        if end is None:
            self._ensure_running()
            result = _failed(Status.KILLED, "SandboxError", reason)
        else:
            result = interpret(end, output.answer, job.limits)
        result.logs = output.finish()
        return result

    def ping(self, timeout: float) -> None:
        """Check that the zygote answers, without restarting it when it does not (that is
        `ensure_running`'s job); raises OSError saying what is wrong."""
        process = self.process
        if process is None or process.poll() is not None:
            raise ConnectionRefusedError("the zygote process is not running")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(self.socket_path)
            conn.sendall(frame(PING))
            reply = read_frame(conn, limit=len(PONG))
        if reply != PONG:
            raise ConnectionError("the zygote closed the connection without answering")

    def ensure_running(self) -> None:
        """Restart the zygote if it died (runs do this themselves before they start)."""
        self._ensure_running()

    def close(self) -> None:
        with self._lock:
            self.closed = True
            if self.process and self.process.poll() is None:
                self.process.stdin.close()  # the lifeline: the zygote exits and kills its runs
                try:
                    self.process.wait(5)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait()
            if self.process:
                self.process.stdout.close()
            shutil.rmtree(self._dir, ignore_errors=True)


class Sandboxes:
    """The engine's zygotes: one with every allowed SDK preloaded, a small one for hooks
    that declare no dependencies, and one per environment in use. Forking costs in
    proportion to the zygote's memory (70 MB with the SDKs, ~20 without), so dependency-free
    hooks start several ms sooner. Each is started on first use (a command that runs nothing
    needs none) or by `start()`.

    Environment zygotes (`environment`: a package directory) are started on first use and
    kept for every later hook on that environment, at most `max_environments` of them and,
    with `environments_max_mb`, within that much resident memory in all. To make room the
    least recently used *idle* one is stopped: never one with a run in flight. When every
    one is busy the new one starts anyway and the excess is stopped as soon as runs end.
    Runs are counted in flight from the moment `execute` picks the zygote; a zygote taken
    from `for_dependencies` is counted only once its own `execute` starts (one stopped in
    between answers that run as failed, never a hang).

    uids: full = base, bare = base + SLOTS, environment slot i = base + SLOTS * (2 + i),
    a slot reused only once the zygote that had it has exited.

    `shared` (tests) is one running zygote that serves every hook without an environment,
    and is not closed here. `socket_dirs` ({kind: directory}) are the server's own, which
    its next start cleans up (environment zygotes get directories inside the "bare" one).
    """

    def __init__(self, packages: list[str], uid_base: int = 61000, shared: Sandbox | None = None,
                 socket_dirs: dict[str, str] | None = None, max_environments: int = 4,
                 environments_max_mb: int = 0, **options):
        from hookengine.sandbox.zygote import SLOTS

        dirs = socket_dirs or {}
        self._options = {  # each zygote its own range of uids: runs never share one
            "full": dict(options, packages=packages, uid_base=uid_base,
                         socket_dir=dirs.get("full")),
            "bare": dict(options, packages=[], uid_base=uid_base + SLOTS,
                         socket_dir=dirs.get("bare"))}
        self._zygotes = {"full": shared, "bare": shared}
        self._owned = shared is None
        self._lock = threading.Lock()
        self._environment_options = dict(options, packages=[])
        self._environment_uid = lambda slot: uid_base + SLOTS * (2 + slot)
        self._environment_sockets = dirs.get("bare")
        self.max_environments = max(1, max_environments)
        self.environments_max_mb = environments_max_mb
        self._environments: OrderedDict[str, _Environment] = OrderedDict()  # least recent first
        self._stopping: set[int] = set()  # slots of zygotes being stopped: not yet free

    def for_dependencies(self, dependencies: dict, environment: str | None = None) -> Sandbox:
        """The zygote a hook with these dependencies (in this environment) runs in."""
        if environment is None:
            return self._zygote("full" if dependencies else "bare")
        entry = self._claim(environment)
        self._release(entry)
        return entry.sandbox

    def execute(self, job: Job, on_lines=None) -> SandboxResult:
        """Run the job in its zygote (by its dependencies and environment), counted in
        flight all the while so that no other environment's start stops it."""
        if job.environment is None:
            return self.for_dependencies(job.dependencies).execute(job, on_lines)
        try:
            entry = self._claim(job.environment)
        except (OSError, RuntimeError) as error:
            return _failed(Status.KILLED, "SandboxError",
                           f"the environment's sandbox could not start: {error}")
        try:
            return entry.sandbox.execute(job, on_lines)
        finally:
            self._release(entry)

    def start(self) -> "Sandboxes":
        for kind in self._zygotes:
            self._zygote(kind)
        return self

    @property
    def layers(self) -> dict:
        return self._zygote("full").layers

    def started(self) -> dict[str, Sandbox]:
        """The zygotes started so far, by kind (a shared one counts once); an environment's
        is `env<slot>-<start of its directory's name>`."""
        started: dict[str, Sandbox] = {}
        for kind, zygote in self._zygotes.items():
            if zygote is not None and all(zygote is not z for z in started.values()):
                started[kind] = zygote
        with self._lock:
            entries = list(self._environments.values())
        for entry in entries:
            if entry.sandbox.process is not None:
                started[f"env{entry.slot}-{os.path.basename(entry.site)[:12]}"] = entry.sandbox
        return started

    def _zygote(self, kind: str) -> Sandbox:
        if self._zygotes[kind] is None:
            with self._lock:
                if self._zygotes[kind] is None:
                    self._zygotes[kind] = Sandbox(**self._options[kind]).start()
        return self._zygotes[kind]

    def _claim(self, environment: str) -> "_Environment":
        """The environment's zygote, running, with one more run counted on it. Concurrent
        first uses start one zygote: the others wait for it on the sandbox's lock."""
        site = os.path.abspath(environment)
        with self._lock:
            known = site in self._environments
        if not known:
            self._trim(room=1)  # first: the slot freed (and its memory) goes to the new one
        with self._lock:
            entry = self._environments.get(site)
            if entry is None:
                used = {e.slot for e in self._environments.values()} | self._stopping
                slot = next(i for i in range(len(used) + 1) if i not in used)
                socket_dir = (tempfile.mkdtemp(prefix=f"env{slot}-", dir=self._environment_sockets)
                              if self._environment_sockets else None)
                entry = _Environment(site, slot, Sandbox(**dict(
                    self._environment_options, uid_base=self._environment_uid(slot),
                    socket_dir=socket_dir, site_dir=site)))
                self._environments[site] = entry
            self._environments.move_to_end(site)
            entry.claims += 1
        try:
            entry.sandbox.start_once()
        except BaseException:
            self._release(entry)
            raise
        self._trim()  # the new one's memory counts now
        return entry

    def _release(self, entry: "_Environment") -> None:
        with self._lock:
            entry.claims -= 1
        self._trim()

    def _trim(self, room: int = 0) -> None:
        """Stop least recently used idle environment zygotes while there are more than
        `max_environments` (less `room` for new ones) or they hold more than
        `environments_max_mb`. The most recently used one is never stopped here."""
        with self._lock:
            entries = list(self._environments.values())
            # The most recent one stays (unless a new one is to come): a caller is about to
            # use it.
            candidates = entries if room else entries[:-1]
            idle = [e for e in candidates if e.claims == 0 and e.sandbox.running == 0]
            victims = idle[:max(0, len(entries) + room - self.max_environments)]
            if self.environments_max_mb:
                total = sum(_rss_mb(e.sandbox) for e in entries if e not in victims)
                for entry in idle:
                    if total <= self.environments_max_mb:
                        break
                    if entry not in victims:
                        victims.append(entry)
                        total -= _rss_mb(entry.sandbox)
            for entry in victims:
                del self._environments[entry.site]
                self._stopping.add(entry.slot)
        for entry in victims:
            log.info("Stopping the zygote of environment %s (least recently used)", entry.site)
            try:
                entry.sandbox.close()
            finally:
                with self._lock:
                    self._stopping.discard(entry.slot)

    def close(self) -> None:
        with self._lock:
            entries = list(self._environments.values())
            self._environments.clear()
        for entry in entries:
            entry.sandbox.close()
        if self._owned:
            for zygote in self.started().values():
                zygote.close()


@dataclass(eq=False)
class _Environment:
    """An environment's zygote, its slot (its range of uids), and the runs counted on it."""

    site: str
    slot: int
    sandbox: Sandbox
    claims: int = 0


def _rss_mb(sandbox: Sandbox) -> float:
    """The zygote process's resident memory (VmRSS), in MB; 0 when it is not running."""
    process = sandbox.process
    try:
        with open(f"/proc/{process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (AttributeError, OSError, ValueError):
        pass
    return 0.0


def describe_layers(layers: dict) -> str:
    """The active layers in one line, e.g. 'rlimits, seccomp, private_tmp=/var/tmp,/dev/shm'."""
    return ", ".join(k if v is True else f"{k}={','.join(v)}"
                     for k, v in layers.items() if v)


class Output:
    """What a child wrote, read as it arrives: its log lines, then its answer."""

    def __init__(self):
        self.reader = RecordReader()
        self.pending: list[dict] = []
        self.answer: str | None = None
        self.unreadable = 0

    def feed(self, data: bytes) -> None:
        from hookengine.sandbox.contract import read_line  # hook-controlled text: read there

        for kind, payload in self.reader.feed(data):
            text = payload.decode("utf-8", "replace")
            if kind == ANSWER and self.answer is None:
                self.answer = text
                continue
            try:
                if kind != LINE or self.answer is not None:
                    raise ValueError("not a line")
                self.pending.append(read_line(text))
            except ValueError:
                self.unreadable += 1

    def take(self) -> list[dict]:
        lines, self.pending = self.pending, []
        return lines

    def finish(self) -> list[dict]:
        """The lines not yet taken, with a note of any that could not be read."""
        if self.unreadable or self.reader.partial:
            self.pending.append({"time": utc_now(), "stream": "engine", "message": (
                f"[{self.unreadable + self.reader.partial} record(s) the hook process wrote "
                "could not be read and were dropped]")})
        return self.take()


def _receive(conn: socket.socket, output: Output, deadline: float, on_lines) -> dict | None:
    """Read the zygote's frames until its last; None when it went away first."""
    poller = select.poll()
    poller.register(conn, select.POLLIN)
    while True:
        # Lines are handed on only when nothing more is waiting: a burst (or a whole run
        # that ended at once) is one batch, so a quick run costs no extra store write.
        if output.pending and on_lines is not None and not poller.poll(0):
            on_lines(output.take())
        conn.settimeout(max(0.001, deadline - time.monotonic()))
        data = read_frame(conn, limit=MAX_FRAME_BYTES)
        if data is None:
            return None
        if data[:1] == DATA:
            output.feed(data[1:])
        elif data[:1] == END:
            return json.loads(data[1:])


def interpret(end: dict, answer: str | None, limits: Limits) -> SandboxResult:
    """Turn how the child ended (the zygote's last frame) and its answer into a result."""
    if "compile_errors" in end:
        problems = end["compile_errors"]
        return SandboxResult(Status.ERROR, error=failure(
            "CompileError", "; ".join(problems), "\n".join(["CompileError:", *problems])))
    if "engine_error" in end:
        return _failed(Status.KILLED, "SandboxError", end["engine_error"])
    # From the kernel's rusage when the zygote reaped the child before answering; a complete
    # answer carries the child's own figures instead.
    stats = {} if end.get("cpu_seconds") is None else {
        "cpu_ms": round(end["cpu_seconds"] * 1000, 3), "max_rss_kb": end.get("max_rss_kb")}
    signal_number = end.get("signal")
    if end.get("timed_out"):
        result = _failed(Status.TIMEOUT, "TimeoutError",
                         f"the hook ran longer than the {limits.timeout_seconds:g} s "
                         "wall-clock limit and was stopped")
    elif signal_number == signal.SIGXCPU or signal_number == signal.SIGKILL and \
            (end.get("cpu_seconds") or 0) >= limits.cpu_seconds * 0.5:
        # A SIGKILL the zygote did not send is the kernel's RLIMIT_CPU (hook processes cannot
        # signal each other). rusage's tick-based CPU time reads up to a quarter low on this
        # kind of virtual machine, so the check only rules out a crash early in the run.
        result = _failed(Status.TIMEOUT, "TimeoutError",
                         f"the hook used its {limits.cpu_seconds} s of CPU time and was stopped")
    elif end.get("overflow"):
        result = _failed(Status.KILLED, "OutputLimitError",
                         "the hook process wrote more than its output and result limits allow")
    elif signal_number is not None:
        result = _failed(Status.KILLED, "ProcessKilled",
                         f"the hook process was killed by {signal.Signals(signal_number).name}"
                         " (a crash in native code, or a limit the kernel enforces)")
    else:
        result = _parse_answer(answer)
    result.stats.update(stats)
    return result


def _parse_answer(answer: str | None) -> SandboxResult:
    """The child's answer; text that cannot be read is the run's error, never an exception."""
    from hookengine.sandbox.contract import read_answer  # hook-controlled text: read it there

    if not answer:
        return _failed(Status.KILLED, "ProcessKilled", "the hook process ended without an answer")
    try:
        data = read_answer(answer)
    except ValueError as error:
        return _failed(Status.ERROR, "AnswerError", f"the hook's answer could not be read: {error}")
    return SandboxResult(data["status"], result=data["result"], error=data["error"],
                         stats=dict(data["stats"]))


def _failed(status: Status, name: str, message: str) -> SandboxResult:
    return SandboxResult(status, error=failure(name, message))
