"""One execution inside a freshly forked child: lock down, run the hook, write JSON, exit."""

from __future__ import annotations

import json
import os
import random
import signal
import sys

from hookengine.sandbox.contract import (HOOK_ERRORS, Clock, LogSink, StreamToSink,
                                         describe_error, hook_arguments, to_json)
from hookengine.sandbox.egress import EgressGuard, EgressPolicy
from hookengine.sandbox.isolation import Limits
from hookengine.sandbox.policy import Guard, build_globals

# Written when even building the real answer ran out of memory.
MEMORY_FALLBACK = json.dumps({"status": "memory_limit", "error": {
    "name": "MemoryError", "message": "the hook exceeded its memory limit", "stack": ""},
    "logs": []}).encode()


def run_child(jail, job: dict, code, workdir: str, uid: int | None, write_fd: int,
              clock: Clock) -> None:  # pragma: no cover - runs in the forked child
    """Never returns: the child exits with its answer written to `write_fd`."""
    signal.set_wakeup_fd(-1)  # the zygote's wake-up pipe and SIGCHLD handler are not ours
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        limits = Limits(**job["limits"])
        jail.lock_down(limits, workdir, uid, write_fd)
        EgressGuard(EgressPolicy(**job["egress"])).install()
        random.seed()  # the zygote's state is shared by every child: reseed from os.urandom
        answer = execute(job, code, limits, clock).encode()
    except MemoryError:
        answer = MEMORY_FALLBACK
    except BaseException as error:  # an engine fault in the child: report it, never raise
        answer = json.dumps({"status": "error", "engine_error": True, "logs": [], "error": {
            "name": "SandboxError", "message": f"{type(error).__name__}: {error}",
            "stack": ""}}).encode()
    try:
        view = memoryview(answer)
        while view:
            view = view[os.write(write_fd, view):]
    finally:
        os._exit(0)


def execute(job: dict, code, limits: Limits, clock: Clock) -> str:
    """Run the compiled hook's entry function; every outcome becomes a JSON answer."""
    sink = LogSink(limits.max_output_bytes)
    sys.stdout = StreamToSink(sink, "stdout")
    sys.stderr = StreamToSink(sink, "stderr")
    guard = Guard(frozenset(job["allowed_roots"]))
    answer = {"status": "success"}
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
        answer = {"status": "memory_limit", "error": {
            "name": "MemoryError",
            "message": f"the hook exceeded its memory limit of {limits.memory_mb} MB",
            "stack": ""}}
    except BaseException as error:  # SystemExit and KeyboardInterrupt are hook errors too
        answer = {"status": "error", "error": describe_error(error, job["source"])}
    hook_ms = hook_clock.ms()
    sys.stdout.flush()
    sys.stderr.flush()
    answer["logs"] = sink.finish()
    answer["stats"] = {"boot_duration_ms": boot_ms, "hook_duration_ms": hook_ms}
    return json.dumps(answer, separators=(",", ":"), default=str)
