"""The engine's services, built once per app from the settings and shared by every request."""

from __future__ import annotations

import logging
import threading

from hookengine.auth import TokenStore
from hookengine.secrets import SecretStore, load_cipher
from hookengine.store import Store

log = logging.getLogger(__name__)

UID_RANGE = 1000  # uids per zygote (its concurrent executions); see sandbox/zygote.py SLOTS


class Engine:
    """Store, tokens, secrets, hooks, executions and the runner, wired together."""

    def __init__(self, settings: dict, sandbox=None, lock=None):
        from hookengine.executions import ExecutionStore
        from hookengine.hooks import HookStore
        from hookengine.runner import Runner

        self.settings = settings
        self.store = Store(settings["DATA_DIR"]).open()
        self.tokens = TokenStore(self.store)
        self.secrets = SecretStore(self.store, load_cipher(settings["SECRET_KEY"],
                                                           settings["DATA_DIR"]),
                                   settings["MAX_SECRETS"], settings["MAX_SECRET_BYTES"])
        self.hooks = HookStore(self.store, settings)
        self.executions = ExecutionStore(self.store, settings)
        # Two zygotes: one with every allowed SDK preloaded, and a small one for hooks that
        # declare no dependencies. Forking costs in proportion to the zygote's memory (70 MB
        # with the SDKs, ~20 without), so dependency-free hooks start several ms sooner.
        # An injected sandbox (tests) serves every hook.
        self._sandboxes = {"full": sandbox, "bare": sandbox}
        self._owns_sandbox = sandbox is None
        self._sandbox_lock = threading.Lock()
        # The data directory's ServerLock when this engine is the server's: its zygotes then
        # use the directory's own socket directories, which the next server cleans up.
        self.lock = lock
        self.runner = Runner(self)
        # Live log streams each hold a server thread: keep most threads for runs.
        self.followers = threading.BoundedSemaphore(max(1, settings["SERVER_THREADS"] // 4))

    @property
    def sandbox(self):
        """The zygote with the allowed SDKs, started on first use (a CLI command that runs
        nothing needs none)."""
        return self._zygote("full", self.settings["ALLOWED_PACKAGES"])

    def sandbox_for(self, dependencies: dict):
        """The sandbox a hook with these dependencies runs in."""
        if dependencies:
            return self.sandbox
        return self._zygote("bare", [])

    def _zygote(self, kind: str, packages: list[str]):
        if self._sandboxes[kind] is None:
            with self._sandbox_lock:
                if self._sandboxes[kind] is None:
                    from hookengine.runner import sandbox_from

                    # Each zygote its own range of uids: runs never share a uid.
                    offset = 0 if kind == "full" else UID_RANGE
                    socket_dir = self.lock.socket_dir(kind) if self.lock else None
                    self._sandboxes[kind] = sandbox_from(self.settings, packages, offset,
                                                         socket_dir).start()
        return self._sandboxes[kind]

    def started_zygotes(self) -> dict:
        """The zygotes started so far, by kind (a sandbox shared by both kinds counts once)."""
        started = {}
        for kind, sandbox in self._sandboxes.items():
            if sandbox is not None and all(sandbox is not s for s in started.values()):
                started[kind] = sandbox
        return started

    def close(self) -> None:
        if self._owns_sandbox:
            for sandbox in self._sandboxes.values():
                if sandbox is not None:
                    sandbox.close()
        self.store.close()
