"""hookengine: a self-hosted, sandboxed engine for custom hook scripts."""

from __future__ import annotations

import logging


def create_app(test_config: dict | None = None, env_file: str | None = ".env", sandbox=None,
               lock=None):
    """Build the Flask app: settings -> store -> services -> blueprints -> error handlers.

    `sandbox` lets tests share one running zygote between apps; by default each engine starts
    its own on first use. `lock`: the data directory's ServerLock, held (`hookengine serve`).
    """
    from flask import Flask

    from hookengine import api, ui
    from hookengine.config import load_settings
    from hookengine.engine import Engine
    from hookengine.errors import register_error_handlers

    settings = load_settings(test_config, env_file=env_file)
    logging.basicConfig(level=settings["LOG_LEVEL"].upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=settings["MAX_BODY_BYTES"], JSON_SORT_KEYS=False)
    app.json.sort_keys = False
    engine = Engine(settings, sandbox=sandbox, lock=lock)
    app.extensions["hookengine"] = engine
    api.init_app(app)
    ui.init_app(app)
    register_error_handlers(app)
    return app
