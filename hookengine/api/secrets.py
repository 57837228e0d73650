"""Hook secrets endpoints, shaped as Auth0's: values go in, only names come out."""

from __future__ import annotations

from flask import Blueprint

from hookengine.api import schemas
from hookengine.api.routes import engine, json_body, route

bp = Blueprint("secrets", __name__, url_prefix="/api/v2")

PATH = "/hooks/<id>/secrets"


@route(bp, PATH, "GET", summary="Get a hook's secrets (values hidden)", scope="read:hooks",
       response=schemas.SECRETS_MASKED, tag="secrets")
def get_secrets(id):
    """Return {NAME: "_VALUE_NOT_SHOWN_"} for each secret of the hook."""
    engine().hooks.get(id)
    return engine().secrets.names(id)


@route(bp, PATH, "POST", summary="Add secrets to a hook", scope="update:hooks", status=201,
       body=schemas.SECRETS_SET, response=schemas.EMPTY, tag="secrets", errors=(409,))
def add_secrets(id):
    """Add new secrets; 409 when a name is already set."""
    engine().hooks.get(id)  # 404 for an unknown hook before looking at the body
    engine().secrets.add(id, json_body(schemas.SECRETS_SET))
    return {}, 201


@route(bp, PATH, "PATCH", summary="Update a hook's secrets", scope="update:hooks",
       body=schemas.SECRETS_SET, response=schemas.EMPTY, tag="secrets")
def update_secrets(id):
    """Replace the values of existing secrets; 404 names the unknown ones."""
    engine().hooks.get(id)
    engine().secrets.update(id, json_body(schemas.SECRETS_SET))
    return {}


@route(bp, PATH, "DELETE", summary="Delete secrets of a hook", scope="delete:hooks",
       status=204, body=schemas.SECRET_NAMES, tag="secrets")
def delete_secrets(id):
    """Delete the named secrets."""
    engine().hooks.get(id)
    engine().secrets.delete(id, json_body(schemas.SECRET_NAMES))
    return "", 204
