"""Run a hook file locally, in the same sandbox as the server (`hookengine run FILE`)."""

from __future__ import annotations

from pathlib import Path

import click

from hookengine.clock import utc_now
from hookengine.errors import HookEngineError
from hookengine.runner import execute, sandbox_from
from hookengine.scripts import missing_secrets, parse_metadata, trigger_of, validate_script
from hookengine.triggers import get_trigger


def run_file(path: Path, payload, secrets: dict[str, str], settings: dict,
             trigger_id: str | None = None) -> dict:
    """Run a hook file in the same sandbox as the server, without a server or a database.

    The file passes the same checks as an upload, and runs through the same steps as a run.
    Its trigger is `trigger_id`, else its PEP 723 block's, else its entry function's.
    """

    script = path.read_text()
    metadata, problems = parse_metadata(script)
    if problems:
        raise click.ClickException(f"{path}: " + "; ".join(problems))
    try:
        trigger_id = trigger_of(script, metadata, trigger_id)
        dependencies, _ = validate_script(settings, script, trigger_id)
        trigger = get_trigger(trigger_id)
        payload = trigger.validate(trigger.sample_payload if payload is None else payload)
    except HookEngineError as error:
        raise click.ClickException(f"{path}: {error.message}") from None
    missing = missing_secrets(script, secrets)
    if missing:
        raise click.ClickException(f"{path} declares secrets that are not set: "
                                   f"{', '.join(missing)} (pass --secrets FILE.env)")
    declared = {name: secrets[name] for name in metadata.all_secrets() if name in secrets}
    sandbox = sandbox_from(settings, sorted(dependencies)).start()
    try:
        fields = execute(sandbox, settings, trigger, script, dependencies, payload, declared)
    finally:
        sandbox.close()
    return {"hook": str(path), "trigger_id": trigger.id, "source": "local", **fields,
            "ended_at": utc_now()}
