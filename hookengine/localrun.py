"""Hook files on disk: run one locally in the sandbox, or push a directory of them."""

from __future__ import annotations

from pathlib import Path

import click

from hookengine.errors import HookEngineError, MissingSecrets
from hookengine.runner import LocalExecutions, Runner, sandboxes_from
from hookengine.scripts import parse_metadata, validate_script
from hookengine.triggers import TRIGGERS


def run_file(path: Path, payload, secrets: dict[str, str], settings: dict,
             show_line=None) -> dict:
    """Run a hook file in the same sandbox as the server, without a server or a database:
    the same checks and the same run path (`Runner.prepare`, then `record`)."""
    script = path.read_text()
    metadata, problems = parse_metadata(script)
    if problems or metadata.trigger not in TRIGGERS:
        raise click.ClickException(f"{path}: " + ("; ".join(problems) or (
            "the PEP 723 block must name a trigger ([tool.hookengine] trigger = one of "
            f"{', '.join(TRIGGERS)})")))
    declared = {name: secrets[name] for name in metadata.secrets if name in secrets}
    hook = {"id": str(path), "triggerId": metadata.trigger, "script": script,
            "dependencies": {}}
    try:
        dependencies, _ = validate_script(settings, script, metadata.trigger)
        hook["dependencies"] = dependencies
        sandboxes = sandboxes_from(settings, packages=sorted(dependencies))
        runner = Runner(settings, sandboxes, LocalExecutions(show_line))
        plan = runner.prepare(hook, declared, payload)
    except MissingSecrets as error:
        raise click.ClickException(f"{path}: {error.with_hint('Pass --secrets FILE.env.').message}") from None
    except HookEngineError as error:
        raise click.ClickException(f"{path}: {error.message}") from None
    try:
        return runner.record(plan, "local")
    finally:
        sandboxes.close()


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
