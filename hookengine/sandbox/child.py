"""One execution inside a forked child: lock down, wait for the job, run it, answer, exit."""

from __future__ import annotations

import json
import marshal
import os
import random
import resource
import signal
import socket
import struct
import sys

from hookengine.sandbox.broker import BrokerClient
from hookengine.sandbox.contract import (HOOK_ERRORS, Clock, LogSink, Status, StreamToSink,
                                         describe_error, failure, hook_arguments, to_json)
from hookengine.sandbox.egress import EgressGuard, EgressPolicy
from hookengine.sandbox import outbound
from hookengine.sandbox.isolation import Limits
from hookengine.sandbox.policy import Guard, build_globals, compile_hook
from hookengine.sandbox.protocol import ANSWER, LINE, record, write_all

# zygote's clock at the request, lengths of the JSON part and of the code; then the run's
# arguments and secrets (spliced in by the zygote) up to the end.
JOB_HEADER = struct.Struct("!dII")

# Written when even building the real answer ran out of memory.
MEMORY_FALLBACK = json.dumps({"status": Status.MEMORY_LIMIT, "error": failure(
    "MemoryError", "the hook exceeded its memory limit")}).encode()


class Channel:
    """The answer pipe: each log line as a record the moment it is printed, then the answer.

    With `live` off, lines wait and go out with the answer (how output travelled before it
    was streamed; the benchmark measures one against the other).
    """

    def __init__(self, fd: int):
        self.fd = fd
        self.live = True
        self.held: list[bytes] = []

    def line(self, line: dict) -> None:
        data = record(LINE, json.dumps(line, separators=(",", ":")).encode())
        if self.live:
            write_all(self.fd, data)
        else:
            self.held.append(data)

    def answer(self, answer: bytes) -> None:
        write_all(self.fd, b"".join(self.held) + record(ANSWER, answer))
        os.close(self.fd)  # EOF now: the zygote answers without waiting for our exit


def encode_job(started: float, request: bytes, code) -> bytes:
    """The zygote's message to a child: when the request came, the job, the compiled code.

    marshal is safe in this direction only: the zygote is trusted, the child is not, and
    nothing a child sends is ever unmarshalled.
    """
    code = marshal.dumps(code)
    return JOB_HEADER.pack(started, len(request), len(code)) + request + code


def run_spare(jail, job_fd: int, answer_fd: int, workdir: str, uid: int | None,
              parent: int, broker_fd: int | None) -> None:  # pragma: no cover - forked
    """Lock down now, then block until the zygote sends one job; never returns."""
    signal.set_wakeup_fd(-1)  # the zygote's wake-up pipe and SIGCHLD handler are not ours
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    channel = Channel(answer_fd)
    try:
        keep = (job_fd, answer_fd) + ((broker_fd,) if broker_fd is not None else ())
        jail.prepare(workdir, uid, keep, parent)
        random.seed()  # the zygote's state is shared by every child: reseed from os.urandom
        rehearse()
        # Wrapped now, while a spare: the socket object costs a few syscalls.
        broker = BrokerClient(socket.socket(fileno=broker_fd)) if broker_fd is not None else None
        jail.note_baseline()
        message = _read_all(job_fd)
        if not message:
            os._exit(0)  # the zygote retired this spare (or is gone)
        started, size, code_size = JOB_HEADER.unpack_from(message)
        body = memoryview(message)[JOB_HEADER.size:]
        job = json.loads(bytes(body[:size]))
        code = marshal.loads(body[size:size + code_size])
        job.update(json.loads(bytes(body[size + code_size:])))
        channel.live = job.get("live_logs", True)
        limits = Limits(**job["limits"])
        jail.limit(limits)
        EgressGuard(EgressPolicy(**job["egress"])).install(broker)
        answer = run_hook_code(job, code, limits, Clock(started), channel.line).encode()
    except MemoryError:
        answer = MEMORY_FALLBACK
    except BaseException as error:  # an engine fault in the child: report it, never raise
        answer = json.dumps({"status": Status.ERROR, "error": failure(
            "SandboxError", f"{type(error).__name__}: {error}")}).encode()
    try:
        channel.answer(answer)
    finally:
        os._exit(0)


REHEARSAL = {"source": "def rehearse(context):\n    print(context.code)\n    return [1]\n",
             "entry": "rehearse", "params": ["context"], "args": [{"code": "0"}],
             "secrets": {}, "allowed_roots": []}
# Only the output and result caps matter to a rehearsal (no limit is applied to the process).
REHEARSAL_LIMITS = Limits(timeout_seconds=1.0, cpu_seconds=1, memory_mb=64,
                          max_output_bytes=1000, max_result_bytes=1000, max_open_files=16,
                          max_file_bytes=0)


_rehearsal_code = None


def prepare_rehearsal() -> None:
    """In the zygote: compile the rehearsal once for every child."""
    global _rehearsal_code
    _rehearsal_code = compile_hook(REHEARSAL["source"], "rehearsal", 1000, 10).code


def rehearse() -> None:
    """Run a tiny hook while still a spare, before any job: the pages a run writes to are
    copied (copy-on-write faults) now, off the request's path, instead of during it."""
    if _rehearsal_code is not None:
        run_hook_code(REHEARSAL, _rehearsal_code, REHEARSAL_LIMITS, Clock(), _discard)


def _discard(line: dict) -> None:
    json.dumps(line)  # what a real line costs, so its pages are touched too


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            os.close(fd)
            return b"".join(chunks)
        chunks.append(chunk)


def run_hook_code(job: dict, code, limits: Limits, clock: Clock, emit) -> str:
    """Run the compiled hook's entry function; every outcome becomes a JSON answer. Lines go
    to `emit` as they are printed."""
    sink = LogSink(limits.max_output_bytes, emit)
    # Each outbound HTTP request is a line too: "Twilio answered 400 / 21211" is in the log.
    outbound.install(lambda request: sink.add("http", outbound.describe(request), request),
                     (job.get("egress") or {}).get("host_map"))
    sys.stdout = StreamToSink(sink, "stdout")
    sys.stderr = StreamToSink(sink, "stderr")
    guard = Guard(frozenset(job["allowed_roots"]))
    answer = {"status": Status.SUCCESS}
    boot_ms = clock.ms()
    hook_clock = Clock()
    try:
        glb = build_globals(guard, sink.printer_factory(), HOOK_ERRORS)
        exec(code, glb)
        entry = glb.get(job["entry"])
        if not callable(entry):
            raise NameError(f"the script defines no function {job['entry']}()")
        args = hook_arguments(job["params"], job["args"], job["secrets"])
        result = entry(*args)
        answer["result"] = json.loads(to_json(result, limits.max_result_bytes))
    except MemoryError:
        answer = {"status": Status.MEMORY_LIMIT, "error": failure(
            "MemoryError", f"the hook exceeded its memory limit of {limits.memory_mb} MB")}
    except BaseException as error:  # SystemExit and KeyboardInterrupt are hook errors too
        answer = {"status": Status.ERROR, "error": describe_error(error, job["source"])}
    hook_ms = hook_clock.ms()
    outbound.flush()  # requests whose answer the hook never read
    sys.stdout.flush()
    sys.stderr.flush()
    sink.finish()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    answer["stats"] = {"boot_duration_ms": boot_ms, "hook_duration_ms": hook_ms,
                       "cpu_ms": round((usage.ru_utime + usage.ru_stime) * 1000, 3),
                       "max_rss_kb": usage.ru_maxrss}
    return json.dumps(answer, separators=(",", ":"), default=str)
