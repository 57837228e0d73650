"""A hook script's declarations and upload rules.

The PEP 723 block that makes a hook file self-describing (trigger, dependencies, secrets,
whether `hookengine push` enables it), the trigger a file without one is written for, the
checks its dependencies must pass, and the rules a script must meet before it is stored or run.
The sandbox runs scripts; it does not judge them for upload.
"""

from __future__ import annotations

import ast
import re
import tomllib
from dataclasses import dataclass, field
from importlib import metadata as distributions

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from hookengine.errors import BadRequest, ValidationError
from hookengine.sandbox import HOOK_FILENAME, compile_hook
from hookengine.secrets import NAME_PATTERN as SECRET_NAME
from hookengine.triggers import TRIGGERS

# The reference regular expression from PEP 723.
BLOCK = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")


@dataclass
class ScriptMetadata:
    trigger: str | None = None
    dependencies: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    # Set when present, absent from context.webtask.secrets when not (e.g. one of two senders).
    optional_secrets: list[str] = field(default_factory=list)
    # What `hookengine push` makes of the hook: True enables it, False disables it, None leaves
    # the enabled hook of its trigger as it is. The server itself ignores it.
    enabled: bool | None = None
    present: bool = False

    def all_secrets(self) -> list[str]:
        return [*self.secrets, *self.optional_secrets]


KNOWN_KEYS = ("trigger", "secrets", "optional_secrets", "enabled")


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
    unknown = sorted(set(tool) - set(KNOWN_KEYS))
    problems += [f"Line {line}: [tool.hookengine] has unknown key {k!r} (known: "
                 f"{', '.join(KNOWN_KEYS)})" for k in unknown]
    trigger = tool.get("trigger")
    if trigger is not None and not isinstance(trigger, str):
        problems.append(f"Line {line}: [tool.hookengine] trigger must be a string")
    else:
        meta.trigger = trigger
    for key in ("secrets", "optional_secrets"):
        names = tool.get(key, [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            problems.append(f"Line {line}: [tool.hookengine] {key} must be a list of names")
        else:
            setattr(meta, key, list(names))
    both = sorted(set(meta.secrets) & set(meta.optional_secrets))
    problems += [f"Line {line}: [tool.hookengine] declares {n!r} in both secrets and "
                 "optional_secrets" for n in both]
    enabled = tool.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        problems.append(f"Line {line}: [tool.hookengine] enabled must be true or false")
    else:
        meta.enabled = enabled
    return meta, problems


def trigger_of(script: str, metadata: ScriptMetadata, choice: str | None = None) -> str:
    """The trigger a hook file is for: `choice`, else its block's, else its entry function's.

    A file without a PEP 723 block still says what it is by the entry function it defines at
    top level; `choice` settles a file defining several, or overrides the guess.
    """
    if choice or metadata.trigger:
        trigger_id = choice or metadata.trigger
        if trigger_id not in TRIGGERS:
            raise BadRequest(f"unknown trigger {trigger_id!r}; triggers: {', '.join(TRIGGERS)}")
        return trigger_id
    try:
        tree = ast.parse(script)
    except SyntaxError as error:
        raise BadRequest(f"Line {error.lineno}: SyntaxError: {error.msg}") from None
    defined = {node.name for node in tree.body
               if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    found = [t for t in TRIGGERS.values() if t.entry_function in defined]
    if len(found) == 1:
        return found[0].id
    if found:
        raise BadRequest("defines the entry functions of several triggers ("
                         + ", ".join(f"{t.entry_function}: {t.id}" for t in found)
                         + "); choose one with --trigger")
    raise BadRequest("defines no entry function at top level; a hook defines one of "
                     + ", ".join(t.entry_function for t in TRIGGERS.values())
                     + " (or name its trigger in a PEP 723 block)")


def validate_script(settings: dict, script: str, trigger_id: str,
                    dependencies: dict | None = None, *, fallback: dict | None = None,
                    compile_script: bool = True) -> tuple[dict, ScriptMetadata]:
    """Compile, read the PEP 723 block and check dependencies; 400 lists every problem.

    Returns the dependencies in force: `dependencies` when given, else the block's when the
    script has a block, else `fallback` (what the hook had), else none. A draft that is only
    run is not compiled here (`compile_script=False`): the zygote compiles it anyway.
    """
    problems = []
    if compile_script:
        problems += compile_hook(script, HOOK_FILENAME, settings["MAX_SCRIPT_BYTES"],
                                 settings["MAX_AST_DEPTH"],
                                 entry_function=TRIGGERS[trigger_id].entry_function).errors
    metadata, meta_problems = parse_metadata(script) if isinstance(script, str) else (
        ScriptMetadata(), [])
    problems += meta_problems
    if metadata.trigger is not None and metadata.trigger != trigger_id:
        problems.append(f"the '# /// script' block declares trigger {metadata.trigger!r} "
                        f"but the hook's triggerId is {trigger_id!r}")
    problems += [f"the '# /// script' block declares secret {name!r}, which is not a valid "
                 "secret name (a letter or _, then letters, digits, _ and -)"
                 for name in metadata.all_secrets() if not SECRET_NAME.fullmatch(name)]
    if dependencies is None:
        dependencies = metadata.dependencies if metadata.present else dict(fallback or {})
    problems += check(dependencies, settings["ALLOWED_PACKAGES"])
    if problems:
        raise ValidationError("Invalid script", problems)
    # Stored by canonical name ("Twilio" -> "twilio"), as imports and egress look them up.
    if isinstance(dependencies, dict):
        dependencies = {canonicalize_name(str(k)): v for k, v in dependencies.items()}
    return dict(dependencies), metadata


def missing_secrets(script: str, secrets: dict[str, str]) -> list[str]:
    """The secrets a run needs and `secrets` lacks; optional ones are never missing."""
    metadata, _ = parse_metadata(script)
    return [name for name in metadata.secrets if name not in secrets]


def installed_version(package: str) -> str | None:
    try:
        return distributions.version(package)
    except distributions.PackageNotFoundError:
        return None


def from_requirements(requirements: list[str]) -> tuple[dict[str, str], list[str]]:
    """PEP 508 strings from a PEP 723 block -> {package: version spec or 'latest'}, problems."""
    dependencies, problems = {}, []
    for text in requirements:
        try:
            requirement = Requirement(str(text))
        except InvalidRequirement as error:
            problems.append(f"dependency {text!r} is not a PEP 508 requirement: {error}")
            continue
        dependencies[canonicalize_name(requirement.name)] = str(requirement.specifier) or "latest"
    return dependencies, problems


def check(dependencies: dict, allowed: list[str]) -> list[str]:
    """Problems with `dependencies` ({package: version}); empty when each names an allowed
    package (HOOKENGINE_ALLOWED_PACKAGES, `*` for any) and a version it could have. Whether
    that version exists is the index's to say, when the hook's environment is installed."""
    if not isinstance(dependencies, dict):
        return ["dependencies must be an object of {package: version}"]
    allowed_names = {canonicalize_name(a) for a in allowed}
    problems = []
    for package, wanted in dependencies.items():
        name = canonicalize_name(str(package))
        if "*" not in allowed and name not in allowed_names:
            problems.append(f"package {package!r} is not allowed; hooks may use "
                            f"{', '.join(sorted(allowed_names)) or 'no packages'} "
                            "(HOOKENGINE_ALLOWED_PACKAGES)")
        elif not isinstance(wanted, str):
            problems.append(f"the version of {package!r} must be a string such as '9.13.0', "
                            "'>=9,<10' or 'latest'")
        elif as_specifier(wanted) is None:
            problems.append(f"{name} {wanted!r} is not a version: use an exact version "
                            "(9.13.0), a PEP 440 specifier (>=9,<10) or 'latest'")
    return problems


def as_specifier(wanted: str) -> SpecifierSet | None:
    """'9.13.0' -> ==9.13.0, '>=9,<10' as is, 'latest' (or '*', '') -> any; None if neither."""
    wanted = wanted.strip()
    if wanted in ("latest", "*", ""):
        return SpecifierSet()
    try:
        return SpecifierSet(f"=={wanted}") if wanted[0].isdigit() else SpecifierSet(wanted)
    except InvalidSpecifier:
        return None