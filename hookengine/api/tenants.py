"""Tenant settings and the phone provider protection, shaped as Auth0's: what the phone
factor uses."""

from __future__ import annotations

from flask import Blueprint

from hookengine import phoneconfig as rules
from hookengine.api.routes import engine, json_body, query_args, route
from hookengine.errors import InvalidQuery

bp = Blueprint("tenants", __name__, url_prefix="/api/v2")

PATH = "/tenants/settings"
FIELDS = tuple(rules.TENANT["properties"])
QUERY = {
    "fields": {"type": "string", "description": "Comma-separated fields to include (or "
                                                "exclude, with include_fields=false)."},
    "include_fields": {"type": "boolean", "default": True},
}


@route(bp, PATH, "GET", summary="Get the tenant settings", scope="read:tenant_settings",
       response=rules.TENANT, query=QUERY, tag="tenants")
def get_settings():
    """The settings, narrowed by `fields` / `include_fields` as Auth0 does."""
    return _select(engine().phoneconfig.tenant())


@route(bp, PATH, "PATCH", summary="Update the tenant settings",
       scope="update:tenant_settings", body=rules.TENANT_PATCH, response=rules.TENANT,
       tag="tenants")
def update_settings():
    """Replace the sent fields; `flags` are merged into the stored ones."""
    return engine().phoneconfig.update_tenant(json_body(rules.TENANT_PATCH))


def _select(settings: dict) -> dict:
    query = query_args()
    names = [name.strip() for name in (query["fields"] or "").split(",") if name.strip()]
    unknown = [name for name in names if name not in FIELDS]
    if unknown:
        raise InvalidQuery(f"Query parameter fields names unknown field(s) "
                           f"{', '.join(unknown)}; the fields are {', '.join(FIELDS)}.")
    if not names:
        return settings
    return {name: value for name, value in settings.items()
            if (name in names) == query["include_fields"]}


PROTECTION = "/attack-protection/phone-provider-protection"


@route(bp, PROTECTION, "GET", summary="Get the phone provider protection",
       scope="read:attack_protection", response=rules.PROTECTION_SET, tag="tenants")
def get_phone_provider_protection():
    """Stored for Auth0's tools; hookengine's own throttle is the delivery settings' bucket."""
    return engine().phoneconfig.phone_provider_protection()


@route(bp, PROTECTION, "PATCH", summary="Set the phone provider protection",
       scope="update:attack_protection", body=rules.PROTECTION_SET,
       response=rules.PROTECTION_SET, tag="tenants")
def set_phone_provider_protection():
    protection = json_body(rules.PROTECTION_SET)
    engine().phoneconfig.set_phone_provider_protection(protection)
    return protection
