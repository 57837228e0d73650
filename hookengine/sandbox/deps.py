"""Hook dependencies: which allowed packages are installed, in which version, as which modules."""

from __future__ import annotations

import functools
from importlib import metadata

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version


def installed_version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=None)
def module_roots(package: str) -> frozenset[str]:
    """Top-level modules a declared package gives a hook.

    The package's own modules, plus those of its requirements in the same family: vonage 4
    ships `vonage_sms`, `vonage_voice`, ... as separate distributions that `vonage` requires.
    """
    roots = set(_top_level(package))
    prefix = canonicalize_name(package) + "-"
    try:
        requirements = metadata.requires(package) or []
    except metadata.PackageNotFoundError:
        return frozenset(roots)
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker is None and canonicalize_name(requirement.name).startswith(prefix):
            roots.update(_top_level(requirement.name))
    return frozenset(roots)


def _top_level(package: str) -> set[str]:
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        return set()
    text = dist.read_text("top_level.txt")
    if text:
        return {line.strip() for line in text.splitlines() if line.strip()}
    roots = set()
    for file in dist.files or ():
        first = file.parts[0]
        if first.endswith(".dist-info") or first.startswith("__") or first.endswith(".pth"):
            continue
        roots.add(first.removesuffix(".py"))
    return roots


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
    """Problems with `dependencies` ({package: version}); empty when all can be satisfied."""
    if not isinstance(dependencies, dict):
        return ["dependencies must be an object of {package: version}"]
    allowed_names = {canonicalize_name(a) for a in allowed}
    problems = []
    for package, wanted in dependencies.items():
        name = canonicalize_name(str(package))
        if name not in allowed_names:
            problems.append(f"package {package!r} is not allowed; hooks may use "
                            f"{', '.join(sorted(allowed_names)) or 'no packages'} "
                            "(HOOKENGINE_ALLOWED_PACKAGES)")
            continue
        installed = installed_version(name)
        if installed is None:
            problems.append(f"package {package!r} is allowed but not installed on this engine")
            continue
        if not isinstance(wanted, str):
            problems.append(f"the version of {package!r} must be a string such as '9.13.0', "
                            "'>=9,<10' or 'latest'")
            continue
        problem = _version_problem(name, wanted.strip(), installed)
        if problem:
            problems.append(problem)
    return problems


def _version_problem(name: str, wanted: str, installed: str) -> str | None:
    if wanted in ("latest", "*", ""):
        return None
    try:
        specifier = SpecifierSet(f"=={wanted}") if wanted[0].isdigit() else SpecifierSet(wanted)
    except InvalidSpecifier:
        return (f"{name} {wanted!r} is not a version: use an exact version (9.13.0), a PEP 440 "
                "specifier (>=9,<10) or 'latest'")
    try:
        satisfied = Version(installed) in specifier
    except InvalidVersion:
        satisfied = False
    if not satisfied:
        return (f"{name} {wanted} cannot be satisfied: the engine has {name} {installed} "
                "installed")
    return None


def allowed_roots(dependencies: dict) -> frozenset[str]:
    roots = set()
    for package in dependencies:
        roots |= module_roots(canonicalize_name(package))
    return frozenset(roots)
