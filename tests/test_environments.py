"""Hooks' own dependencies: locked with uv, installed once per lockfile, wheels only, collected.

Everything resolves from a find-links directory of wheels built by tests/packageindex.py with
no index at all (HOOKENGINE_INDEX_URL=none); one test installs a real package from the default
index and skips when it cannot be reached.
"""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from hookengine import environments as environments_module
from hookengine.config import load_settings
from hookengine.environments import DependencyError, Environments, Index, index_for

sys.path.insert(0, str(Path(__file__).parent))
import packageindex  # noqa: E402

TWILIO = metadata.version("twilio")
REQUESTS = metadata.version("requests")


@pytest.fixture(scope="session")
def wheels(tmp_path_factory):
    return packageindex.build(tmp_path_factory.mktemp("index"))


@pytest.fixture
def settings(tmp_path, wheels):
    return load_settings({"DATA_DIR": str(tmp_path / "data"), "INDEX_URL": "none",
                          "FIND_LINKS": str(wheels),
                          "ALLOWED_PACKAGES": "twilio,vonage,requests,hookdemo,sdistonly,"
                                              "nosuchpackage"},
                         env_file=None, environ={})


@pytest.fixture
def envs(settings):
    return Environments(settings["DATA_DIR"], settings)


def pins(lock: str) -> dict[str, str]:
    return environments_module._pins(lock)


def run_in(environment: Path, code: str) -> str:
    """Run `code` with only the environment (and the stdlib) importable."""
    prelude = f"import sys; sys.path.insert(0, {str(environment)!r}); "
    return subprocess.run([sys.executable, "-I", "-S", "-c", prelude + code], check=True,
                          text=True, capture_output=True).stdout


# --- what needs an environment -------------------------------------------------------

@pytest.mark.parametrize("dependencies", [
    {"twilio": TWILIO}, {"twilio": "latest"}, {"requests": REQUESTS, "vonage": "latest"},
    {"Twilio": TWILIO}, {},
])
def test_the_engines_own_packages_need_no_environment(envs, dependencies):
    assert envs.needs_environment(dependencies) == {}
    assert envs.resolve(dependencies) == ""


def test_other_versions_and_other_packages_need_an_environment(envs):
    wanted = {"twilio": "1.0.0", "requests": REQUESTS, "hookdemo": "latest",
              "flask": "latest"}  # flask is installed, but it is the engine's, not the hooks'
    assert envs.needs_environment(wanted) == {"twilio": "1.0.0", "hookdemo": "latest",
                                              "flask": "latest"}


# --- resolving -----------------------------------------------------------------------

def test_latest_is_pinned_to_the_newest_version_with_its_requirements(envs):
    lock = envs.resolve({"hookdemo": "latest", "twilio": "latest"})
    assert pins(lock) == {"hookdemo": "2.0.0", "hookdemo-helper": "1.0.0"}
    assert lock.count("--hash=sha256:") == 2
    assert lock.startswith("# hookengine lock for ")


def test_an_exact_version_is_pinned(envs):
    assert pins(envs.resolve({"hookdemo": "1.0.0"})) == {"hookdemo": "1.0.0"}


def test_the_same_dependencies_give_the_same_lock(envs):
    assert envs.resolve({"hookdemo": "latest"}) == envs.resolve({"hookdemo": "2.0.0"})


def test_a_version_that_does_not_exist_is_named(envs):
    with pytest.raises(DependencyError) as error:
        envs.resolve({"hookdemo": "3.0.0"})
    assert "hookdemo 3.0.0" in error.value.message
    assert "does not exist" in error.value.message
    assert error.value.status_code == 400 and error.value.error_code == "dependency_failed"


def test_a_package_that_does_not_exist_is_named(envs):
    with pytest.raises(DependencyError, match="nosuchpackage latest: no such package"):
        envs.resolve({"nosuchpackage": "latest"})


def test_a_source_only_package_is_refused_and_never_built(envs, wheels):
    with pytest.raises(DependencyError) as error:
        envs.resolve({"sdistonly": "1.0"})
    assert "sdistonly 1.0" in error.value.message
    assert "ships only source, and hookengine installs wheels only" in error.value.message
    assert not (wheels / packageindex.BUILT_MARKER).exists()


def test_a_package_not_allowed_is_refused_before_uv_runs(envs):
    with pytest.raises(DependencyError, match="hookdemo-helper 1.0.0: the package is not "
                                              "allowed"):
        envs.resolve({"hookdemo-helper": "1.0.0"})


def test_any_package_is_allowed_with_a_star(settings, tmp_path):
    settings["ALLOWED_PACKAGES"] = ["*"]
    envs = Environments(settings["DATA_DIR"], settings)
    assert pins(envs.resolve({"hookdemo-helper": "latest"})) == {"hookdemo-helper": "1.0.0"}


def test_an_operators_uv_configuration_is_not_read(envs, monkeypatch):
    # Were UV_* read, this would send uv to an index that does not exist.
    monkeypatch.setenv("UV_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("UV_NO_INDEX", "0")
    monkeypatch.setenv("UV_OFFLINE", "1")
    assert pins(envs.resolve({"hookdemo": "1.0.0"})) == {"hookdemo": "1.0.0"}


# --- installing ----------------------------------------------------------------------

def test_install_is_content_addressed_and_importable(envs):
    lock = envs.resolve({"hookdemo": "latest"})
    environment = envs.install(lock)
    assert environment == envs.root / envs.key(lock) == envs.path(envs.key(lock))
    assert run_in(environment, "import hookdemo, hookdemo_helper; print(hookdemo.VERSION)") \
        == "2.0.0\n"
    assert (environment / environments_module.LOCK_FILE).read_text() == lock
    assert any(envs.cache.iterdir())  # uv's cache is the engine's, in its data directory


@pytest.mark.parametrize("line", ["--index-url http://evil.example/simple",
                                  "-e /tmp/project", "hookdemo>=1"])
def test_install_takes_only_pinned_hashed_lines(envs, line):
    lock = envs.resolve({"hookdemo": "1.0.0"})
    with pytest.raises(DependencyError, match="not a lockfile hookengine wrote"):
        envs.install(lock + line + "\n")


def test_install_is_idempotent(envs, monkeypatch):
    lock = envs.resolve({"hookdemo": "1.0.0"})
    first = envs.install(lock)
    monkeypatch.setattr(Environments, "_uv", lambda *a, **k: pytest.fail("installed twice"))
    assert envs.install(lock) == first
    assert [p.name for p in envs.root.iterdir() if not p.name.startswith(".")] == [first.name]


def test_concurrent_installs_of_one_lock_install_once(envs, monkeypatch):
    import threading
    lock = envs.resolve({"hookdemo": "1.0.0"})
    calls = []
    real = Environments._uv

    def counting(self, args, **kwargs):
        calls.append(args[1])
        return real(self, args, **kwargs)
    monkeypatch.setattr(Environments, "_uv", counting)
    results = []
    threads = [threading.Thread(target=lambda: results.append(envs.install(lock)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == ["install"] and len(set(results)) == 1 and len(results) == 4


def test_the_environment_is_readable_by_every_user_and_writable_by_none(envs):
    environment = envs.install(envs.resolve({"hookdemo": "1.0.0"}))
    for path in [environment, *environment.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert mode & 0o444 == 0o444 and not mode & 0o022, (path, oct(mode))


def test_an_unknown_or_malformed_key_has_no_environment(envs):
    assert envs.path("0" * 64) is None
    assert envs.path("../../etc") is None


def test_a_killed_install_is_never_used_and_is_collected(envs):
    lock = envs.resolve({"hookdemo": "1.0.0"})
    key = envs.key(lock)
    envs.root.mkdir(parents=True)
    left = envs.root / f".tmp-{key}-killed"  # what an install killed before its rename leaves
    (left / "hookdemo").mkdir(parents=True)
    assert envs.path(key) is None
    assert envs.collect(set(), min_age=0) == []
    assert not left.exists()
    assert envs.path(envs.key(lock)) is None and envs.install(lock) == envs.root / key


KILLED_INSTALL = """
import os, sys
from hookengine import environments
from hookengine.config import load_settings
settings = load_settings({"DATA_DIR": sys.argv[1], "INDEX_URL": "none"}, env_file=None,
                         environ={})
# uv "installs" one file, then the engine dies (SIGKILL) before renaming the environment.
environments.uv_binary = lambda: sys.argv[2]
environments.Environments(sys.argv[1], settings).install(sys.argv[3])
"""


def test_an_engine_killed_mid_install_leaves_nothing_used(envs, tmp_path):
    lock = envs.resolve({"hookdemo": "1.0.0"})
    uv = tmp_path / "uv"
    uv.write_text("#!/bin/sh\n"
                  'while [ "$1" != --target ]; do shift; done\n'
                  'touch "$2/partial"\n'
                  "kill -9 $PPID\n"
                  "exit 1\n")
    uv.chmod(0o755)
    child = subprocess.run([sys.executable, "-c", KILLED_INSTALL, str(envs.data_dir), str(uv),
                            lock], capture_output=True, text=True)
    assert child.returncode == -9, child.stderr
    left = [p for p in envs.root.iterdir() if p.name.startswith(".tmp-")]
    assert len(left) == 1 and (left[0] / "partial").exists()
    assert envs.path(envs.key(lock)) is None
    envs.collect(set(), min_age=0)
    assert not left[0].exists()
    assert envs.install(lock) == envs.path(envs.key(lock))


def test_an_install_in_progress_is_not_collected(envs):
    key = "a" * 64
    envs.root.mkdir(parents=True)
    work = envs.root / f".tmp-{key}-running"
    work.mkdir()
    # Another process installing `key` holds its lock file.
    fd = os.open(envs.root / f".lock-{key}", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        envs.collect(set(), min_age=0)
        assert work.exists()
    finally:
        os.close(fd)
    envs.collect(set(), min_age=0)
    assert not work.exists()


def test_collect_removes_environments_no_hook_uses(envs):
    old = envs.install(envs.resolve({"hookdemo": "1.0.0"}))
    kept = envs.install(envs.resolve({"hookdemo": "2.0.0"}))
    assert envs.collect({kept.name}, min_age=0) == [old.name]
    assert envs.path(old.name) is None and envs.path(kept.name) == kept
    assert sorted(p.name for p in envs.root.iterdir()) == [f".lock-{kept.name}", kept.name]


def test_collect_spares_environments_just_installed(envs):
    # A hook being saved installs its environment before its key is in the store.
    environment = envs.install(envs.resolve({"hookdemo": "1.0.0"}))
    assert envs.collect(set()) == []
    assert envs.path(environment.name) == environment


def test_installs_stop_at_the_disk_cap(envs, settings):
    environment = envs.install(envs.resolve({"hookdemo": "1.0.0"}))
    (environment / "ballast").write_bytes(b"x" * (2 * 2**20))
    settings["ENVS_MAX_MB"] = 1
    with pytest.raises(DependencyError) as error:
        envs.install(envs.resolve({"hookdemo": "2.0.0"}))
    assert "environments use 2.0 MB of HOOKENGINE_ENVS_MAX_MB=1" in error.value.message
    assert [p.name for p in envs.root.iterdir() if not p.name.startswith(".")] == \
        [environment.name]


def test_an_install_that_passes_the_cap_is_undone(envs, settings):
    settings["ENVS_MAX_MB"] = 0
    with pytest.raises(DependencyError, match="HOOKENGINE_ENVS_MAX_MB=0"):
        envs.install(envs.resolve({"hookdemo": "1.0.0"}))
    assert not [p for p in envs.root.iterdir() if not p.name.startswith(".lock-")]


# --- index settings and what the index offers ----------------------------------------

def test_index_settings_become_uv_arguments(settings):
    assert index_for(settings).uv_args() == ["--no-index",
                                             "--find-links", settings["FIND_LINKS"][0]]
    settings.update(INDEX_URL="https://pypi.example/simple/",
                    EXTRA_INDEX_URLS=["https://extra.example/simple"])
    assert index_for(settings).uv_args()[:4] == ["--index-url", "https://pypi.example/simple",
                                                  "--extra-index-url",
                                                  "https://extra.example/simple"]


def test_an_empty_index_url_uses_what_pip_is_configured_to_use(settings, monkeypatch):
    monkeypatch.setattr(environments_module, "pip_configuration",
                        lambda: {"index-url": "https://mirror.example/simple",
                                 "find-links": "/srv/wheels"})
    settings.update(INDEX_URL="", FIND_LINKS=[])
    assert index_for(settings) == Index("https://mirror.example/simple", (), ("/srv/wheels",))
    monkeypatch.setattr(environments_module, "pip_configuration", lambda: {})
    assert index_for(settings).url == environments_module.PYPI


def test_versions_lists_the_wheels_offered_newest_first(envs):
    assert envs.versions("hookdemo") == ["2.0.0", "1.0.0"]
    assert envs.versions("HookDemo-Helper") == ["1.0.0"]
    assert envs.versions("sdistonly") == []  # no wheel, nothing hookengine could install


def test_versions_read_a_simple_index_on_disk(settings, wheels, tmp_path):
    project = tmp_path / "simple" / "hookdemo"
    project.mkdir(parents=True)
    (project / "index.html").write_text(
        '<a href="../../f/hookdemo-1.0.0-py3-none-any.whl#sha256=00">x</a>'
        '<a href="../../f/hookdemo-1.5.0-py3-none-any.whl" data-yanked="">x</a>'
        '<a href="../../f/hookdemo-9.0.0-cp27-cp27m-win32.whl">x</a>')
    settings.update(INDEX_URL=(tmp_path / "simple").as_uri(), FIND_LINKS=[])
    offered = Environments(settings["DATA_DIR"], settings).offered("hookdemo")
    assert offered.versions == ["1.0.0"] and offered.error is None


def test_an_unreachable_index_gives_an_error_not_an_exception(settings):
    settings.update(INDEX_URL="http://user:pw@127.0.0.1:9/simple")
    offered = Environments(settings["DATA_DIR"], settings).offered("hookdemo")
    assert offered.versions == ["2.0.0", "1.0.0"]  # find-links still answer
    assert "index http://127.0.0.1:9/simple could not be read" in offered.error
    assert "pw" not in offered.error


# --- the packages route --------------------------------------------------------------

@pytest.fixture
def offline_app_settings(app_settings, wheels):
    app_settings.update(INDEX_URL="none", FIND_LINKS=str(wheels),
                        ALLOWED_PACKAGES="twilio,hookdemo")
    return app_settings


def test_packages_route_lists_allowed_packages(offline_app_settings, client, auth):
    response = client.get("/api/v2/packages", headers=auth("read:hooks"))
    assert response.status_code == 200, response.json
    assert response.json == [
        {"name": "twilio", "installed": TWILIO, "versions": []},
        {"name": "hookdemo", "installed": None, "versions": ["2.0.0", "1.0.0"]},
    ]


def test_packages_route_needs_read_hooks(offline_app_settings, client, auth):
    assert client.get("/api/v2/packages", headers=auth("update:hooks")).status_code == 403


@pytest.fixture
def any_package_app_settings(offline_app_settings):
    offline_app_settings["ALLOWED_PACKAGES"] = "*"
    return offline_app_settings


def test_packages_route_with_any_package_allowed_lists_the_engines(any_package_app_settings,
                                                                   client, auth):
    response = client.get("/api/v2/packages", headers=auth("read:hooks"))
    assert [p["name"] for p in response.json] == ["twilio", "vonage", "requests"]
    assert response.json[2]["installed"] == REQUESTS
