"""Hook files on disk: run one locally in the sandbox, or push a directory of them."""

from __future__ import annotations

from pathlib import Path

import click

from hookengine.clock import utc_now
from hookengine.errors import HookEngineError
from hookengine.runner import execute, sandbox_from
from hookengine.scripts import missing_secrets, parse_metadata, validate_script
from hookengine.triggers import TRIGGERS, get_trigger


def run_file(path: Path, payload, secrets: dict[str, str], settings: dict) -> dict:
    """Run a hook file in the same sandbox as the server, without a server or a database.

    The file passes the same checks as an upload, and runs through the same steps as a run.
    """

    script = path.read_text()
    metadata, problems = parse_metadata(script)
    if problems or metadata.trigger not in TRIGGERS:
        raise click.ClickException(f"{path}: " + ("; ".join(problems) or (
            "the PEP 723 block must name a trigger ([tool.hookengine] trigger = one of "
            f"{', '.join(TRIGGERS)})")))
    try:
        dependencies, _ = validate_script(settings, script, metadata.trigger)
        trigger = get_trigger(metadata.trigger)
        payload = trigger.validate(trigger.sample_payload if payload is None else payload)
    except HookEngineError as error:
        raise click.ClickException(f"{path}: {error.message}") from None
    missing = missing_secrets(script, secrets)
    if missing:
        raise click.ClickException(f"{path} declares secrets that are not set: "
                                   f"{', '.join(missing)} (pass --secrets FILE.env)")
    declared = {name: secrets[name] for name in metadata.secrets}
    sandbox = sandbox_from(settings, sorted(dependencies)).start()
    try:
        fields = execute(sandbox, settings, trigger, script, dependencies, payload, declared)
    finally:
        sandbox.close()
    return {"hook": str(path), "trigger_id": trigger.id, "source": "local", **fields,
            "ended_at": utc_now()}


def push_directory(directory: Path, secrets: dict[str, str], api) -> list[str]:
    """Create or update one hook per *.py file and set the secrets it declares.

    Only names present in the env file are sent: a secret already stored and not given is left
    as it is, never clobbered or deleted.
    """
    existing = {hook["name"]: hook for hook in _all_hooks(api)}
    report = []
    for path in sorted(directory.glob("*.py")):
        script = path.read_text()
        metadata, problems = parse_metadata(script)
        if problems or not metadata.trigger:
            report.append(f"skipped {path.name}: " + ("; ".join(problems) or
                                                      "no [tool.hookengine] trigger"))
            continue
        name = path.stem.replace("_", "-")
        hook = existing.get(name)
        if hook is None:
            hook = api.post("/hooks", {"name": name, "script": script,
                                       "triggerId": metadata.trigger})
            report.append(f"created {name} ({hook['id']})")
        else:
            hook = api.patch(f"/hooks/{hook['id']}", {"script": script})
            report.append(f"updated {name} ({hook['id']})")
        stored = api.get(f"/hooks/{hook['id']}/secrets")
        given = {n: secrets[n] for n in metadata.secrets if n in secrets}
        new = {n: v for n, v in given.items() if n not in stored}
        changed = {n: v for n, v in given.items() if n in stored}
        if new:
            api.post(f"/hooks/{hook['id']}/secrets", new)
        if changed:
            api.patch(f"/hooks/{hook['id']}/secrets", changed)
        unset = [n for n in metadata.secrets if n not in stored and n not in given]
        if given or unset:
            report.append(f"  secrets set: {', '.join(sorted(given)) or 'none'}"
                          + (f"; still missing: {', '.join(unset)}" if unset else ""))
    return report


def _all_hooks(api) -> list[dict]:
    hooks, page = [], 0
    while True:
        batch = api.get(f"/hooks?per_page=100&page={page}")
        hooks += batch
        if len(batch) < 100:
            return hooks
        page += 1
