"""The web editor in headless Chromium: time to interactive of the Hook editor page (its
code and payload editors built, the hook loaded, its first check answered... up to the
moment it takes keys) and what the page weighs, against the sign-in page (one HTML document
and a stylesheet, no script) loaded in the same run."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import record

LOADS = 10
TRIGGER = "post-user-registration"
SCRIPT = 'def post_user_registration(user, context):\n    print("hi")\n    return {}\n'


def run(rounds: int = 3) -> None:
    from browser import installed, start_chromium
    from serverprocess import ServerProcess

    if not installed():
        print("  web editor: skipped (apt-get install chromium chromium-driver)")
        return
    with tempfile.TemporaryDirectory() as directory:
        server = ServerProcess(Path(directory) / "data", INDEX_URL="none",
                               LOG_LEVEL="WARNING").start()
        driver = start_chromium()
        try:
            hook = server.call("POST", "/hooks", json={"name": "bench", "script": SCRIPT,
                                                       "triggerId": TRIGGER}).json()
            driver.get(f"{server.base}/ui/sign-in")
            driver.find_element("id", "token").send_keys(server.token + "\n")
            editor = f"{server.base}/ui/hooks/{hook['id']}"
            for cache in ("cold", "warm"):
                # Cold: nothing cached, every byte fetched; warm: files revalidated (304).
                driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled":
                                                                    cache == "cold"})
                ready = _median(rounds, lambda: _interactive(driver, editor))
                plain = _median(rounds, lambda: _loaded(driver, f"{server.base}/ui/sign-in"))
                record(f"editor page, time to interactive, {cache} cache (median ms)",
                       f"{ready:.0f}", f"sign-in page (no script) loaded: {plain:.0f} ms",
                       f"{ready / plain:.1f}x; goal < 500 ms")
            driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
            weight = _weight(driver, editor)
            record("editor page weight, gzipped as sent (KB)", f"{weight / 1024:.0f}",
                   "CodeMirror bundle alone: "
                   f"{_bundle_gzip(driver, editor) / 1024:.0f} KB", "goal ≤ 200 KB")
        finally:
            driver.quit()
            server.terminate()


def _median(rounds: int, measure) -> float:
    return statistics.median(statistics.median(measure() for _ in range(LOADS))
                             for _ in range(rounds))


def _interactive(driver, url: str) -> float:
    """Milliseconds from navigation start to the editor's own "interactive" mark."""
    driver.get("about:blank")
    driver.get(url)
    for _ in range(500):
        marks = driver.execute_script(
            "return performance.getEntriesByName('hookengine:interactive')"
            ".map(m => m.startTime)")
        if marks:
            return marks[0]
        time.sleep(0.005)
    raise RuntimeError("the editor never became interactive")


def _loaded(driver, url: str) -> float:
    driver.get("about:blank")
    driver.get(url)
    return driver.execute_script("const n = performance.getEntriesByType('navigation')[0];"
                                 "return n.loadEventEnd || n.domComplete;")


def _weight(driver, url: str) -> int:
    """Bytes of the document and every file the editor fetched (as sent: gzipped), not the
    API's JSON answers, which are the hook's own data."""
    _interactive(driver, url)
    return driver.execute_script(
        "return [performance.getEntriesByType('navigation')[0],"
        " ...performance.getEntriesByType('resource').filter(r => r.name.includes('/ui/'))]"
        ".reduce((sum, r) => sum + r.encodedBodySize, 0)")


def _bundle_gzip(driver, url: str) -> int:
    return driver.execute_script(
        "return performance.getEntriesByType('resource').filter(r => "
        "r.name.includes('hook-editor.js'))[0].encodedBodySize")
