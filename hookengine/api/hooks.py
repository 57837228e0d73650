"""Hooks endpoints, shaped as Auth0's Management API v2: list, create, read, update, delete."""

from __future__ import annotations

from flask import Blueprint, url_for

from hookengine.api import schemas
from hookengine.api.routes import engine, if_match, json_body, paginate, query_args, route
from hookengine.hooks import FIELDS, etag
from hookengine.scripts import parse_metadata

bp = Blueprint("hooks", __name__, url_prefix="/api/v2")


@route(bp, "/hooks", "GET", summary="Get hooks", scope="read:hooks",
       response=schemas.HOOK_LIST, query=schemas.LIST_QUERY)
def get_hooks():
    """List hooks a page at a time, optionally by trigger or enabled state."""
    query = query_args()
    page, per_page = query["page"], query["per_page"]
    total, hooks = engine().hooks.list(page, per_page, query["enabled"], query["triggerId"])
    return paginate(total, _select_fields(hooks), page, per_page, "hooks",
                    query["include_totals"])


@route(bp, "/hooks", "POST", summary="Create a hook", scope="create:hooks", status=201,
       body=schemas.HOOK_CREATE, response=schemas.HOOK, errors=(409,),
       response_headers=schemas.ETAG)
def create_hook():
    """Create a hook; 201 with its Location and ETag. Its dependencies install in the
    background."""
    hook = engine().hooks.create(json_body())  # the store checks it against HOOK_CREATE
    hook = engine().installer.schedule(hook)
    return _shown(hook), 201, {"Location": url_for(".get_hook", id=hook["id"]),
                               "ETag": etag(hook)}


@route(bp, "/hooks/check", "POST", summary="Check a script without saving it",
       scope=("create:hooks", "update:hooks"), body=schemas.HOOK_CHECK,
       response=schemas.HOOK_CHECK_RESULT)
def check_hook():
    """List what saving a script would be refused for (200 either way); nothing is saved."""
    body = json_body()
    trigger_id, problems = engine().hooks.check(body)  # checked against HOOK_CHECK
    metadata, _ = parse_metadata(body["script"])
    return {"problems": [problem.to_dict() for problem in problems], "triggerId": trigger_id,
            "declared": {"secrets": metadata.secrets,
                         "optional_secrets": metadata.optional_secrets,
                         "dependencies": metadata.dependencies}}


@route(bp, "/hooks/<hook_id:id>", "GET", summary="Get a hook", scope="read:hooks",
       response=schemas.HOOK, query=schemas.FIELDS_QUERY, response_headers=schemas.ETAG)
def get_hook(id):
    """Return one hook, and its ETag (what PATCH's If-Match names)."""
    hook = engine().hooks.get(id)
    return _select_fields([hook])[0], {"ETag": etag(hook)}


@route(bp, "/hooks/<hook_id:id>", "PATCH", summary="Update a hook", scope="update:hooks",
       body=schemas.HOOK_UPDATE, response=schemas.HOOK, errors=(409, 412),
       headers=schemas.IF_MATCH, response_headers=schemas.ETAG)
def update_hook(id):
    """Change a hook's name, script, enabled state or dependencies; with If-Match, only if
    the hook is still the version the client loaded (412 otherwise)."""
    body = json_body()
    hook = engine().hooks.update(id, body, if_match("hook"))  # checked against HOOK_UPDATE
    if "script" in body or "dependencies" in body:  # its dependencies may have changed
        hook = engine().installer.schedule(hook)
    return _shown(hook), {"ETag": etag(hook)}


@route(bp, "/hooks/<id>/lockfile", "GET", summary="How a hook's dependencies are installed",
       scope="read:hooks", response=schemas.LOCKFILE)
def get_lockfile(id):
    """The status of the hook's install, and the lockfile it was installed from."""
    state = engine().hooks.installed(id)
    return {key: state[key] for key in ("status", "error", "lockfile", "environment")}


@route(bp, "/hooks/<hook_id:id>", "DELETE", summary="Delete a hook", scope="delete:hooks",
       status=204)
def delete_hook(id):
    """Delete a hook and its secrets (and its environment, if no other hook uses it)."""
    engine().hooks.delete(id)
    engine().installer.collect()
    return "", 204


def _select_fields(hooks: list[dict]) -> list[dict]:
    """Apply `fields` and `include_fields` as Auth0 does (its SDKs send both).

    The `fields` schema's pattern admits only hook field names, with spaces around them.
    """
    query = query_args()
    names = [name.strip(" ") for name in (query["fields"] or "").split(",") if name.strip(" ")]
    if not names:
        return [_shown(hook) for hook in hooks]
    keep = [name for name in FIELDS if (name in names) == query["include_fields"]]
    return [{name: hook[name] for name in keep} for hook in hooks]


def _shown(hook: dict) -> dict:
    """A stored hook as Auth0's API shows it: its FIELDS (the version is in the ETag)."""
    return {name: hook[name] for name in FIELDS}
