"""The HTTP API under /api/v2 (and /healthz, /readyz): thin blueprints over the engine's
services."""

from __future__ import annotations


def init_app(app) -> None:
    from hookengine.api import (branding, guardian, health, hooks, logs, logstreams, openapi,
                                packages, phone, routes, runs, secrets, tenants, triggers)

    app.url_map.converters.update(routes.CONVERTERS)  # before the rules that use them

    for module in (hooks, secrets, runs, triggers, packages, guardian, tenants, branding, phone,
                   logs, logstreams, openapi, health):
        app.register_blueprint(module.bp)
