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
def module_roots(package: str, site: str | None = None) -> frozenset[str]:
    """Top-level modules a declared package gives a hook: from the engine's own packages, or
    with `site` from that environment's directory only (environments never change once
    installed, so the answer is cached).

    The package's own modules, plus those of its requirements in the same family: vonage 4
    ships `vonage_sms`, `vonage_voice`, ... as separate distributions that `vonage` requires.
    """
    dist = _distribution(package, site)
    if dist is None:
        return frozenset()
    roots = _top_level(dist)
    prefix = canonicalize_name(package) + "-"
    for text in dist.requires or []:
        requirement = Requirement(text)
        if requirement.marker is None and canonicalize_name(requirement.name).startswith(prefix):
            family = _distribution(requirement.name, site)
            roots |= _top_level(family) if family is not None else set()
    return frozenset(roots)


def site_modules(site: str) -> dict[str, frozenset[str]]:
    """{distribution name: its top-level modules} of every package installed in `site`."""
    found: dict[str, frozenset[str]] = {}
    for dist in metadata.distributions(path=[site]):
        name = canonicalize_name(dist.metadata["Name"] or "")
        if name and name not in found:
            found[name] = frozenset(_top_level(dist))
    return found


def _distribution(package: str, site: str | None) -> metadata.Distribution | None:
    if site is None:
        try:
            return metadata.distribution(package)
        except metadata.PackageNotFoundError:
            return None
    wanted = canonicalize_name(package)
    for dist in metadata.distributions(path=[site]):
        if canonicalize_name(dist.metadata["Name"] or "") == wanted:
            return dist
    return None


def _top_level(dist: metadata.Distribution) -> set[str]:
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


def allowed_roots(dependencies: dict, site: str | None = None) -> frozenset[str]:
    """The modules a hook with these dependencies may import: with `site`, the packages it
    declared as installed in that environment (not the engine's own)."""
    roots = set()
    for package in dependencies:
        roots |= module_roots(canonicalize_name(package), site)
    return frozenset(roots)
