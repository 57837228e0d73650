"""Hooks' own dependencies: resolved with uv into a lockfile, installed once per lockfile.

A hook that declares only what the engine ships (twilio, vonage, requests at their installed
versions) runs on the engine's own packages. Anything else is resolved against the operator's
index into a lockfile (pinned versions with hashes, wheels only), and the lockfile is installed
into `<data dir>/envs/<sha256 of the lockfile>`, which every hook with the same lockfile shares.

Wheels only, always: no build step of a downloaded package ever runs on the host. Installs
land in a temporary directory and are renamed into place, so an environment either is complete
or does not exist; `collect` removes what no hook uses and what a killed install left behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from html.parser import HTMLParser
from importlib import metadata
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import sys_tags
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from hookengine.errors import DependencyError

__all__ = ["DependencyError", "Environments", "ENGINE_PACKAGES"]

log = logging.getLogger(__name__)

# What the engine ships for hooks (setup.cfg pins them; the zygote preloads them). A hook
# asking for one of these at its installed version, or "latest", needs no environment. Other
# packages installed in the engine (Flask, cryptography, ...) are its internals, not the
# hooks' API: a hook declaring one gets its own environment.
ENGINE_PACKAGES = ("twilio", "vonage", "requests")
PYPI = "https://pypi.org/simple"
# An environment younger than this is never collected: a hook being saved installs its
# environment before its row (and so its key) is in the store.
COLLECT_GRACE_SECONDS = 600
INDEX_TIMEOUT_SECONDS = 10
# Failed index look-ups are retried sooner than successful ones are refreshed.
ERROR_CACHE_SECONDS = 60
KEY = re.compile(r"[0-9a-f]{64}")
LOCK_FILE = "hookengine-lock.txt"
SDIST_ONLY = ("ships only source, and hookengine installs wheels only (no build step runs "
              "on the host)")


@dataclass(frozen=True)
class Index:
    """Where packages come from: a default index (None: none at all), extras, find-links."""

    url: str | None
    extra_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()

    def uv_args(self) -> list[str]:
        args = ["--no-index"] if self.url is None else ["--index-url", self.url]
        if self.url is not None:
            for url in self.extra_urls:
                args += ["--extra-index-url", url]
        for link in self.find_links:
            args += ["--find-links", link]
        return args

    def urls(self) -> list[str]:
        """The simple-API indexes, in the order uv asks them (extras first)."""
        return [] if self.url is None else [*self.extra_urls, self.url]


def index_for(settings: dict) -> Index:
    """The index the settings name; INDEX_URL empty means what pip is configured to use."""
    url = settings.get("INDEX_URL", "").strip()
    extra = tuple(settings.get("EXTRA_INDEX_URLS", ()))
    links = tuple(settings.get("FIND_LINKS", ()))
    if url.lower() == "none":
        return Index(None, (), links)
    if url:
        return Index(url.rstrip("/"), extra, links)
    pip = pip_configuration()
    return Index((pip.get("index-url") or PYPI).rstrip("/"),
                 tuple(pip.get("extra-index-url", "").split()) + extra,
                 tuple(pip.get("find-links", "").split()) + links)


_PIP_PRIORITY = (":env:", "install", "global", "site", "user")


def pip_configuration() -> dict[str, str]:
    """pip's own answer (`pip config list`) for index-url, extra-index-url and find-links.

    Asked once per process: pip merges its files and PIP_* variables by rules of its own, so
    asking pip is the way to use exactly what it would. No pip: {} (PyPI).
    """
    return dict(_pip_configuration())


@functools.lru_cache(maxsize=1)
def _pip_configuration() -> tuple[tuple[str, str], ...]:
    try:
        listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"],
                                capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    found: dict[str, tuple[int, str]] = {}
    for line in listed.splitlines():
        key, sep, value = line.partition("=")
        section, _, option = key.rpartition(".")
        if not sep or option not in ("index-url", "extra-index-url", "find-links"):
            continue
        rank = _PIP_PRIORITY.index(section) if section in _PIP_PRIORITY else len(_PIP_PRIORITY)
        if option not in found or rank < found[option][0]:
            found[option] = (rank, value.strip().strip("'\""))
    return tuple((option, value) for option, (_, value) in found.items())


def uv_binary() -> str:
    """uv from the engine's own environment (setup.cfg pins it), never one on PATH."""
    beside = Path(sys.executable).parent / "uv"
    if beside.is_file():
        return str(beside)
    from uv import find_uv_bin
    return find_uv_bin()


def interpreter_line() -> str:
    """The lockfile's first line: the interpreter it was resolved for. It is part of the key,
    so another Python (or platform) never reuses an environment built for this one."""
    return f"# hookengine lock for {sys.implementation.cache_tag} on {sysconfig.get_platform()}\n"


@dataclass
class Offered:
    """What the indexes offer of one package: wheel versions for this Python, newest first."""

    versions: list[str] = field(default_factory=list)
    error: str | None = None


_OFFERED: dict[tuple, tuple[float, Offered]] = {}
_OFFERED_LOCK = threading.Lock()
_BY_DATA_DIR: dict[str, "Environments"] = {}
_BY_DATA_DIR_LOCK = threading.Lock()


class Environments:
    """The content-addressed dependency environments under `<data_dir>/envs`."""

    def __init__(self, data_dir, settings: dict):
        self.data_dir = Path(data_dir)
        self.root = self.data_dir / "envs"
        # uv's cache is the engine's own: never root's (~/.cache/uv), which hook users share.
        self.cache = self.data_dir / "uv-cache"
        self.settings = settings
        self._index: Index | None = None
        self._key_locks: dict[str, threading.Lock] = {}
        self._key_locks_guard = threading.Lock()

    @classmethod
    def for_settings(cls, settings: dict) -> "Environments":
        """One Environments per data directory (their per-key thread locks must be shared)."""
        where = str(Path(settings["DATA_DIR"]).resolve())
        with _BY_DATA_DIR_LOCK:
            if where not in _BY_DATA_DIR:
                _BY_DATA_DIR[where] = cls(where, settings)
            return _BY_DATA_DIR[where]

    @property
    def index(self) -> Index:
        if self._index is None:
            self._index = index_for(self.settings)
        return self._index

    # --- what a hook needs -------------------------------------------------------------

    def needs_environment(self, dependencies: dict) -> dict:
        """The dependencies the engine's own packages do not satisfy; {}: no environment."""
        return {name: wanted for name, wanted in dependencies.items()
                if not _engine_satisfies(canonicalize_name(str(name)), str(wanted).strip())}

    def resolve(self, dependencies: dict) -> str:
        """The lockfile of what `needs_environment` leaves: `name==version` pins with hashes,
        wheels only, for this interpreter. "" when nothing needs an environment."""
        needed = self.needs_environment(dependencies)
        if not needed:
            return ""
        requirements = [self._requirement(name, wanted) for name, wanted in needed.items()]
        result = self._uv(["pip", "compile", "-", "--generate-hashes", "--no-header",
                           "--no-annotate", "--quiet"], stdin="\n".join(requirements) + "\n",
                          doing="resolving", needed=needed)
        return interpreter_line() + result

    def _requirement(self, name: str, wanted: str) -> str:
        allowed = {canonicalize_name(a) for a in self.settings.get("ALLOWED_PACKAGES", ())}
        canonical = canonicalize_name(str(name))
        if "*" not in allowed and canonical not in allowed:
            raise DependencyError(
                f"{name} {wanted}: the package is not allowed; hooks may use "
                f"{', '.join(sorted(allowed)) or 'no packages'} (HOOKENGINE_ALLOWED_PACKAGES)")
        wanted = str(wanted).strip()
        if wanted in ("latest", "*", ""):
            return canonical
        try:
            specifier = SpecifierSet(f"=={wanted}" if wanted[0].isdigit() else wanted)
        except InvalidSpecifier:
            raise DependencyError(f"{name} {wanted!r} is not a version: use an exact version "
                                  "(1.2.3), a PEP 440 specifier (>=1,<2) or 'latest'") from None
        return f"{canonical}{specifier}"

    @staticmethod
    def key(lock: str) -> str:
        """The environment's name: the sha256 of its lockfile."""
        return hashlib.sha256(lock.encode()).hexdigest()

    # --- environments on disk ----------------------------------------------------------

    def path(self, key: str) -> Path | None:
        """The ready environment of `key`, or None (never a half-made one: see install)."""
        if not KEY.fullmatch(key or ""):
            return None
        where = self.root / key
        return where if where.is_dir() else None

    def install(self, lock: str) -> Path:
        """Install `lock` into envs/<key> once; concurrent and repeated calls share it."""
        _check_lock(lock)
        key = self.key(lock)
        with self._holding(key):
            final = self.root / key
            if final.is_dir():
                os.utime(final)  # in use again: not collected within the grace period
                return final
            self._check_cap(full_at_cap=True)
            work = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=self.root))
            try:
                (work / LOCK_FILE).write_text(lock)
                self._uv(["pip", "install", "--target", str(work), "--no-deps",
                          "--require-hashes", "--link-mode", "copy", "--compile-bytecode",
                          "--quiet", "-r", str(work / LOCK_FILE)], doing="installing",
                         needed=_pins(lock))
                # uv leaves its own world-writable lock file in the target.
                (work / ".lock").unlink(missing_ok=True)
                _make_readable(work)
                self._check_cap(full_at_cap=False)  # envs/ now counts this install too
                os.rename(work, final)
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
            log.info("Installed dependency environment %s (%s)", key,
                     ", ".join(f"{n}=={v}" for n, v in _pins(lock).items()))
            return final

    def collect(self, keep: set[str], *, min_age: float = COLLECT_GRACE_SECONDS) -> list[str]:
        """Remove environments not in `keep` (older than `min_age` seconds) and what killed
        installs left; return the keys removed. Installs in progress are left alone."""
        if not self.root.is_dir():
            return []
        removed = []
        now = time.time()
        for entry in sorted(self.root.iterdir()):
            name = entry.name
            if KEY.fullmatch(name) and name not in keep:
                if now - entry.stat().st_mtime < min_age:
                    continue
                with self._holding(name, wait=False) as held:
                    if held and entry.is_dir():
                        # Renamed first: path() never returns a half-deleted environment.
                        trash = self.root / f".trash-{name}-{os.getpid()}"
                        os.rename(entry, trash)
                        shutil.rmtree(trash, ignore_errors=True)
                        removed.append(name)
            elif name.startswith(".tmp-") and KEY.fullmatch(name.split("-")[1]):
                key = name.split("-")[1]
                with self._holding(key, wait=False) as held:
                    if held:  # no install holds its key: a killed one left this
                        shutil.rmtree(entry, ignore_errors=True)
            elif name.startswith(".trash-"):  # a collect killed mid-way
                shutil.rmtree(entry, ignore_errors=True)
        for lock_file in self.root.glob(".lock-*"):
            key = lock_file.name.removeprefix(".lock-")
            with self._holding(key, wait=False) as held:
                if held and not (self.root / key).exists():
                    lock_file.unlink(missing_ok=True)
        if removed:
            log.info("Removed %d unused dependency environment(s): %s", len(removed),
                     ", ".join(removed))
        return removed

    def used_bytes(self) -> int:
        """Disk used under envs/ (blocks allocated, as du counts)."""
        total = 0
        for directory, _, files in os.walk(self.root):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(directory, name)).st_blocks * 512
        return total

    def _check_cap(self, full_at_cap: bool) -> None:
        """Refuse when envs/ is full: at the cap before an install, past it after one."""
        cap_mb = self.settings.get("ENVS_MAX_MB", 2048)
        used = self.used_bytes()
        if used > cap_mb * 2**20 or (full_at_cap and used >= cap_mb * 2**20):
            raise DependencyError(
                f"no room for another dependency environment: environments use "
                f"{used / 2**20:.1f} MB of HOOKENGINE_ENVS_MAX_MB={cap_mb}; raise the setting "
                "or remove hooks whose dependencies are no longer needed")

    @contextlib.contextmanager
    def _holding(self, key: str, wait: bool = True):
        """Hold `key`'s install lock: a thread lock (this process) and flock on envs/.lock-<key>
        (other processes; the kernel drops it when a killed install's process dies).
        Yields False without waiting when `wait` is false and someone else holds it."""
        with self._key_locks_guard:
            thread_lock = self._key_locks.setdefault(key, threading.Lock())
        if not thread_lock.acquire(blocking=wait):
            yield False
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.root.chmod(0o755)
            lock_path = self.root / f".lock-{key}"
            while True:
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                except BlockingIOError:
                    os.close(fd)
                    yield False
                    return
                # collect may have unlinked the file we locked: lock the one now at the path.
                try:
                    if os.stat(lock_path).st_ino == os.fstat(fd).st_ino:
                        break
                except FileNotFoundError:
                    pass
                os.close(fd)
            try:
                yield True
            finally:
                os.close(fd)
        finally:
            thread_lock.release()

    # --- uv ----------------------------------------------------------------------------

    def _uv(self, args: list[str], *, doing: str, needed: dict, stdin: str | None = None):
        """Run uv with the engine's index, wheels only, for this interpreter."""
        self.cache.mkdir(parents=True, exist_ok=True)
        # No UV_* from the engine's environment and no uv.toml (--no-config): only the
        # HOOKENGINE_* settings choose where packages come from.
        env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
        env.update(UV_CACHE_DIR=str(self.cache), UV_PYTHON_DOWNLOADS="never",
                   UV_NO_PROGRESS="1")
        command = [uv_binary(), *args, "--no-config", "--python", sys.executable,
                   "--only-binary", ":all:", *self.index.uv_args()]
        timeout = self.settings.get("PACKAGE_TIMEOUT_SECONDS", 300.0)
        # Its own session, so a timeout ends uv and the bytecode compilers it starts.
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=env,
                                   start_new_session=True)
        try:
            stdout, stderr = process.communicate(stdin or "", timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(process)
            raise DependencyError(f"{_named(needed)}: {doing} took longer than "
                                  f"HOOKENGINE_PACKAGE_TIMEOUT_SECONDS={timeout:g}") from None
        except BaseException:
            _kill(process)
            raise
        if process.returncode != 0:
            log.warning("uv %s failed: %s", args[1], stderr.strip())
            raise DependencyError(_explain(stderr, needed, doing))
        return stdout

    # --- what the index offers ---------------------------------------------------------

    def offered(self, package: str) -> Offered:
        """Wheel versions of `package` for this Python, newest first, cached; an index that
        cannot be read gives what the others offer and `error`, never an exception."""
        name = canonicalize_name(package)
        index = self.index
        cache_key = (index, name)
        now = time.monotonic()
        with _OFFERED_LOCK:
            cached = _OFFERED.get(cache_key)
        if cached and cached[0] > now:
            return cached[1]
        result = _look_up(index, name)
        ttl = self.settings.get("PACKAGE_CACHE_SECONDS", 600)
        with _OFFERED_LOCK:
            _OFFERED[cache_key] = (now + (min(ttl, ERROR_CACHE_SECONDS) if result.error
                                          else ttl), result)
        return result

    def versions(self, package: str) -> list[str]:
        """Versions the indexes offer as wheels for this Python, newest first."""
        return self.offered(package).versions


def _kill(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()


def installed_version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _engine_satisfies(name: str, wanted: str) -> bool:
    if name not in ENGINE_PACKAGES:
        return False
    installed = installed_version(name)
    if installed is None:
        return False
    if wanted in ("latest", "*", ""):
        return True
    try:
        specifier = SpecifierSet(f"=={wanted}" if wanted[0].isdigit() else wanted)
        return Version(installed) in specifier
    except (InvalidSpecifier, InvalidVersion):
        return False


# What `resolve` writes, line by line; anything else (an option such as --index-url or -e)
# is refused, so a lockfile can only ever name pinned wheels with their hashes.
LOCK_LINE = re.compile(r"\s*(#.*|[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!_-]+( \\)?|"
                       r"--hash=sha256:[0-9a-f]{64}( \\)?)?\s*")


def _check_lock(lock: str) -> None:
    bad = [line for line in lock.splitlines() if not LOCK_LINE.fullmatch(line)]
    if bad or not _pins(lock):
        raise DependencyError("not a lockfile hookengine wrote (pinned versions with hashes "
                              f"only): {bad[0][:100] if bad else 'it pins nothing'!r}")


def _pins(lock: str) -> dict[str, str]:
    return dict(re.findall(r"(?m)^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", lock))


def _named(needed: dict) -> str:
    return ", ".join(f"{name} {wanted}" for name, wanted in needed.items())


def _explain(stderr: str, needed: dict, doing: str) -> str:
    """uv's failure as one sentence naming the package and version and the cause."""
    text = " ".join(stderr.split())
    names = {canonicalize_name(str(n)): (n, w) for n, w in needed.items()}

    def culprit(mentioned: str) -> str:
        name, wanted = names.get(canonicalize_name(mentioned), (mentioned, "(required by "
                                                                  f"{_named(needed)})"))
        return f"{name} {wanted}"

    match = re.search(r"Wheels are required for `([^`]+)`", text) or \
        re.search(r"Because ([A-Za-z0-9._-]+)(?:[=<>!~][^ ]*)? has no usable wheels", text)
    if match:
        return f"{culprit(match.group(1))}: the package {SDIST_ONLY}"
    match = re.search(r"there is no version of ([A-Za-z0-9._-]+)", text)
    if match:
        return f"{culprit(match.group(1))}: that version does not exist on the index"
    match = re.search(r"Because ([A-Za-z0-9._-]+) was not found in the (?:package registry|"
                      r"provided package locations)", text)
    if match:
        return f"{culprit(match.group(1))}: no such package on the index"
    detail = re.sub(r"^error: ", "", text)[:500] or "uv failed without a message"
    return f"{_named(needed)}: {doing} failed: {detail}"


def _make_readable(root: Path) -> None:
    """0755 directories, 0644 files (0755 when executable): hook processes run as other uids
    and read the environment through the jail; nobody but the engine writes it."""
    root.chmod(0o755)
    for directory, dirs, files in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(directory, name), 0o755, follow_symlinks=False)
        for name in files:
            path = os.path.join(directory, name)
            if os.path.islink(path):
                continue
            mode = os.stat(path).st_mode
            os.chmod(path, 0o755 if mode & 0o111 else 0o644)


# --- index look-ups (PEP 691 JSON, else PEP 503 HTML; find-links) ----------------------

def _look_up(index: Index, name: str) -> Offered:
    filenames: list[str] = []
    errors = []
    for url in index.urls():
        try:
            filenames += _index_files(url, name)
        except (OSError, ValueError) as error:
            errors.append(f"index {_display(url)} could not be read: {_reason(error)}")
    for link in index.find_links:
        try:
            filenames += _find_links_files(link)
        except (OSError, ValueError) as error:
            errors.append(f"find-links {_display(link)} could not be read: {_reason(error)}")
    tags = set(sys_tags())
    versions = set()
    for filename in filenames:
        try:
            wheel_name, version, _, wheel_tags = parse_wheel_filename(filename)
        except InvalidWheelFilename:
            continue  # sdists and other files: hookengine installs wheels only
        if wheel_name == name and not version.is_prerelease and wheel_tags & tags:
            versions.add(version)
    return Offered([str(v) for v in sorted(versions, reverse=True)],
                   "; ".join(errors) or None)


def _index_files(url: str, name: str) -> list[str]:
    """File names (not yanked) of `name` on a simple index; [] when it has no such project."""
    page = f"{url.rstrip('/')}/{name}/"
    try:
        body, content_type = _read(page, "application/vnd.pypi.simple.v1+json, "
                                         "text/html;q=0.1")
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return []
        raise
    except FileNotFoundError:
        return []
    if "json" in content_type:
        files = json.loads(body).get("files", [])
        return [f["filename"] for f in files if not f.get("yanked")]
    return _links(body.decode("utf-8", "replace"))


def _find_links_files(link: str) -> list[str]:
    parsed = urllib.parse.urlparse(link)
    if parsed.scheme in ("", "file"):
        directory = Path(urllib.request.url2pathname(parsed.path) if parsed.scheme else link)
        return os.listdir(directory) if directory.is_dir() else [directory.name]
    body, _ = _read(link, "text/html")
    return _links(body.decode("utf-8", "replace"))


def _read(url: str, accept: str) -> tuple[bytes, str]:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":  # a simple index on disk: <project>/index.html
        path = Path(urllib.request.url2pathname(parsed.path))
        if path.is_dir():
            path = path / "index.html"
        return path.read_bytes(), "text/html"
    if parsed.scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL scheme {parsed.scheme!r}")
    request = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=INDEX_TIMEOUT_SECONDS) as response:
        return response.read(), response.headers.get("Content-Type", "")


class _Anchors(HTMLParser):
    def __init__(self):
        super().__init__()
        self.files: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "a" and attributes.get("href") and "data-yanked" not in attributes:
            path = urllib.parse.urlparse(attributes["href"]).path
            self.files.append(urllib.parse.unquote(path.rsplit("/", 1)[-1]))


def _links(html: str) -> list[str]:
    parser = _Anchors()
    parser.feed(html)
    return parser.files


def _display(url: str) -> str:
    """A URL without its credentials (an index URL may carry user:password)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.password or parsed.username:
        return parsed._replace(netloc=parsed.hostname + (f":{parsed.port}" if parsed.port
                                                          else "")).geturl()
    return url


def _reason(error: Exception) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return str(error) or type(error).__name__
