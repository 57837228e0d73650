"""Runs: a hook, its secrets and a payload go to the sandbox and come back as a record."""

from __future__ import annotations

import logging
import os
import sqlite3
import time

from hookengine.errors import BadRequest
from hookengine.sandbox import EgressPolicy, Job, Limits, Sandbox
from hookengine.scripts import missing_secrets
from hookengine.secrets import redact
from hookengine.triggers import get_trigger

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


def sandbox_from(settings: dict, packages: list[str], uid_offset: int = 0,
                 socket_dir: str | None = None) -> Sandbox:
    """A zygote (not yet started) from the settings: the one place they become its layers."""
    ca_bundle = settings["CA_BUNDLE"]
    return Sandbox(packages, uid_base=settings["SANDBOX_UID"] + uid_offset,
                   seccomp=settings["SECCOMP"], namespaces=settings["NAMESPACES"],
                   jail=settings["JAIL"], disk_bytes=settings["DISK_BYTES"],
                   ca_bundle=os.path.abspath(ca_bundle) if ca_bundle else "",
                   socket_dir=socket_dir)


def build_job(settings: dict, trigger, script: str, dependencies: dict, payload: dict,
              secrets: dict[str, str]) -> Job:
    """The sandbox job for one execution (shared by the server and `hookengine run FILE`)."""
    return Job(source=script, entry=trigger.entry_function, params=list(trigger.params),
               args=trigger.arguments(payload), secrets=secrets, dependencies=dependencies,
               limits=limits_from(settings),
               egress=EgressPolicy.for_hook(dependencies, settings["EGRESS_ALLOW"],
                                            settings["HOST_MAP"]),
               max_script_bytes=settings["MAX_SCRIPT_BYTES"],
               max_ast_depth=settings["MAX_AST_DEPTH"])


def shape_outcome(trigger, outcome) -> tuple[str, object, dict | None]:
    """Apply the trigger's response rules to a successful result; a bad shape is an error."""
    if outcome.status != "success":
        return outcome.status, None, outcome.error
    try:
        return "success", trigger.shape_response(outcome.result), None
    except (TypeError, ValueError, AttributeError) as error:
        return "error", None, {"name": "InvalidResponseError", "message": str(error),
                               "stack": ""}


def execute(sandbox, settings: dict, trigger, script: str, dependencies: dict, payload: dict,
            secrets: dict[str, str]) -> dict:
    """One execution in `sandbox`: the record's fields, redacted (server and CLI share it)."""
    started = time.perf_counter()
    outcome = sandbox.execute(build_job(settings, trigger, script, dependencies, payload,
                                        secrets))
    status, result, error = shape_outcome(trigger, outcome)
    return {"status": status, "result": redact(result, secrets),
            "error": redact(error, secrets), "logs": redact(outcome.logs, secrets),
            "stats": {"total_duration_ms": round((time.perf_counter() - started) * 1000, 3),
                      **outcome.stats}}


class Runner:
    """Test runs (the Run button) and trigger executions, recorded with redacted secrets."""

    def __init__(self, engine):
        self.engine = engine
        self._last_purge = 0.0

    def run(self, hook: dict, payload, source: str = "test", script: str | None = None,
            dependencies: dict | None = None) -> dict:
        """Execute `hook` (or a draft `script` of it, never saved) on `payload`."""
        trigger = get_trigger(hook["triggerId"])
        payload = trigger.validate(payload)
        if script is None:
            script, dependencies = hook["script"], hook["dependencies"]
        else:
            dependencies, _ = self.engine.hooks.validate_script(
                script, hook["triggerId"], dependencies, fallback=hook["dependencies"])
        secrets = self.engine.secrets.values(hook["id"])
        missing = missing_secrets(script, secrets)
        if missing:
            raise BadRequest(
                f"The hook declares secret(s) that are not set: {', '.join(missing)}. Set them "
                f"with POST /api/v2/hooks/{hook['id']}/secrets before running it.",
                error_code="missing_secret")
        executions = self.engine.executions
        record = executions.start(hook, source, redact(payload, secrets))
        try:
            record.update(execute(self.engine.sandbox_for(dependencies), self.engine.settings,
                                  trigger, script, dependencies, payload, secrets))
        except Exception:
            # An engine fault must not leave the record 'running' forever; the error itself
            # still reaches the error handler (500, logged with its stack).
            record.update(status="killed", error={
                "name": "EngineError", "message": "the engine failed while handling this "
                "execution; see the engine log", "stack": ""})
            executions.finish(record)
            raise
        try:
            executions.finish(record)
        except sqlite3.OperationalError:
            # The hook already ran (an SMS may be out): answer with its outcome rather than a
            # 503 that invites a retry. The row stays 'running' and is marked interrupted at
            # the next start.
            log.exception("Execution %s ran but its record could not be saved", record["id"])
        log.info("Execution %s of hook %s (%s) ended %s in %.1f ms", record["id"], hook["id"],
                 source, record["status"], record["stats"]["total_duration_ms"])
        self._purge_now_and_then()
        return record

    def _purge_now_and_then(self) -> None:
        now = time.monotonic()
        if now - self._last_purge > PURGE_EVERY_SECONDS:
            self._last_purge = now
            removed = self.engine.executions.purge()
            if removed:
                log.info("Deleted %d executions past the retention period", removed)
