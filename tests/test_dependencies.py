"""Declared dependencies for real, through a real server: installed with uv on save from a
package index the tests build themselves (no network), each lock in its own environment and
zygote, runs waiting for an install, failures named, unused environments removed.

The index is served over HTTP by a gate: a test that needs an install to be "still going"
holds the index's answers back until it says so, instead of relying on timing.
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import pytest
import requests

from loopback import LoopbackServer, QuietHandler
from packageindex import build, default_index_reachable, wheel
from serverprocess import ServerProcess

ALLOWED = "twilio,vonage,requests,hookdemo,sdistonly"


def script(requirement: str) -> str:
    return ("# /// script\n"
            f"# dependencies = [{requirement!r}]\n"
            "# [tool.hookengine]\n"
            "# trigger = \"send-phone-message\"\n"
            "# ///\n"
            "import hookdemo\n\n"
            "def send_phone_message(recipient, text, context):\n"
            "    print('hookdemo', hookdemo.VERSION)\n"
            "    return {\"MessageID\": hookdemo.VERSION}\n").replace("'", '"')


class GatedIndex:
    """The find-links directory over HTTP: a page of links, then the files; while `shut`,
    every answer waits."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.open = threading.Event()
        self.open.set()
        self.asked = threading.Event()
        index = self

        class Handler(QuietHandler):
            def do_GET(self):
                index.asked.set()
                index.open.wait(120)
                name = self.path.strip("/")
                if not name:
                    links = "".join(f'<a href="/{p.name}">{p.name}</a>\n'
                                    for p in sorted(index.directory.iterdir()) if p.is_file())
                    body = f"<html><body>\n{links}</body></html>".encode()
                    kind = "text/html"
                elif (index.directory / name).is_file():
                    body, kind = (index.directory / name).read_bytes(), "application/octet-stream"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.loopback = LoopbackServer(Handler)
        self.url = self.loopback.url + "/"

    def shut(self):
        self.asked.clear()
        self.open.clear()

    def close(self):
        self.open.set()
        self.loopback.close()


@pytest.fixture
def index(tmp_path):
    directory = tmp_path / "index"
    directory.mkdir()
    build(directory)
    gated = GatedIndex(directory)
    yield gated
    gated.close()


@pytest.fixture
def server(tmp_path, index):
    server = ServerProcess(tmp_path / "data", INDEX_URL="none", FIND_LINKS=index.url,
                           ALLOWED_PACKAGES=ALLOWED, TIMEOUT_SECONDS=10).start()
    yield server
    if server.process.poll() is None:
        server.terminate()


def create(server, name: str, source: str, **fields) -> dict:
    created = server.call("POST", "/hooks", json={"name": name, "script": source,
                                                  "triggerId": "send-phone-message",
                                                  **fields})
    assert created.status_code == 201, created.text
    return created.json()


def settled(server, hook_id: str) -> dict:
    """The hook once its install has ended (ready or failed)."""
    deadline = time.monotonic() + 120
    while True:
        hook = server.call("GET", f"/hooks/{hook_id}").json()
        if hook["dependencies_status"] != "installing" or time.monotonic() > deadline:
            return hook
        time.sleep(0.2)


def run(server, hook_id: str) -> requests.Response:
    return server.call("POST", f"/hooks/{hook_id}/run", json={})


def environments(server) -> set[str]:
    root = Path(server.data_dir) / "envs"
    return {p.name for p in root.iterdir() if p.is_dir() and len(p.name) == 64} \
        if root.exists() else set()


def test_two_versions_of_one_package_run_side_by_side(server):
    old = create(server, "old", script("hookdemo==1.0.0"))
    new = create(server, "new", script("hookdemo==2.0.0"), enabled=False)
    assert {settled(server, h["id"])["dependencies_status"] for h in (old, new)} == {"ready"}
    for _ in range(2):  # interleaved: each zygote stays its own
        for hook, version in ((old, "1.0.0"), (new, "2.0.0")):
            record = run(server, hook["id"]).json()
            assert (record["status"], record["result"]) == ("success", {"MessageID": version})
    assert len(environments(server)) == 2


def test_latest_is_pinned_at_save(server, index):
    hook = create(server, "latest", script("hookdemo"))
    assert settled(server, hook["id"])["dependencies_status"] == "ready"
    locked = server.call("GET", f"/hooks/{hook['id']}/lockfile").json()
    assert "hookdemo==2.0.0" in locked["lockfile"] and "hookdemo-helper==" in locked["lockfile"]
    wheel(index.directory, "hookdemo", "3.0.0")  # a newer release after the save
    server.call("PATCH", f"/hooks/{hook['id']}", json={"name": "latest-renamed"})
    record = run(server, hook["id"]).json()
    assert record["result"] == {"MessageID": "2.0.0"}  # the run is the saved lock's


@pytest.mark.parametrize("requirement, cause", [
    ("hookdemo==9.9.9", "hookdemo"),
    ("sdistonly==1.0", "wheel"),
])
def test_an_install_that_cannot_be_done_fails_naming_the_cause(server, index, requirement,
                                                                cause):
    hook = settled(server, create(server, "broken", script(requirement))["id"])
    assert hook["dependencies_status"] == "failed"
    assert cause in hook["dependencies_error"], hook["dependencies_error"]
    refused = run(server, hook["id"])
    assert refused.status_code == 400 and cause in refused.json()["message"]
    assert not (index.directory / "sdistonly-setup-py-ran").exists()  # no build step ran


def test_a_package_not_allowed_is_refused_on_save(server):
    response = server.call("POST", "/hooks", json={
        "name": "stripe", "script": script("hookdemo"), "triggerId": "send-phone-message",
        "dependencies": {"stripe": "latest"}})
    assert response.status_code == 400 and "stripe" in response.text


def test_a_run_during_the_install_waits_and_then_succeeds(server, index):
    index.shut()
    hook = create(server, "slow", script("hookdemo==1.0.0"))
    assert hook["dependencies_status"] == "installing"
    assert index.asked.wait(60)  # the resolver is waiting on the index now
    answers: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: answers.put(run(server, hook["id"])), daemon=True).start()
    with pytest.raises(queue.Empty):
        answers.get(timeout=1)  # the run waits for the install (the index is still shut)
    index.open.set()
    record = answers.get(timeout=120).json()
    assert (record["status"], record["result"]) == ("success", {"MessageID": "1.0.0"})
    assert record["logs"][0]["stream"] == "engine" and "waited" in record["logs"][0]["message"]


def test_a_killed_install_is_finished_at_the_next_start(server, index):
    index.shut()
    hook = create(server, "cut", script("hookdemo==2.0.0"))
    assert index.asked.wait(60)
    server.kill()  # mid-install
    assert environments(server) == set()  # nothing half-built counts as an environment
    index.open.set()
    server.start()
    assert settled(server, hook["id"])["dependencies_status"] == "ready"
    assert run(server, hook["id"]).json()["result"] == {"MessageID": "2.0.0"}
    leftovers = [p.name for p in (Path(server.data_dir) / "envs").iterdir()
                 if p.is_dir() and p.name not in environments(server)]
    assert leftovers == []


def test_environments_no_hook_uses_are_removed(server):
    hook = create(server, "moving", script("hookdemo==1.0.0"))
    settled(server, hook["id"])
    [first] = environments(server)
    server.call("PATCH", f"/hooks/{hook['id']}", json={"script": script("hookdemo==2.0.0")})
    assert settled(server, hook["id"])["dependencies_status"] == "ready"
    assert first not in environments(server) and len(environments(server)) == 1
    server.call("DELETE", f"/hooks/{hook['id']}")
    assert environments(server) == set()


def test_hooks_on_the_engines_own_packages_need_no_index(server, index):
    index.shut()  # any request to the index would hang this test
    hook = create(server, "own", "# /// script\n# dependencies = [\"requests\"]\n"
                                 "# [tool.hookengine]\n# trigger = \"send-phone-message\"\n"
                                 "# ///\nimport requests\n\n"
                                 "def send_phone_message(recipient, text, context):\n"
                                 "    return {\"MessageID\": str(requests.codes.ok)}\n")
    assert hook["dependencies_status"] == "ready"
    assert run(server, hook["id"]).json()["status"] == "success"
    assert not index.asked.is_set()


PHONENUMBERS = """# /// script
# dependencies = ["phonenumbers"]
# [tool.hookengine]
# trigger = "send-phone-message"
# ///
import phonenumbers

def send_phone_message(recipient, text, context):
    number = phonenumbers.parse("(202) 555-0143", "US")
    return {"MessageID": phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)}
"""


@pytest.mark.skipif(not default_index_reachable(), reason="the package index is unreachable")
def test_a_real_package_from_the_configured_index(tmp_path):
    """The one test that uses the network: phonenumbers from the index pip is set up for."""
    server = ServerProcess(tmp_path / "data", ALLOWED_PACKAGES="phonenumbers").start()
    try:
        hook = create(server, "e164", PHONENUMBERS)
        assert settled(server, hook["id"])["dependencies_status"] == "ready"
        assert "phonenumbers==" in server.call("GET", f"/hooks/{hook['id']}/lockfile"
                                               ).json()["lockfile"]
        record = run(server, hook["id"]).json()
        assert (record["status"], record["result"]) == ("success", {"MessageID": "+12025550143"})
    finally:
        server.terminate()
