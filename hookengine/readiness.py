"""Whether this server can take runs now: the checks behind GET /readyz.

A check that finds a zygote dead also has it restarted, in the background: a server that a
load balancer took out of rotation gets no runs, and runs are what would otherwise restart
it (Sandbox restarts a dead zygote lazily, at the next run), so it would never be ready again.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)

# Short: a probe must answer before its own timeout (often 1-5 s), and a store or zygote
# slower than this is not ready to take a run anyway.
STORE_TIMEOUT_SECONDS = 1.0
PING_TIMEOUT_SECONDS = 2.0


def check(engine) -> dict[str, str]:
    """Each check's result, "ok" or what is wrong: the store takes a write, and every zygote
    started so far answers a ping (one not started yet, as in a CLI command, is not asked)."""
    results = {"store": _store(engine.store), "node": engine.nodes.healthy()}
    if engine.runner.draining.is_set():
        results["node"] = "draining: finishing its runs before it stops"
    for kind, sandbox in engine.sandboxes.started().items():
        results[f"zygote_{kind}"] = _zygote(sandbox)
    return results


def _store(store) -> str:
    try:
        store.check_writable(STORE_TIMEOUT_SECONDS)
    except store.errors as error:
        return f"cannot write: {error}"
    return "ok"


def _zygote(sandbox) -> str:
    try:
        sandbox.ping(PING_TIMEOUT_SECONDS)
    except OSError as error:
        process = sandbox.process
        if process is None or process.poll() is not None:
            threading.Thread(target=_restart, args=(sandbox,), daemon=True).start()
            return f"not answering ({error}); restarting it"
        return f"not answering ({error})"
    return "ok"


def _restart(sandbox) -> None:
    try:
        sandbox.ensure_running()
    except Exception:  # the next check reports it again, and tries again
        log.exception("Could not restart a sandbox zygote")
