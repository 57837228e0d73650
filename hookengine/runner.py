"""Runs: a hook, its secrets and a payload become a job (`prepare`), then a record (`record`).

The API's Run button, the identity platform's trigger executions and `hookengine run FILE`
all take this one path; only where secrets come from and where records go differ.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass

from hookengine.clock import utc_now
from hookengine.errors import BadRequest, HookEngineError, MissingSecrets, NodeBusy
from hookengine.environments import Environments
from hookengine.executions import error_line
from hookengine.installer import Installer
from hookengine.sandbox import EgressPolicy, Job, Limits, Sandboxes, Status, failure
from hookengine.scripts import missing_secrets, parse_metadata, trigger_of, validate_script
from hookengine.secrets import redact, redact_fields
from hookengine.triggers import Trigger, get_trigger

log = logging.getLogger(__name__)

PURGE_EVERY_SECONDS = 600


def limits_from(settings: dict) -> Limits:
    """A run's limits from the settings: the one place settings become sandbox limits."""
    return Limits(timeout_seconds=settings["TIMEOUT_SECONDS"],
                  cpu_seconds=settings["CPU_SECONDS"], memory_mb=settings["MEMORY_MB"],
                  max_output_bytes=settings["MAX_OUTPUT_BYTES"],
                  max_result_bytes=settings["MAX_RESULT_BYTES"],
                  max_open_files=settings["MAX_OPEN_FILES"],
                  max_file_bytes=settings["MAX_FILE_BYTES"])


def sandboxes_from(settings: dict, packages: list[str] | None = None, shared=None,
                   socket_dirs: dict[str, str] | None = None) -> Sandboxes:
    """The zygotes (not yet started) from the settings: the one place they become its layers.

    `packages` narrows what the SDK zygote preloads (a local run needs only its hook's)."""
    ca_bundle = settings["CA_BUNDLE"]
    return Sandboxes(settings["ALLOWED_PACKAGES"] if packages is None else packages,
                     uid_base=settings["SANDBOX_UID"], shared=shared, socket_dirs=socket_dirs,
                     seccomp=settings["SECCOMP"], namespaces=settings["NAMESPACES"],
                     jail=settings["JAIL"], disk_bytes=settings["DISK_BYTES"],
                     max_environments=settings["MAX_ZYGOTES"],
                     environments_max_mb=settings["ZYGOTES_MAX_MB"],
                     ca_bundle=os.path.abspath(ca_bundle) if ca_bundle else "")


@dataclass
class Plan:
    """A run checked and ready: the job for the sandbox, and what its record needs."""

    hook: dict          # at least id and triggerId
    trigger: Trigger
    payload: dict       # as validated, before redaction
    secrets: dict       # the values that reach the hook, redacted from everything it gives
    job: Job
    notes: list[str]    # what the engine did before the run (waited for an install): its log


def shape_outcome(trigger, outcome) -> tuple[Status, object, dict | None]:
    """Apply the trigger's response rules to a successful result; a bad shape is an error."""
    if outcome.status != Status.SUCCESS:
        return outcome.status, None, outcome.error
    try:
        return Status.SUCCESS, trigger.shape_response(outcome.result), None
    except (TypeError, ValueError, AttributeError) as error:
        return Status.ERROR, None, failure("InvalidResponseError", str(error))


class Runner:
    """Prepares runs and records them; built from the services it needs, nothing more."""

    def __init__(self, settings: dict, sandboxes: Sandboxes, executions, installer,
                 secrets=None):
        self.settings = settings
        self.sandboxes = sandboxes
        self.executions = executions
        self.installer = installer  # the environment a hook's dependencies are installed in
        self.secrets = secrets  # stored secrets, for `run` (a local run brings its own)
        self._last_purge = 0.0
        # Back-pressure: a node runs at most MAX_RUNS at once, and refuses the next one
        # before recording it, so a load balancer can send it to another node.
        self.max_runs = settings["MAX_RUNS"]
        self._slots = threading.BoundedSemaphore(self.max_runs)
        self.draining = threading.Event()  # set by a stopping server: no new runs

    def run(self, hook: dict, payload=None, source: str = "test", script: str | None = None,
            dependencies: dict | None = None, *, held: bool = False) -> dict:
        """Execute a stored hook (or a draft `script` of it, never saved) with its secrets.
        `held`: the caller holds a run slot already (`slot()`), taken before its own work."""
        with contextlib.nullcontext() if held else self.slot():
            plan = self.prepare(hook, self.secrets.values(hook["id"]), payload, script,
                                dependencies)
            return self.record(plan, source)

    @contextlib.contextmanager
    def slot(self):
        """Hold one of this node's run slots; 503 (retry elsewhere) when there is none."""
        if self.draining.is_set():
            raise NodeBusy("This node is shutting down and takes no new runs; send the "
                           "request again (another node will take it).")
        if not self._slots.acquire(blocking=False):
            raise NodeBusy(f"All {self.max_runs} run slots of this node are busy; nothing "
                           "was run or recorded: send the request again in a moment, or "
                           "to another node.")
        try:
            yield
        finally:
            self._slots.release()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no run is going on (a draining node); False if `timeout` passed."""
        deadline = time.monotonic() + timeout
        taken = 0
        try:
            for _ in range(self.max_runs):
                if not self._slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
                    return False
                taken += 1
            return True
        finally:
            for _ in range(taken):
                self._slots.release()

    def prepare(self, hook: dict, secrets: dict[str, str], payload=None,
                script: str | None = None, dependencies: dict | None = None) -> Plan:
        """Check the payload (the trigger's sample when None), a draft and the declared
        secrets, and build the job. Raises a HookEngineError (400) saying what to fix."""
        trigger = get_trigger(hook["triggerId"])
        payload = trigger.validate(trigger.sample_payload if payload is None else payload)
        notes = []
        if script is None:
            script, dependencies = hook["script"], hook["dependencies"]
            missing = missing_secrets(script, secrets)  # before any wait for an install
            if missing:
                raise MissingSecrets(missing)
            environment, waited = self.installer.environment_for(hook)
            if waited >= 0.5:
                notes.append(f"waited {waited:.1f} s for the hook's dependencies to install")
        else:
            # Not compiled here: the zygote compiles it, and a compile error is the run's.
            dependencies, _ = validate_script(self.settings, script, hook["triggerId"],
                                              dependencies, fallback=hook["dependencies"],
                                              compile_script=False)
            missing = missing_secrets(script, secrets)
            if missing:
                raise MissingSecrets(missing)
            environment = self.installer.environment_now(dependencies)
        settings = self.settings
        job = Job(source=script, entry=trigger.entry_function, params=list(trigger.params),
                  args=trigger.arguments(payload), secrets=secrets, dependencies=dependencies,
                  limits=limits_from(settings),
                  egress=EgressPolicy.for_hook(dependencies, settings["EGRESS_ALLOW"],
                                               settings["HOST_MAP"]),
                  max_script_bytes=settings["MAX_SCRIPT_BYTES"],
                  max_ast_depth=settings["MAX_AST_DEPTH"], live_logs=settings["LIVE_LOGS"],
                  environment=environment)
        return Plan(hook, trigger, payload, secrets, job, notes)

    def record(self, plan: Plan, source: str) -> dict:
        """Run the plan in the sandbox and record it: lines as they are printed, then the
        outcome, every value of a secret redacted."""
        executions, secrets = self.executions, plan.secrets
        record = executions.start(plan.hook, source, redact(plan.payload, secrets))
        if plan.notes:
            executions.add_lines(record, [{"time": utc_now(), "stream": "engine",
                                           "message": note} for note in plan.notes])
        held: list[dict] = []  # lines the store could not take yet: they go with the outcome

        def on_lines(lines: list[dict]) -> None:
            lines = _redacted(lines, secrets)
            try:
                if not held:
                    executions.add_lines(record, lines)
                    return
            except executions.store.unavailable:  # busy: the run must not fail for its log
                log.warning("Execution %s: the store is busy; its lines wait until it ends",
                            record["id"])
            held.extend(lines)

        started = time.perf_counter()
        try:
            outcome = self.sandboxes.execute(plan.job, on_lines)
        except Exception:
            # An engine fault must not leave the record 'running' forever; the error itself
            # still reaches the error handler (500, logged with its stack).
            record.update(status=Status.KILLED, error=failure(
                "EngineError", "the engine failed while handling this execution; see the "
                "engine log"))
            executions.finish(record, held)
            raise
        status, result, error = shape_outcome(plan.trigger, outcome)
        record.update(status=status, result=redact(result, secrets),
                      error=redact_fields(error, secrets),
                      stats={"total_duration_ms": round((time.perf_counter() - started) * 1000,
                                                        3), **outcome.stats})
        try:
            executions.finish(record, held + _redacted(outcome.logs, secrets))
        except executions.store.unavailable:
            # The hook already ran (an SMS may be out): answer with its outcome rather than a
            # 503 that invites a retry. The row stays 'running' and is marked interrupted at
            # the next start.
            log.exception("Execution %s ran but its record could not be saved", record["id"])
        log.info("Execution %s of hook %s (%s) ended %s in %.1f ms", record["id"],
                 plan.hook["id"], source, record["status"], record["stats"]["total_duration_ms"])
        self._purge_now_and_then()
        return record

    def _purge_now_and_then(self) -> None:
        """Every PURGE_EVERY_SECONDS: executions past retention, and unused environments
        (those a hook stopped using are removed at once; this catches the rest)."""
        now = time.monotonic()
        if now - self._last_purge > PURGE_EVERY_SECONDS:
            self._last_purge = now
            removed = self.executions.purge()
            if removed:
                log.info("Deleted %d executions past the retention period", removed)
            self.installer.collect()


def _redacted(lines: list[dict], secrets: dict[str, str]) -> list[dict]:
    """Lines with secrets redacted from what the hook wrote: their messages and requests."""
    return [redact_fields(line, secrets, ("message", "request")) for line in lines]


def run_file(path, payload, secrets: dict[str, str], settings: dict,
             trigger_id: str | None = None, show_line=None) -> dict:
    """`hookengine run FILE`: the file as an upload would be checked, run on the same path as
    the server's runs, without a server or a database. Its trigger is `trigger_id`, else its
    PEP 723 block's, else its entry function's; its secrets are those in `secrets` that it
    declares; `show_line` sees each line as it is printed."""
    script = path.read_text()
    try:
        metadata, problems = parse_metadata(script)
        if problems:
            raise BadRequest("; ".join(problems))
        hook = {"id": str(path), "triggerId": trigger_of(script, metadata, trigger_id),
                "script": script}
        hook["dependencies"], _ = validate_script(settings, script, hook["triggerId"])
        declared = {n: secrets[n] for n in metadata.all_secrets() if n in secrets}
        sandboxes = sandboxes_from(settings, packages=sorted(hook["dependencies"]))
        installer = Installer(Environments(settings["DATA_DIR"], settings), None,
                              settings["DEPENDENCY_WAIT_SECONDS"])
        runner = Runner(settings, sandboxes, LocalExecutions(show_line), installer)
        plan = runner.prepare(hook, declared, payload, script, hook["dependencies"])
    except MissingSecrets as error:
        raise BadRequest(f"{path}: {error.with_hint('Pass them with --secrets FILE.env.').message}"
                         ) from None
    except HookEngineError as error:
        raise BadRequest(f"{path}: {error.message}") from None
    try:
        return runner.record(plan, "local")
    finally:
        sandboxes.close()


class LocalExecutions:
    """Where `hookengine run FILE` records its run: in memory, each line shown as printed."""

    def __init__(self, show_line=None):
        self.show_line = show_line

    def start(self, hook: dict, source: str, payload) -> dict:
        # No store, so no id; the hook is the file.
        return {"id": None, "hook": hook["id"], "trigger_id": hook["triggerId"],
                "source": source,
                "status": Status.RUNNING, "payload": payload, "result": None, "error": None,
                "logs": [], "http_requests": [], "stats": {}, "started_at": utc_now(),
                "ended_at": None}

    def add_lines(self, record: dict, lines: list[dict]) -> None:
        record["logs"] += lines
        record["http_requests"] += [line["request"] for line in lines if "request" in line]
        if self.show_line:
            for line in lines:
                self.show_line(line)

    def finish(self, record: dict, lines: list[dict]) -> dict:
        record["ended_at"] = utc_now()
        if record["error"]:
            lines = [*lines, error_line(record["error"], record["ended_at"])]
        self.add_lines(record, lines)
        return record

    def purge(self) -> int:
        return 0
