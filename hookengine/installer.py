"""Hooks' declared dependencies, installed in the background; runs wait until they are.

Saving a hook never waits for an install: `schedule` records the hook's dependencies as
`installing` and a worker resolves and installs them (environments.py), then records `ready`
with the lockfile and the environment, or `failed` with what went wrong. A run of a hook
still installing waits for it, up to DEPENDENCY_WAIT_SECONDS. Dependencies the engine's own
packages satisfy need no install: they are `ready` at once, without asking any index.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from hookengine.environments import DependencyError
from hookengine.errors import ServiceUnavailable
from hookengine.hooks import FAILED, INSTALLING, READY

log = logging.getLogger(__name__)


class Installer:
    """Moves hooks' dependencies from `installing` to `ready` or `failed`."""

    def __init__(self, environments, hooks, wait_seconds: float):
        self.environments = environments
        self.hooks = hooks
        self.wait_seconds = wait_seconds
        self.changed = threading.Condition()
        # Keys installed but not yet recorded on their hook: `collect` must not take them.
        self._pending: set[str] = set()
        # Two at a time: an install is mostly waiting on the index, and a burst of saves
        # (a push of a directory) must not start a resolver per hook at once.
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="install")

    def start(self) -> None:
        """At `serve` start: finish installs a stop cut off; drop environments nobody uses."""
        for hook in self.hooks.in_state(INSTALLING):
            self.schedule(hook)
        self.collect()

    def schedule(self, hook: dict) -> dict:
        """Install the saved hook's dependencies unless they are ready (a save that changed
        them made them `installing`; a failed install is tried again), in the background when
        an index is needed; returns the hook as it stands now."""
        if hook["dependencies_status"] == READY:
            return hook  # unchanged: a script edit never moves `latest` to a newer release
        dependencies = hook["dependencies"]
        if not self.environments.needs_environment(dependencies):
            self._record(hook["id"], dependencies, READY)
        else:
            self._record(hook["id"], dependencies, INSTALLING)
            self._pool.submit(self._install, hook["id"], dependencies)
        return self.hooks.get(hook["id"])

    def _install(self, hook_id: str, dependencies: dict) -> None:
        started = time.monotonic()
        key = None
        try:
            lockfile = self.environments.resolve(dependencies)
            key = self.environments.key(lockfile)
            with self.changed:
                self._pending.add(key)
            self.environments.install(lockfile)
            self._record(hook_id, dependencies, READY, lockfile=lockfile, environment=key)
            log.info("Hook %s: dependencies installed in %.1f s", hook_id,
                     time.monotonic() - started)
        except DependencyError as error:
            self._record(hook_id, dependencies, FAILED, error=error.message)
        except Exception:  # an engine fault: the hook says so instead of installing forever
            log.exception("Hook %s: installing its dependencies failed", hook_id)
            self._record(hook_id, dependencies, FAILED,
                         error="the engine failed while installing; see the engine log")
        with self.changed:
            self._pending.discard(key)
        self.collect()

    def _record(self, hook_id: str, dependencies: dict, status: str, **state) -> None:
        self.hooks.set_installed(hook_id, dependencies, status, **state)
        with self.changed:
            self.changed.notify_all()

    def environment_for(self, hook: dict) -> tuple[str | None, float]:
        """The stored hook's environment directory (None: the engine's own packages), and
        the seconds waited for its install. DependencyError when the install failed, 503 when
        it is still going after the wait."""
        started = time.monotonic()
        deadline = started + self.wait_seconds
        with self.changed:
            while True:
                state = self.hooks.installed(hook["id"])
                if state["status"] != INSTALLING or time.monotonic() >= deadline:
                    break
                self.changed.wait(min(1.0, max(0.0, deadline - time.monotonic())))
        waited = time.monotonic() - started
        if state["status"] == FAILED:
            raise DependencyError(f"The hook's dependencies could not be installed: "
                                  f"{state['error']} Fix them and save the hook again.")
        if state["status"] == INSTALLING:
            raise ServiceUnavailable(
                f"The hook's dependencies are still installing after {waited:.0f} s; retry "
                "shortly (GET /api/v2/hooks/{id} shows dependencies_status).")
        if state["environment"] is None:
            return None, waited
        path = self.environments.path(state["environment"])
        if path is None:  # removed from disk behind our back: build it again, now
            path = self.environments.install(state["lockfile"])
        return str(path), waited

    def environment_now(self, dependencies: dict) -> str | None:
        """A draft's (or a local file's) environment, resolved and installed in this thread."""
        if not self.environments.needs_environment(dependencies):
            return None
        lockfile = self.environments.resolve(dependencies)
        return str(self.environments.install(lockfile))

    def collect(self) -> None:
        """Remove environments no hook uses any more (a local run's installer has no hooks,
        and leaves the data directory's environments alone)."""
        if self.hooks is None:
            return
        with self.changed:
            keep = self.hooks.environments_in_use() | self._pending
        try:
            # No grace period: what is being installed is in `keep` until its hook has it.
            removed = self.environments.collect(keep, min_age=0)
        except OSError:
            log.exception("Could not remove unused environments")
            return
        if removed:
            log.info("Removed %d environment(s) no hook uses", len(removed))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
