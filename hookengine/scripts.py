"""A hook script's declarations and upload rules.

The PEP 723 block that makes a hook file self-describing (trigger, dependencies, secrets,
whether `hookengine push` enables it), the trigger a file without one is written for, the
checks its dependencies must pass, and the rules a script must meet before it is stored or run.
The sandbox runs scripts; it does not judge them for upload.

Every rule reports a `Problem` (its text, line and columns): a refused save lists their text,
and `check_script` (POST /hooks/check) returns them whole, so an editor can mark them.
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
from hookengine.sandbox import HOOK_FILENAME, Problem, compile_hook
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
    # The block's first line in the script, and its lines: where a problem with an entry is.
    line: int = 1
    block_lines: list[str] = field(default_factory=list, repr=False)

    def all_secrets(self) -> list[str]:
        return [*self.secrets, *self.optional_secrets]

    def line_of(self, key: str, mention: re.Pattern | None = None) -> int:
        """The script line where the block sets `key` (a top-level or [tool.hookengine] key)
        or, with `mention`, the first line from there that matches it (one item of a list
        written over several lines); the block's first line when neither is found."""
        entry = re.compile(rf"#\s*{re.escape(key)}\s*=")
        for at, text in enumerate(self.block_lines):
            if entry.match(text):
                return self.line + next((i for i, rest in enumerate(self.block_lines[at:], at)
                                         if mention and mention.search(rest)), at)
        return self.line


KNOWN_KEYS = ("trigger", "secrets", "optional_secrets", "enabled")


def parse_metadata(source: str) -> tuple[ScriptMetadata, list[str]]:
    """Read the `# /// script` block; return what it declares and every problem found."""
    meta, problems = read_metadata(source)
    return meta, [str(problem) for problem in problems]


def read_metadata(source: str) -> tuple[ScriptMetadata, list[Problem]]:
    """`parse_metadata`, with each problem's line: the block's first line, which the text names
    ("Line N: ..."), or for a second block, that block's."""
    blocks = [m for m in BLOCK.finditer(source) if m.group("type") == "script"]
    if not blocks:
        return ScriptMetadata(), []
    if len(blocks) > 1:
        return ScriptMetadata(), [Problem(
            line=source.count("\n", 0, blocks[1].start()) + 1, source=Problem.METADATA,
            message="the script has more than one '# /// script' block")]
    block = blocks[0]
    line = source.count("\n", 0, block.start()) + 1
    meta = ScriptMetadata(present=True, line=line,
                          block_lines=block.group(0).splitlines())

    def problem(text: str, source: str = Problem.METADATA) -> Problem:
        return Problem(line=line, message=f"Line {line}: {text}", source=source)

    content = "".join(l[2:] if l.startswith("# ") else l[1:]
                      for l in block.group("content").splitlines(keepends=True))
    try:
        data = tomllib.loads(content)
    except tomllib.TOMLDecodeError as error:
        return meta, [problem(f"the '# /// script' block is not valid TOML: {error}")]
    problems: list[Problem] = []
    requirements = data.get("dependencies", [])
    if not isinstance(requirements, list):
        problems.append(problem("dependencies must be a list of requirement strings"))
    else:
        meta.dependencies, dep_problems = from_requirements(requirements)
        problems += [problem(p, Problem.DEPENDENCIES) for p in dep_problems]
    tool = data.get("tool", {}).get("hookengine", {})
    if not isinstance(tool, dict):
        problems.append(problem("[tool.hookengine] must be a table"))
        tool = {}
    unknown = sorted(set(tool) - set(KNOWN_KEYS))
    problems += [problem(f"[tool.hookengine] has unknown key {k!r} (known: "
                         f"{', '.join(KNOWN_KEYS)})") for k in unknown]
    trigger = tool.get("trigger")
    if trigger is not None and not isinstance(trigger, str):
        problems.append(problem("[tool.hookengine] trigger must be a string"))
    else:
        meta.trigger = trigger
    for key in ("secrets", "optional_secrets"):
        names = tool.get(key, [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            problems.append(problem(f"[tool.hookengine] {key} must be a list of names"))
        else:
            setattr(meta, key, list(names))
    both = sorted(set(meta.secrets) & set(meta.optional_secrets))
    problems += [problem(f"[tool.hookengine] declares {n!r} in both secrets and "
                         "optional_secrets") for n in both]
    enabled = tool.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        problems.append(problem("[tool.hookengine] enabled must be true or false"))
    else:
        meta.enabled = enabled
    return meta, problems


def trigger_of(script: str, metadata: ScriptMetadata, choice: str | None = None) -> str:
    """The trigger a hook file is for (see `find_trigger`); 400 when it cannot be told."""
    trigger_id, problem = find_trigger(script, metadata, choice)
    if problem:
        raise BadRequest(problem.message)
    return trigger_id


def find_trigger(script: str, metadata: ScriptMetadata, choice: str | None = None, *,
                 choose_with: str = "--trigger") -> tuple[str | None, Problem | None]:
    """The trigger a hook file is for: `choice`, else its block's, else its entry function's;
    or None, and the problem saying why it cannot be told.

    A file without a PEP 723 block still says what it is by the entry function it defines at
    top level; `choice` (what `choose_with` names) settles a file defining several, or
    overrides the guess.
    """
    if choice or metadata.trigger:
        trigger_id = choice or metadata.trigger
        if trigger_id not in TRIGGERS:
            return None, Problem(
                line=1 if choice else metadata.line_of("trigger"), source=Problem.TRIGGER,
                message=f"unknown trigger {trigger_id!r}; triggers: {', '.join(TRIGGERS)}")
        return trigger_id, None
    try:
        tree = ast.parse(script)
    except SyntaxError as error:
        return None, Problem.of_syntax_error(f"Line {error.lineno}: SyntaxError: {error.msg}",
                                             error, Problem.TRIGGER)
    except (RecursionError, MemoryError, ValueError) as error:
        # compile_hook's words for the same failure (check_script reports it once).
        return None, Problem(message=f"The script cannot be parsed: {type(error).__name__} "
                                     "(nested too deeply?)", source=Problem.TRIGGER)
    defined: dict[str, int] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            defined.setdefault(node.name, node.lineno)
    found = [t for t in TRIGGERS.values() if t.entry_function in defined]
    if len(found) == 1:
        return found[0].id, None
    if found:
        return None, Problem(
            line=min(defined[t.entry_function] for t in found), source=Problem.TRIGGER,
            message="defines the entry functions of several triggers ("
                    + ", ".join(f"{t.entry_function}: {t.id}" for t in found)
                    + f"); choose one with {choose_with}")
    return None, Problem(source=Problem.TRIGGER,
                         message="defines no entry function at top level; a hook defines one "
                                 "of " + ", ".join(t.entry_function for t in TRIGGERS.values())
                                 + " (or name its trigger in a PEP 723 block)")


def validate_script(settings: dict, script: str, trigger_id: str,
                    dependencies: dict | None = None, *, fallback: dict | None = None,
                    compile_script: bool = True) -> tuple[dict, ScriptMetadata]:
    """Compile, read the PEP 723 block and check dependencies; 400 lists every problem.

    Returns the dependencies in force: `dependencies` when given, else the block's when the
    script has a block, else `fallback` (what the hook had), else none. A draft that is only
    run is not compiled here (`compile_script=False`): the zygote compiles it anyway.
    """
    problems, dependencies, metadata = script_problems(
        settings, script, trigger_id, dependencies, fallback=fallback,
        compile_script=compile_script)
    if problems:
        raise ValidationError("Invalid script", [str(problem) for problem in problems])
    # Stored by canonical name ("Twilio" -> "twilio"), as imports and egress look them up.
    if isinstance(dependencies, dict):
        dependencies = {canonicalize_name(str(k)): v for k, v in dependencies.items()}
    return dict(dependencies), metadata


def script_problems(settings: dict, script: str, trigger_id: str | None,
                    dependencies: dict | None = None, *, fallback: dict | None = None,
                    compile_script: bool = True) -> tuple[list[Problem], dict, ScriptMetadata]:
    """The rules of `validate_script`: every problem, the dependencies in force and what the
    block declares. A `trigger_id` of None (not known) skips the rules that need it: the
    entry function, and the block's trigger agreeing with it."""
    problems: list[Problem] = []
    if compile_script:
        entry_function = TRIGGERS[trigger_id].entry_function if trigger_id else None
        problems += compile_hook(script, HOOK_FILENAME, settings["MAX_SCRIPT_BYTES"],
                                 settings["MAX_AST_DEPTH"],
                                 entry_function=entry_function).problems
    metadata, meta_problems = read_metadata(script) if isinstance(script, str) else (
        ScriptMetadata(), [])
    problems += meta_problems
    if trigger_id and metadata.trigger is not None and metadata.trigger != trigger_id:
        problems.append(Problem(
            line=metadata.line_of("trigger"), source=Problem.TRIGGER,
            message=f"the '# /// script' block declares trigger {metadata.trigger!r} but the "
                    f"hook's triggerId is {trigger_id!r}"))
    for name in metadata.all_secrets():
        if not SECRET_NAME.fullmatch(name):
            key = "secrets" if name in metadata.secrets else "optional_secrets"
            problems.append(Problem(
                line=metadata.line_of(key, re.compile(re.escape(f'"{name}"'))),
                source=Problem.METADATA,
                message=f"the '# /// script' block declares secret {name!r}, which is not a "
                        "valid secret name (a letter or _, then letters, digits, _ and -)"))
    from_block = dependencies is None and metadata.present
    if dependencies is None:
        dependencies = metadata.dependencies if metadata.present else dict(fallback or {})
    problems += check(dependencies, settings["ALLOWED_PACKAGES"],
                      metadata if from_block else None)
    return problems, dependencies, metadata


def check_script(settings: dict, script: str, trigger_id: str | None = None,
                 dependencies: dict | None = None) -> tuple[str | None, list[Problem]]:
    """What saving `script` would be refused for, without saving anything: the trigger it was
    checked against and the problems (none: it would save).

    The rules are `script_problems`'. Without `trigger_id`, the script's own trigger is taken
    (`find_trigger`); when that cannot be told, why is the first problem, unless it is the
    script not parsing, which the compile reports already. A script over the size limit is
    not parsed for its entry function: its size is the problem.
    """
    found = None
    if trigger_id is None:
        metadata, _ = read_metadata(script)
        size = len(script.encode("utf-8", "surrogatepass"))
        if metadata.trigger or size <= settings["MAX_SCRIPT_BYTES"]:
            trigger_id, found = find_trigger(script, metadata, choose_with="triggerId")
    problems, _, _ = script_problems(settings, script, trigger_id, dependencies)
    if found and found.message not in {problem.message for problem in problems}:
        problems.insert(0, found)
    return trigger_id, problems


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


def check(dependencies: dict, allowed: list[str],
          metadata: ScriptMetadata | None = None) -> list[Problem]:
    """Problems with `dependencies` ({package: version}); empty when each names an allowed
    package (HOOKENGINE_ALLOWED_PACKAGES, `*` for any) and a version it could have. Whether
    that version exists is the index's to say, when the hook's environment is installed.

    `metadata`: the block they were declared in, whose line naming a package its problem is
    on; otherwise (sent in a request, or kept from the hook) they are on line 1.
    """
    def problem(package, message: str) -> Problem:
        line = metadata.line_of("dependencies", _mention(package)) if metadata else 1
        return Problem(line=line, message=message, source=Problem.DEPENDENCIES)

    if not isinstance(dependencies, dict):
        return [problem(None, "dependencies must be an object of {package: version}")]
    allowed_names = {canonicalize_name(a) for a in allowed}
    problems = []
    for package, wanted in dependencies.items():
        name = canonicalize_name(str(package))
        if "*" not in allowed and name not in allowed_names:
            problems.append(problem(package, f"package {package!r} is not allowed; hooks may "
                                    f"use {', '.join(sorted(allowed_names)) or 'no packages'} "
                                    "(HOOKENGINE_ALLOWED_PACKAGES)"))
        elif not isinstance(wanted, str):
            problems.append(problem(package, f"the version of {package!r} must be a string "
                                    "such as '9.13.0', '>=9,<10' or 'latest'"))
        elif as_specifier(wanted) is None:
            problems.append(problem(package, f"{name} {wanted!r} is not a version: use an "
                                    "exact version (9.13.0), a PEP 440 specifier (>=9,<10) or "
                                    "'latest'"))
    return problems


def _mention(package) -> re.Pattern | None:
    """A requirement naming `package` in a block line, however its name is spelled (PEP 503:
    case, and runs of -, _ and . are the same)."""
    if package is None:
        return None
    parts = (re.escape(part) for part in re.split(r"[-_.]+", str(package)))
    return re.compile(rf"(?<![\w.-]){'[-_.]+'.join(parts)}(?![\w.-])", re.IGNORECASE)


def as_specifier(wanted: str) -> SpecifierSet | None:
    """'9.13.0' -> ==9.13.0, '>=9,<10' as is, 'latest' (or '*', '') -> any; None if neither."""
    wanted = wanted.strip()
    if wanted in ("latest", "*", ""):
        return SpecifierSet()
    try:
        return SpecifierSet(f"=={wanted}") if wanted[0].isdigit() else SpecifierSet(wanted)
    except InvalidSpecifier:
        return None