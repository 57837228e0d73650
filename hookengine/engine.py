"""The engine's services, built once per app from the settings and shared by every request."""

from __future__ import annotations

import logging
import threading

from hookengine.auth import TokenStore
from hookengine.branding import BrandingStore
from hookengine.environments import Environments
from hookengine.executions import ExecutionStore
from hookengine.hooks import HookStore
from hookengine.installer import Installer
from hookengine.logdelivery import LogDelivery
from hookengine.logstreams import LogStreams
from hookengine.nodes import Nodes
from hookengine.phoneconfig import PhoneConfig
from hookengine.runner import Runner, sandboxes_from
from hookengine.secrets import SecretStore, load_cipher
from hookengine.sessions import SessionStore
from hookengine.store import open_store
from hookengine.tenantlogs import TenantLogs

log = logging.getLogger(__name__)


class Engine:
    """Store, tokens, secrets, phone branding, hooks, executions, the zygotes and the runner,
    wired together.

    `sandbox` (tests) is one running zygote that serves every hook. `lock` is the data
    directory's ServerLock when this engine is the server's: its zygotes then use the
    directory's own socket directories, which the next server cleans up.
    """

    def __init__(self, settings: dict, sandbox=None, lock=None):
        self.settings = settings
        self.store = open_store(settings)
        self.tokens = TokenStore(self.store)
        self.sessions = SessionStore(self.store, self.tokens, settings)
        cipher = load_cipher(settings["SECRET_KEY"], settings["DATA_DIR"])
        self.secrets = SecretStore(self.store, cipher, settings["MAX_SECRETS"],
                                   settings["MAX_SECRET_BYTES"])
        self.phoneconfig = PhoneConfig(self.store, cipher)
        self.branding = BrandingStore(self.store, cipher)
        self.hooks = HookStore(self.store, settings)
        self.executions = ExecutionStore(self.store, settings)
        # This process as a node; `serve` starts its heartbeat (see nodes.py).
        self.nodes = Nodes(self.store, self.executions, settings)
        self.executions.node_id = self.nodes.id
        self.wakeups = None  # `serve` starts it: followers here learn of lines stored elsewhere
        if self.store.backend == "postgresql":
            from hookengine.wakeups import Wakeups

            self.wakeups = Wakeups(settings["DATABASE_DIRECT_URL"] or settings["DATABASE_URL"],
                                   self.executions.changed)
            self.executions.announce = self.wakeups.announce
        self.lock = lock
        self.sandboxes = sandboxes_from(settings, shared=sandbox, socket_dirs={
            kind: lock.socket_dir(kind) for kind in ("full", "bare")} if lock else None)
        self.environments = Environments(settings["DATA_DIR"], settings)
        self.installer = Installer(self.environments, self.hooks,
                                   settings["DEPENDENCY_WAIT_SECONDS"])
        self.runner = Runner(settings, self.sandboxes, self.executions, self.installer,
                             self.secrets)
        # Live log streams each hold a server thread: keep most threads for runs.
        self.followers = threading.BoundedSemaphore(max(1, settings["SERVER_THREADS"] // 4))
        self.closing = threading.Event()
        self.logs = TenantLogs(self.store)
        self.log_streams = LogStreams(self.store, self.secrets.cipher, settings)
        # Its thread is started by `serve` (tests drive deliver_due() themselves).
        self.log_delivery = LogDelivery(self.store, self.logs, self.log_streams, settings)

    def end_streams(self) -> None:
        """Make every live log stream end now (a stopping server must not wait for them)."""
        self.closing.set()
        with self.executions.changed:
            self.executions.changed.notify_all()

    def close(self) -> None:
        self.end_streams()
        if self.wakeups is not None:
            self.wakeups.close()
        self.log_delivery.close()
        self.installer.close()
        self.sandboxes.close()
        self.store.close()
