"""Environment zygotes: one per package directory, its packages first on the
path, readable by its hooks alone, started on first use and stopped least recently used first.

The environments are built by hand (as `pip install --target` would leave them) under /run,
world-readable: hook uids must be able to read them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

from hookengine.config import DEFAULTS
from hookengine.runner import limits_from
from hookengine.sandbox import EgressPolicy, Job, Sandboxes
from hookengine.sandbox.jail import readable_paths
from hookengine.sandbox.zygote import SLOTS

UID_BASE = 70000  # clear of the session sandbox's (61000) and the attack suite's (64000)

DEMO = '''
VERSION = {version!r}


def greet(who):
    return "hello " + who + " from " + VERSION
'''

HOOK = '''
import hookdemo

def run(name):
    return [hookdemo.VERSION, hookdemo.greet(name)]
'''


def write_package(site: Path, dist: str, version: str, files: dict[str, str]) -> None:
    """A package as an installer leaves it: its files and a dist-info naming them."""
    for name, text in files.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(text)
    info = site / f"{dist}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    tops = sorted({name.split("/")[0].removesuffix(".py") for name in files})
    (info / "top_level.txt").write_text("\n".join(tops) + "\n")
    record = [f"{name},," for name in files]
    record += [f"{info.name}/{n},," for n in ("METADATA", "top_level.txt", "RECORD")]
    (info / "RECORD").write_text("\n".join(record) + "\n")


def make_readable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)


@pytest.fixture(scope="module")
def envs():
    """Three environments under one envs/ parent: hookdemo 1.0.0 and 2.0.0 (each next to a
    package that fails on import), and one holding a stand-in `idna`, a module the engine's
    own virtualenv has too."""
    root = Path(tempfile.mkdtemp(prefix="hookengine-envs-", dir="/run"))
    sites = {}
    for number in (1, 2):
        site = sites[number] = root / "envs" / f"env{number}"
        site.mkdir(parents=True)
        write_package(site, "hookdemo", f"{number}.0.0",
                      {"hookdemo/__init__.py": DEMO.format(version=f"{number}.0.0")})
        write_package(site, "broken", "0.1", {"broken.py": "raise RuntimeError('no')\n"})
    shadow = sites["idna"] = root / "envs" / "env-idna"
    shadow.mkdir()
    write_package(shadow, "idna", "99.0", {"idna/__init__.py": "SHADOW = 'from the env'\n"})
    make_readable(root)
    yield {key: str(path) for key, path in sites.items()}
    shutil.rmtree(root, ignore_errors=True)


def job(source: str = HOOK, environment: str | None = None, dependencies=None,
        args=("ada",)) -> Job:
    return Job(source=source, entry="run", params=["name"], args=list(args), secrets={},
               dependencies=dict(dependencies or {"hookdemo": "*"}),
               limits=limits_from(DEFAULTS), egress=EgressPolicy(),
               max_script_bytes=DEFAULTS["MAX_SCRIPT_BYTES"],
               max_ast_depth=DEFAULTS["MAX_AST_DEPTH"], environment=environment)


@pytest.fixture
def make_sandboxes():
    made = []

    def make(**options) -> Sandboxes:
        sandboxes = Sandboxes([], uid_base=UID_BASE, **options)
        made.append(sandboxes)
        return sandboxes
    yield make
    for sandboxes in made:
        sandboxes.close()


def ok(result):
    assert result.status == "success", (result.status, result.error, result.logs)
    return result.result


def test_each_environment_sees_its_own_version(envs, make_sandboxes):
    sandboxes = make_sandboxes()
    for number in (1, 2, 1):  # side by side, then the first again: it is kept
        assert ok(sandboxes.execute(job(environment=envs[number]))) == [
            f"{number}.0.0", f"hello ada from {number}.0.0"]
    one, two = (sandboxes.for_dependencies({"hookdemo": "*"}, envs[n]) for n in (1, 2))
    assert one is not two and one.process.pid != two.process.pid
    assert [one.uid_base, two.uid_base] == [UID_BASE + 2 * SLOTS, UID_BASE + 3 * SLOTS]
    assert sorted(k.split("-")[0] for k in sandboxes.started()) == ["env0", "env1"]


def test_the_allowed_modules_come_from_the_environment(envs):
    assert json.loads(job(environment=envs[1]).to_request())["allowed_roots"] == ["hookdemo"]
    assert json.loads(job().to_request())["allowed_roots"] == []  # not in the engine's


def test_without_an_environment_the_package_is_not_there(envs, make_sandboxes):
    result = make_sandboxes().execute(job())
    assert result.status == "error" and result.error["name"] == "ImportError", result.error


def test_undeclared_packages_of_the_environment_stay_out_of_reach(envs, make_sandboxes):
    source = "import idna\n\ndef run(name):\n    return idna.SHADOW\n"
    result = make_sandboxes().execute(job(source, environment=envs[1]))
    assert result.status == "error" and result.error["name"] == "ImportError", result.error


def test_the_environment_shadows_the_engines_own_packages(envs, make_sandboxes):
    source = "import idna\n\ndef run(name):\n    return idna.SHADOW\n"
    result = make_sandboxes().execute(job(source, envs["idna"], {"idna": "*"}))
    assert ok(result) == "from the env"


def test_readable_paths_hold_this_environment_and_no_other(envs):
    dirs, _ = readable_paths(envs[1])
    assert envs[1] in dirs
    for other in (envs[2], envs["idna"]):
        assert not any(other == d or other.startswith(d.rstrip("/") + "/") for d in dirs)


def test_the_least_recently_used_zygote_stops_for_a_new_one(envs, make_sandboxes):
    sandboxes = make_sandboxes(max_environments=1)
    ok(sandboxes.execute(job(environment=envs[1])))
    first = sandboxes.for_dependencies({"hookdemo": "*"}, envs[1])
    ok(sandboxes.execute(job(environment=envs[2])))
    assert first.process.poll() is not None  # stopped: its process exited
    second = sandboxes.for_dependencies({"hookdemo": "*"}, envs[2])
    assert second.uid_base == UID_BASE + 2 * SLOTS  # the freed slot, again
    assert ok(sandboxes.execute(job(environment=envs[1])))[0] == "1.0.0"
    again = sandboxes.for_dependencies({"hookdemo": "*"}, envs[1])
    assert again is not first and again.process.poll() is None
    assert second.process.poll() is not None
    assert len(sandboxes.started()) == 1


def test_a_busy_zygote_is_not_stopped(envs, make_sandboxes):
    sandboxes = make_sandboxes(max_environments=1)
    slow = "import time\n\ndef run(name):\n    time.sleep(1.5)\n    return name\n"
    answers = []
    thread = threading.Thread(target=lambda: answers.append(
        sandboxes.execute(job(slow, environment=envs[1]))))
    thread.start()
    try:
        ok(sandboxes.execute(job(environment=envs[2])))  # starts while the first runs
    finally:
        thread.join()
    assert ok(answers[0]) == "ada"
    # The run over, the excess goes: the least recently used one, now idle.
    assert list(k.split("-")[0] for k in sandboxes.started()) == ["env1"]


def test_concurrent_first_runs_start_one_zygote(envs, make_sandboxes):
    sandboxes = make_sandboxes()
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        sandboxes.execute(job(environment=envs[2])))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [ok(r)[0] for r in results] == ["2.0.0"] * 4
    assert len(sandboxes.started()) == 1


def test_a_memory_budget_stops_idle_zygotes(envs, make_sandboxes):
    sandboxes = make_sandboxes(environments_max_mb=1)  # less than any one zygote
    ok(sandboxes.execute(job(environment=envs[1])))
    first = sandboxes.for_dependencies({"hookdemo": "*"}, envs[1])
    ok(sandboxes.execute(job(environment=envs[2])))
    assert first.process.poll() is not None
    assert len(sandboxes.started()) == 1  # the one in use stays, over budget or not
