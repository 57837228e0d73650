"""The HTTP API under /api/v2: thin blueprints over the engine's services."""

from __future__ import annotations


def init_app(app) -> None:
    from hookengine.api import hooks, openapi, runs, secrets, triggers

    for module in (hooks, secrets, runs, triggers, openapi):
        app.register_blueprint(module.bp)
