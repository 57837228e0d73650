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
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field

from hookengine.sandbox.contract import HOOK_FILENAME
from hookengine.sandbox.deps import allowed_roots
from hookengine.sandbox.egress import EgressPolicy
from hookengine.sandbox.isolation import Limits
from hookengine.sandbox.policy import compile_hook
from hookengine.sandbox.protocol import PING, PONG, frame, read_frame

# The package's API: the rest of the engine imports from here, never from a submodule.
__all__ = ["HOOK_FILENAME", "EgressPolicy", "Job", "Limits", "Sandbox", "SandboxResult",
           "compile_hook", "describe_layers"]

log = logging.getLogger(__name__)

STATUSES = ("success", "error", "timeout", "memory_limit", "killed")
# Seconds the server waits past the wall-clock limit for the zygote's own verdict.
REPLY_GRACE_SECONDS = 10.0


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

    def to_request(self) -> bytes:
        return json.dumps({
            "source": self.source, "entry": self.entry, "params": self.params,
            "allowed_roots": sorted(allowed_roots(self.dependencies)),
            "limits": self.limits.to_dict(), "egress": self.egress.to_dict(),
            "max_script_bytes": self.max_script_bytes, "max_ast_depth": self.max_ast_depth,
        }).encode()

    def to_payload(self) -> bytes:
        """The second frame, the run's own data: the zygote passes it to the child without
        reading it, so its memory (which every later child copies) never holds secrets."""
        return json.dumps({"args": self.args, "secrets": self.secrets}).encode()


@dataclass
class SandboxResult:
    status: str
    result: object = None
    error: dict | None = None
    logs: list = field(default_factory=list)
    stats: dict = field(default_factory=dict)


class Sandbox:
    """Owns the zygote process: starts it, restarts it when it dies, sends it jobs."""

    def __init__(self, packages: list[str], uid_base: int = 61000, seccomp: bool = True,
                 namespaces: bool = True, python: str = sys.executable, jail: bool = True,
                 disk_bytes: int = 8 * 1024 * 1024, ca_bundle: str = "",
                 socket_dir: str | None = None):
        self.packages = packages
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
            self._start_locked()
        return self

    def _start_locked(self) -> None:
        if self.process is not None:  # a dead zygote: reap it and close its pipes
            self.process.kill()
            self.process.wait()
            self.process.stdin.close()
            self.process.stdout.close()
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
             "--disk-bytes", str(self.disk_bytes), "--ca-bundle", self.ca_bundle],
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
            if self.process is None or self.process.poll() is not None:
                log.warning("Sandbox zygote is not running; restarting it")
                self._start_locked()

    def execute(self, job: Job) -> SandboxResult:
        """Run the job in a fresh child; every outcome is a result, never an exception."""
        self._ensure_running()
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.settimeout(job.limits.timeout_seconds + REPLY_GRACE_SECONDS)
            conn.connect(self.socket_path)
            try:
                conn.sendall(frame(job.to_request()) + frame(job.to_payload()))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the zygote answered before reading it all (a compile error): read on
            payload = read_frame(conn, limit=64 * 1024 * 1024)
        except socket.timeout:
            payload = None
            reason = "the sandbox did not answer in time; the run was stopped"
        except OSError as error:
            payload = None
            reason = f"the sandbox process stopped during the run ({error}); it was restarted"
        else:
            reason = "the sandbox process stopped during the run; it was restarted"
        finally:
            conn.close()
        if payload is None:
            self._ensure_running()
            return SandboxResult("killed", error={"name": "SandboxError", "message": reason,
                                                  "stack": ""})
        return interpret(json.loads(payload), job.limits)

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


def describe_layers(layers: dict) -> str:
    """The active layers in one line, e.g. 'rlimits, seccomp, private_tmp=/var/tmp,/dev/shm'."""
    return ", ".join(k if v is True else f"{k}={','.join(v)}"
                     for k, v in layers.items() if v)


def interpret(reply: dict, limits: Limits) -> SandboxResult:
    """Turn the zygote's reply (how the child ended, what it wrote) into a result."""
    if "compile_errors" in reply:
        return _failed("error", "CompileError", "; ".join(reply["compile_errors"]))
    if "engine_error" in reply:
        return _failed("killed", "SandboxError", reply["engine_error"])
    # From the kernel's rusage when the zygote reaped the child before answering; a complete
    # answer carries the child's own figures instead.
    stats = {} if reply.get("cpu_seconds") is None else {
        "cpu_ms": round(reply["cpu_seconds"] * 1000, 3), "max_rss_kb": reply.get("max_rss_kb")}
    signal_number = reply.get("signal")
    if reply.get("timed_out"):
        result = _failed("timeout", "TimeoutError",
                         f"the hook ran longer than the {limits.timeout_seconds:g} s "
                         "wall-clock limit and was stopped")
    elif signal_number == signal.SIGXCPU or signal_number == signal.SIGKILL and \
            (reply.get("cpu_seconds") or 0) >= limits.cpu_seconds * 0.5:
        # A SIGKILL the zygote did not send is the kernel's RLIMIT_CPU (hook processes cannot
        # signal each other). rusage's tick-based CPU time reads up to a quarter low on this
        # kind of virtual machine, so the check only rules out a crash early in the run.
        result = _failed("timeout", "TimeoutError",
                         f"the hook used its {limits.cpu_seconds} s of CPU time and was stopped")
    elif reply.get("overflow"):
        result = _failed("killed", "OutputLimitError",
                         "the hook process wrote more than its output and result limits allow")
    elif signal_number is not None:
        result = _failed("killed", "ProcessKilled",
                         f"the hook process was killed by {signal.Signals(signal_number).name}"
                         " (a crash in native code, or a limit the kernel enforces)")
    else:
        result = _parse_answer(reply.get("answer"))
    result.stats.update(stats)
    return result


def _parse_answer(answer: str | None) -> SandboxResult:
    """The child's answer; text that cannot be read is the run's error, never an exception."""
    from hookengine.sandbox.contract import read_answer  # hook-controlled text: read it there

    if not answer:
        return _failed("killed", "ProcessKilled", "the hook process ended without an answer")
    try:
        data = read_answer(answer)
    except ValueError as error:
        return _failed("error", "AnswerError", f"the hook's answer could not be read: {error}")
    if data["status"] not in STATUSES:
        return _failed("error", "AnswerError", "the hook's answer could not be read: its "
                       f"status is not one of {', '.join(STATUSES)}")
    return SandboxResult(data["status"], result=data["result"], error=data["error"],
                         logs=data["logs"], stats=dict(data["stats"]))


def _failed(status: str, name: str, message: str) -> SandboxResult:
    return SandboxResult(status, error={"name": name, "message": message, "stack": ""})
