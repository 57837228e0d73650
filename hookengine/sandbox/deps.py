"""Hook dependencies as modules: which top-level modules the packages a hook declares give it.

Checking declared dependencies against what is allowed and installed is an upload rule, in
`hookengine.scripts`.
"""

from __future__ import annotations

import functools
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


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


def allowed_roots(dependencies: dict) -> frozenset[str]:
    roots = set()
    for package in dependencies:
        roots |= module_roots(canonicalize_name(package))
    return frozenset(roots)
