"""Hook files on disk: run one locally in the sandbox, or push a directory of them."""

from __future__ import annotations

import time
from pathlib import Path

import click

from hookengine.auth import now_iso
from hookengine.runner import build_job, missing_secrets, shape_outcome
from hookengine.sandbox.deps import check as check_dependencies
from hookengine.sandbox.metadata import parse_metadata
from hookengine.secrets import redact
from hookengine.triggers import TRIGGERS, get_trigger


def run_file(path: Path, payload, secrets: dict[str, str], settings: dict) -> dict:
    """Run a hook file in the same sandbox as the server, without a server or a database."""
    from hookengine.sandbox import Sandbox

    script = path.read_text()
    metadata, problems = parse_metadata(script)
    if problems:
        raise click.ClickException(f"{path}: " + "; ".join(problems))
    if metadata.trigger not in TRIGGERS:
        raise click.ClickException(f"{path}: the PEP 723 block must name a trigger "
                                   f"([tool.hookengine] trigger = one of {', '.join(TRIGGERS)})")
    problems = check_dependencies(metadata.dependencies, settings["ALLOWED_PACKAGES"])
    if problems:
        raise click.ClickException(f"{path}: " + "; ".join(problems))
    trigger = get_trigger(metadata.trigger)
    payload = trigger.validate(trigger.sample_payload if payload is None else payload)
    missing = missing_secrets(script, secrets)
    if missing:
        raise click.ClickException(f"{path} declares secrets that are not set: "
                                   f"{', '.join(missing)} (pass --secrets FILE.env)")
    declared = {name: secrets[name] for name in metadata.secrets}
    sandbox = Sandbox(sorted(metadata.dependencies) or [], settings["SANDBOX_UID"],
                      settings["SECCOMP"], settings["NAMESPACES"]).start()
    try:
        started = time.perf_counter()
        outcome = sandbox.execute(build_job(settings, trigger, script, metadata.dependencies,
                                            payload, declared))
    finally:
        sandbox.close()
    status, result, error = shape_outcome(trigger, outcome)
    return {"hook": str(path), "trigger_id": trigger.id, "source": "local", "status": status,
            "result": redact(result, declared), "error": redact(error, declared),
            "logs": redact(outcome.logs, declared),
            "stats": {"total_duration_ms": round((time.perf_counter() - started) * 1000, 3),
                      **outcome.stats},
            "ended_at": now_iso()}


def push_directory(directory: Path, secrets: dict[str, str], api) -> list[str]:
    """Create or update one hook per *.py file and set the secrets it declares.

    Only names present in the env file are sent: a secret already stored and not given is left
    as it is, never clobbered or deleted.
    """
    existing = {hook["name"]: hook for hook in api.get("/hooks?per_page=100")}
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
