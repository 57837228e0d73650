"""The HTTP API under /api/v2 (and /healthz, /readyz): thin blueprints over the engine's
services."""

from __future__ import annotations


def init_app(app) -> None:
    from hookengine.api import (health, hooks, openapi, packages, phone, runs, secrets,
                                triggers)

    for module in (hooks, secrets, runs, triggers, packages, phone, openapi, health):
        app.register_blueprint(module.bp)
