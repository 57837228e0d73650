"""The engine's services, built once per app from the settings and shared by every request."""

from __future__ import annotations

import logging
import threading

from hookengine.auth import TokenStore
from hookengine.secrets import SecretStore, load_cipher
from hookengine.store import Store

log = logging.getLogger(__name__)


class Engine:
    """Store, tokens, secrets, hooks, executions and the runner, wired together."""

    def __init__(self, settings: dict, sandbox=None):
        from hookengine.executions import ExecutionStore
        from hookengine.hooks import HookStore
        from hookengine.runner import Runner

        self.settings = settings
        self.store = Store(settings["DATA_DIR"]).open()
        self.tokens = TokenStore(self.store)
        self.secrets = SecretStore(self.store, load_cipher(settings["SECRET_KEY"],
                                                           settings["DATA_DIR"]),
                                   settings["MAX_SECRETS"], settings["MAX_SECRET_BYTES"])
        self.hooks = HookStore(self.store, self.secrets, settings)
        self.executions = ExecutionStore(self.store, settings)
        self._sandbox = sandbox
        self._owns_sandbox = sandbox is None
        self._sandbox_lock = threading.Lock()
        self.runner = Runner(self)

    @property
    def sandbox(self):
        """The zygote is started on first use (a CLI command that runs nothing needs none)."""
        if self._sandbox is None:
            with self._sandbox_lock:
                if self._sandbox is None:
                    from hookengine.sandbox import Sandbox

                    self._sandbox = Sandbox(self.settings["ALLOWED_PACKAGES"],
                                            uid_base=self.settings["SANDBOX_UID"],
                                            seccomp=self.settings["SECCOMP"],
                                            namespaces=self.settings["NAMESPACES"]).start()
        return self._sandbox

    def close(self) -> None:
        if self._sandbox is not None and self._owns_sandbox:
            self._sandbox.close()
        self.store.close()
