"""`hookengine push`: hook files on disk become hooks on a server, with their secrets.

One hook per file, named after the file's stem with `_` turned into `-`. Push never changes
which hook of a trigger is enabled unless a file says so with `enabled = true|false` in its
`[tool.hookengine]` table. The server enables the first hook created for a trigger on its own;
that hook stays enabled unless a file of the same push asks for another one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from hookengine.apiclient import ApiClient, ApiError, all_hooks
from hookengine.envfile import EnvFile
from hookengine.errors import HookEngineError
from hookengine.scripts import ScriptMetadata, parse_metadata, trigger_of


@dataclass
class HookFile:
    path: Path
    name: str
    script: str
    metadata: ScriptMetadata
    trigger_id: str
    hook: dict | None = None  # as stored, once pushed


def hook_files(paths: list[Path]) -> list[Path]:
    """Files as given, and the *.py files of directories, each once, in order."""
    files: list[Path] = []
    for path in paths:
        for file in sorted(path.glob("*.py")) if path.is_dir() else [path]:
            if file not in files:
                files.append(file)
    return files


def push(paths: list[Path], env: EnvFile, api: ApiClient, echo: Callable[[str], None]) -> int:
    """Create or update a hook per file, set its secrets, apply `enabled`; return failures.

    Each file gets one report line (created, updated, unchanged or failed with the reason) and
    a line about its secrets; a bad file does not stop the others. The report ends with the
    enabled hook of every trigger the files are for.
    """
    failures = 0
    existing = {hook["name"]: hook for hook in all_hooks(api)}
    files = []
    for path in hook_files(paths):
        try:
            files.append(_read(path))
        except (HookEngineError, OSError, UnicodeDecodeError) as error:
            echo(f"failed {path}: {getattr(error, 'message', error)}")
            failures += 1
    claims = defaultdict(list)
    for file in files:
        if file.metadata.enabled:
            claims[file.trigger_id].append(file)
    contested = {trigger_id for trigger_id, claimants in claims.items() if len(claimants) > 1}
    for file in files:
        try:
            _upload(file, existing.get(file.name), env, api, echo)
        except ApiError as error:
            if error.status is None:  # the server is gone: nothing else can work either
                raise
            echo(f"failed {file.name} ({file.path}): {error.message}")
            failures += 1
    for file in files:
        wanted = file.metadata.enabled
        if file.hook is None or wanted is None or file.trigger_id in contested:
            continue
        if file.hook["enabled"] != wanted:
            api.patch(f"/hooks/{file.hook['id']}", {"enabled": wanted})
            echo(f"{'enabled' if wanted else 'disabled'} {file.name} "
                 f"(enabled = {str(wanted).lower()} in {file.path.name})")
    for trigger_id in sorted(contested):
        echo(f"failed to enable a hook for {trigger_id}: "
             + ", ".join(str(f.path) for f in claims[trigger_id])
             + " each say enabled = true; keep it in one")
        failures += 1
    for trigger_id in dict.fromkeys(f.trigger_id for f in files):
        enabled = all_hooks(api, triggerId=trigger_id, enabled="true")
        echo(f"{trigger_id}: enabled hook is "
             + (enabled[0]["name"] if enabled else "none (enable one with `hookengine enable`)"))
    return failures


def _read(path: Path) -> HookFile:
    script = path.read_text()
    metadata, problems = parse_metadata(script)
    if problems:
        raise HookEngineError("; ".join(problems))
    return HookFile(path, path.stem.replace("_", "-"), script, metadata,
                    trigger_of(script, metadata))


def _upload(file: HookFile, stored: dict | None, env: EnvFile, api: ApiClient,
            echo: Callable[[str], None]) -> None:
    if stored is None:
        body = {"name": file.name, "script": file.script, "triggerId": file.trigger_id}
        if file.metadata.enabled is False:
            body["enabled"] = False  # never enabled, not even until the end of the push
        file.hook = api.post("/hooks", body)
        note = (f"; enabled as the first hook of {file.trigger_id}"
                if file.hook["enabled"] and file.metadata.enabled is None else "")
        echo(f"created {file.name} ({file.hook['id']}){note}")
    elif stored["triggerId"] != file.trigger_id:
        raise ApiError(f"the stored hook is for {stored['triggerId']}, the file for "
                       f"{file.trigger_id}; a hook's trigger cannot change (`hookengine "
                       f"delete {file.name}` first)", status=409)
    elif stored["script"] == file.script:
        file.hook = stored
        echo(f"unchanged {file.name} ({stored['id']})")
    else:
        file.hook = api.patch(f"/hooks/{stored['id']}", {"script": file.script})
        echo(f"updated {file.name} ({stored['id']})")
    status = file.hook.get("dependencies_status")
    if status == "installing":
        echo(f"  dependencies installing: a first run waits for them (`hookengine show "
             f"{file.name}` says when they are ready)")
    elif status == "failed":
        echo(f"  dependencies failed: {file.hook.get('dependencies_error')}")
    _set_secrets(file, env, api, echo)


def _set_secrets(file: HookFile, env: EnvFile, api: ApiClient,
                 echo: Callable[[str], None]) -> None:
    """Send the declared secrets the env file gives; leave every other stored one alone."""
    declared = file.metadata.all_secrets()
    if not declared:
        return
    given = {name: env.values[name] for name in declared if name in env.values}
    stored = api.set_secrets(file.hook["id"], given)
    parts = [f"secrets set: {', '.join(sorted(given)) or 'none'}"]
    if env.not_set(declared):
        parts.append(f"not set: {env.not_set(declared)}")
    missing = [name for name in file.metadata.secrets if name not in stored and name not in given]
    if missing:
        parts.append(f"still missing: {', '.join(missing)}")
    echo("  " + "; ".join(parts))
