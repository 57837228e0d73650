"""The PEP 723 block that makes a hook file self-describing: trigger, dependencies, secrets."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field

from hookengine.sandbox.deps import from_requirements

# The reference regular expression from PEP 723.
BLOCK = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")


@dataclass
class ScriptMetadata:
    trigger: str | None = None
    dependencies: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    present: bool = False


def parse_metadata(source: str) -> tuple[ScriptMetadata, list[str]]:
    """Read the `# /// script` block; return what it declares and every problem found."""
    blocks = [m for m in BLOCK.finditer(source) if m.group("type") == "script"]
    if not blocks:
        return ScriptMetadata(), []
    if len(blocks) > 1:
        return ScriptMetadata(), ["the script has more than one '# /// script' block"]
    block = blocks[0]
    line = source.count("\n", 0, block.start()) + 1
    content = "".join(l[2:] if l.startswith("# ") else l[1:]
                      for l in block.group("content").splitlines(keepends=True))
    try:
        data = tomllib.loads(content)
    except tomllib.TOMLDecodeError as error:
        return ScriptMetadata(present=True), [f"Line {line}: the '# /// script' block is not "
                                              f"valid TOML: {error}"]
    problems: list[str] = []
    meta = ScriptMetadata(present=True)
    requirements = data.get("dependencies", [])
    if not isinstance(requirements, list):
        problems.append(f"Line {line}: dependencies must be a list of requirement strings")
    else:
        meta.dependencies, dep_problems = from_requirements(requirements)
        problems += [f"Line {line}: {p}" for p in dep_problems]
    tool = data.get("tool", {}).get("hookengine", {})
    if not isinstance(tool, dict):
        problems.append(f"Line {line}: [tool.hookengine] must be a table")
        tool = {}
    unknown = sorted(set(tool) - {"trigger", "secrets"})
    problems += [f"Line {line}: [tool.hookengine] has unknown key {k!r} (known: trigger, "
                 "secrets)" for k in unknown]
    trigger = tool.get("trigger")
    if trigger is not None and not isinstance(trigger, str):
        problems.append(f"Line {line}: [tool.hookengine] trigger must be a string")
    else:
        meta.trigger = trigger
    secrets = tool.get("secrets", [])
    if not isinstance(secrets, list) or not all(isinstance(s, str) for s in secrets):
        problems.append(f"Line {line}: [tool.hookengine] secrets must be a list of names")
    else:
        meta.secrets = list(secrets)
    return meta, problems
