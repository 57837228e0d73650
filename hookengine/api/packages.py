"""GET /api/v2/packages: what hooks may declare, and what versions the index offers."""

from __future__ import annotations

from flask import Blueprint
from packaging.utils import canonicalize_name

from hookengine.api.routes import engine, route
from hookengine.environments import ENGINE_PACKAGES, Environments, installed_version

bp = Blueprint("packages", __name__, url_prefix="/api/v2")

PACKAGE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "installed", "versions"],
    "properties": {
        "name": {"type": "string"},
        "installed": {"type": ["string", "null"],
                      "description": "The engine's own version, which needs no environment "
                                     "(null: the engine does not ship it)."},
        "versions": {"type": "array", "items": {"type": "string"},
                     "description": "Versions the index offers as wheels for the engine's "
                                    "Python, newest first (cached for "
                                    "HOOKENGINE_PACKAGE_CACHE_SECONDS)."},
        "error": {"type": "string",
                  "description": "Why the list may be incomplete (an index not reachable)."},
    },
}


@route(bp, "/packages", "GET", scope="read:hooks", tag="packages",
       response={"type": "array", "items": PACKAGE},
       summary="Packages hooks may declare, the engine's own versions and the index's")
def list_packages():
    settings = engine().settings
    environments = Environments.for_settings(settings)
    return [_describe(environments, name) for name in listed(settings["ALLOWED_PACKAGES"])]


def listed(allowed: list[str]) -> list[str]:
    """The allowed packages by canonical name; `*` (any package) lists the engine's own
    ones, since any other name could be declared."""
    names = [canonicalize_name(a) for a in allowed if a != "*"]
    if "*" in allowed:
        names = [*ENGINE_PACKAGES, *names]
    return list(dict.fromkeys(names))


def _describe(environments: Environments, name: str) -> dict:
    offered = environments.offered(name)
    package = {"name": name,
               "installed": installed_version(name) if name in ENGINE_PACKAGES else None,
               "versions": offered.versions}
    if offered.error:
        package["error"] = offered.error
    return package
