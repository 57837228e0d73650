"""Settings: the one table of every setting and limit, and the order they are read in."""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable

from dotenv import dotenv_values

from hookengine.errors import ConfigError

PREFIX = "HOOKENGINE_"
# HOOKENGINE_* variables that are not settings: the CLI's client commands read them (cli.py).
CLIENT_VARIABLES = ("URL", "TOKEN")
# A host HOOKENGINE_EGRESS_ALLOW may name: dot-separated labels of letters, digits, `-` and
# `_` (what the egress guard lets a hook look up, sandbox/egress.py HOST_NAME), optionally
# after `*.`. The guard matches entries with fnmatch, so any other `*`, `?` or `[` would allow
# more than the entry seems to say, and a name it cannot match would allow nothing.
EGRESS_HOST = re.compile(r"(\*\.)?([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*"
                         r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


def as_bool(name: str, value: str) -> bool:
    """Parse a boolean setting, naming the key when the value is not one."""
    lowered = str(value).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{PREFIX}{name} has value {value!r}. Not a valid boolean.")


def as_int(name: str, value: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{PREFIX}{name} has value {value!r}. Not a valid int.") from None


def as_float(name: str, value: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{PREFIX}{name} has value {value!r}. Not a valid number.") from None


def as_str(name: str, value: str) -> str:
    return str(value)


def as_list(name: str, value: str | list) -> list[str]:
    """Comma-separated list; blanks dropped."""
    if isinstance(value, list):
        return value
    return [item.strip() for item in str(value).split(",") if item.strip()]


def as_egress_list(name: str, value: str | list) -> list[str]:
    """Hosts, `*.domain` wildcards and CIDRs; every entry that is none of them is named."""
    items = as_list(name, value)
    bad = [item for item in items if not _is_egress_entry(item)]
    if bad:
        raise ConfigError(f"{PREFIX}{name} entries {', '.join(map(repr, bad))} are not a host "
                          "name, a *.domain wildcard or an address/CIDR, e.g. "
                          "api.example.com,*.example.org,203.0.113.0/24")
    return items


def _is_egress_entry(item: str) -> bool:
    try:
        ipaddress.ip_network(item, strict=False)
        return True
    except ValueError:
        return len(item) <= 253 and EGRESS_HOST.fullmatch(item) is not None


def as_host_map(name: str, value: str | dict) -> dict[str, str]:
    """`host=url,host=url` -> {host: url}; every url must be http(s)://host[:port]."""
    if isinstance(value, dict):
        return value
    mapping = {}
    for item in as_list(name, value):
        host, sep, url = item.partition("=")
        if not sep or not host.strip() or not url.strip().startswith(("http://", "https://")):
            raise ConfigError(
                f"{PREFIX}{name} entry {item!r} is not host=http(s)://target[:port], "
                "e.g. api.twilio.com=http://127.0.0.1:4010"
            )
        mapping[host.strip().lower()] = url.strip().rstrip("/")
    return mapping


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    cast: Callable[[str, Any], Any]
    help: str


# Every setting and limit, with its default. The README's settings table lists each one and
# tests/test_docs.py fails when a row is missing. Environment: HOOKENGINE_<NAME>.
SETTINGS = (
    Setting("DATA_DIR", "hookengine-data", as_str,
            "Directory for the SQLite database and the key file (created with mode 0700)."),
    Setting("DATABASE_URL", "", as_str,
            "postgresql://user:password@host/dbname: keep the state in PostgreSQL, shared by "
            "identical nodes (then SECRET_KEY is required). Empty: SQLite in DATA_DIR."),
    Setting("DATABASE_DIRECT_URL", "", as_str,
            "With DATABASE_URL through a transaction-pooling PgBouncer: a URL straight to "
            "PostgreSQL for the connections that a pooler breaks: the one per node that "
            "LISTENs for other nodes' log lines, and the one holding the log delivery "
            "worker's lock. Empty: DATABASE_URL."),
    Setting("SECRET_KEY", "", as_str,
            "Fernet key that encrypts hook secrets at rest. Empty: a key file `secret.key` "
            "(mode 0600) is created in the data directory."),
    Setting("TIMEOUT_SECONDS", 20.0, as_float,
            "Wall-clock limit of one execution (Auth0's webtask limit is about 20 s)."),
    Setting("CPU_SECONDS", 10, as_int,
            "CPU-time limit of one execution (RLIMIT_CPU, soft = hard)."),
    Setting("MEMORY_MB", 256, as_int,
            "Memory a hook may allocate on top of the preloaded runtime (RLIMIT_AS)."),
    Setting("MAX_OUTPUT_BYTES", 65536, as_int,
            "Printed bytes kept per execution; the rest is dropped behind a truncation marker."),
    Setting("MAX_RESULT_BYTES", 65536, as_int,
            "Largest JSON result (or error) a hook may return."),
    Setting("MAX_SCRIPT_BYTES", 102400, as_int, "Largest hook script (Auth0 Actions: 100 kB)."),
    Setting("MAX_AST_DEPTH", 100, as_int, "Deepest syntax nesting a hook script may have."),
    Setting("MAX_SECRETS", 20, as_int, "Secrets per hook (as Auth0)."),
    Setting("MAX_SECRET_BYTES", 8192, as_int,
            "Largest secret value (a PEM private key fits)."),
    Setting("MAX_BODY_BYTES", 1048576, as_int,
            "Largest request body the API reads; larger bodies get 413 before being read."),
    Setting("MAX_OPEN_FILES", 64, as_int, "Open descriptors per execution (RLIMIT_NOFILE)."),
    Setting("MAX_FILE_BYTES", 1048576, as_int,
            "Largest file a hook may write in its private directory (RLIMIT_FSIZE)."),
    Setting("SANDBOX_UID", 61000, as_int,
            "First uid/gid of the unprivileged users hook processes run as when the engine "
            "runs as root (one per concurrent execution, 1000 for each zygote: the SDK "
            "one, the bare one, then each environment's, so 1000 * (2 + MAX_ZYGOTES) in all)."),
    Setting("MAX_ZYGOTES", 4, as_int,
            "Environments whose zygote (their packages preloaded) is kept running; the least "
            "recently used idle one stops when another is needed."),
    Setting("ZYGOTES_MAX_MB", 0, as_int,
            "Resident memory all environment zygotes together may hold (0: no budget); over "
            "it, the least recently used idle ones stop."),
    Setting("ALLOWED_PACKAGES", "twilio,vonage,requests", as_list,
            "Packages hooks may declare and import (must be installed); `*` allows any."),
    Setting("INDEX_URL", "", as_str,
            "Package index (simple API) hooks' own dependencies are resolved against. Empty: "
            "what pip is configured to use (its index-url, else PyPI, plus its "
            "extra-index-url and find-links); `none`: no index, only FIND_LINKS."),
    Setting("EXTRA_INDEX_URLS", "", as_list,
            "More indexes, comma-separated (uv asks them before INDEX_URL)."),
    Setting("FIND_LINKS", "", as_list,
            "Directories or URLs of wheel files to resolve from, comma-separated."),
    Setting("ENVS_MAX_MB", 2048, as_int,
            "Disk the installed dependency environments (`envs/` in the data directory) may "
            "use in all; an install beyond it is refused."),
    Setting("PACKAGE_TIMEOUT_SECONDS", 300.0, as_float,
            "Longest one resolve or install of a hook's dependencies may take."),
    Setting("PACKAGE_CACHE_SECONDS", 600, as_int,
            "How long `GET /packages` keeps what an index offers before asking again."),
    Setting("EGRESS_ALLOW", "", as_egress_list,
            "Extra hosts (`*.example.com` allowed) or CIDRs hooks may connect to."),
    Setting("HOST_MAP", "", as_host_map,
            "`host=url,...`: send a provider host to another base URL (e.g. a local stand-in)."),
    Setting("SECCOMP", True, as_bool,
            "Load a seccomp filter in hook processes when libseccomp is available."),
    Setting("NAMESPACES", True, as_bool,
            "Give hook processes their own mount, IPC and UTS namespaces (private /tmp, "
            "/proc showing only themselves) when running as root."),
    Setting("JAIL", True, as_bool,
            "The kernel jail: hook processes see a read-only root with only what they need "
            "(as root) under Landlock, and reach the network only through the connection "
            "broker. Off only to measure what it costs."),
    Setting("DISK_BYTES", 8388608, as_int,
            "Size of a hook process's private working directory (a tmpfs of its own when "
            "running as root): what one run may write in all."),
    Setting("CA_BUNDLE", "", as_str,
            "A PEM file of extra CA certificates hooks trust besides certifi's (e.g. a local "
            "stand-in's own CA). Read by the engine at start, so it may live anywhere."),
    Setting("RETENTION_DAYS", 10, as_int,
            "Executions older than this are deleted (Auth0 keeps execution logs 10 days)."),
    Setting("DEPENDENCY_WAIT_SECONDS", 120.0, as_float,
            "How long a run of a hook whose dependencies are still installing waits for "
            "them (then 503, retry)."),
    Setting("LIVE_LOGS", True, as_bool,
            "Send each line a hook prints to the log as it is printed (false: when the run "
            "ends; only for measuring what streaming costs)."),
    Setting("EXECUTIONS_PER_HOOK_LOGS", 50, as_int,
            "Recent executions whose lines `GET /hooks/{id}/logs` returns."),
    Setting("MAX_LOG_STREAMS", 10, as_int,
            "Log streams a tenant may have (another POST /log-streams answers 409)."),
    Setting("LOG_STREAM_RETRY_SECONDS", 30.0, as_float,
            "How long a log stream waits after a batch failed three attempts before trying "
            "it again."),
    Setting("LOG_STREAM_SUSPEND_DAYS", 7.0, as_float,
            "A log stream whose deliveries have failed for this long is suspended (Auth0: 7 "
            "days); its queue is kept, and PATCH status active resumes it."),
    Setting("SESSION_IDLE_MINUTES", 60, as_int,
            "A web editor session unused this long ends (sign in again)."),
    Setting("SESSION_MAX_HOURS", 12, as_int,
            "A web editor session ends this long after sign-in, used or not."),
    Setting("TRUSTED_PROXY", "", as_str,
            "Address of the reverse proxy in front of the engine (e.g. 127.0.0.1): its "
            "X-Forwarded-Proto and -Host are believed, so behind TLS the web editor's cookie "
            "is Secure and pages' Origin is https://. Empty: no proxy is trusted."),
    Setting("NODE_LEASE_SECONDS", 10.0, as_float,
            "A node whose heartbeat is older than this is dead: its running executions are "
            "marked interrupted by the others (it heartbeats five times per lease)."),
    Setting("MAX_RUNS", 12, as_int,
            "Runs one node executes at once; one more is refused with 503 and Retry-After "
            "before anything is recorded, so a load balancer may send it to another node."),
    Setting("SERVER_THREADS", 16, as_int, "Worker threads of the WSGI server."),
    Setting("LOG_LEVEL", "INFO", as_str, "Engine log level (the engine's own log, not hooks')."),
)

BY_NAME = {setting.name: setting for setting in SETTINGS}
# Every setting's default, read-only: what load_settings starts from (and tests build on).
DEFAULTS = MappingProxyType({setting.name: setting.default for setting in SETTINGS})


def load_settings(overrides: dict | None = None, env_file: str | os.PathLike | None = ".env",
                  environ: dict | None = None) -> dict[str, Any]:
    """Read settings: defaults, then a `.env` file, then the environment, then overrides.

    The environment wins over `.env` (python-dotenv's rule: a file never overrides a variable that
    is set), and `overrides` (tests, CLI flags) win over both.
    """
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = dict(DEFAULTS)
    if env_file and Path(env_file).is_file():
        raw.update(_prefixed(dotenv_values(env_file)))
    raw.update(_prefixed(environ))
    raw.update({k.removeprefix(PREFIX): v for k, v in (overrides or {}).items()})
    unknown = sorted(set(raw) - set(BY_NAME))
    if unknown:
        raise ConfigError(f"Unknown setting(s): {', '.join(PREFIX + u for u in unknown)}")
    settings = {name: BY_NAME[name].cast(name, value) for name, value in raw.items()}
    _check_database(settings)
    return settings


def _check_database(settings: dict) -> None:
    url = settings["DATABASE_URL"]
    if not url:
        return
    if not re.match(r"postgres(ql)?://", url):
        raise ConfigError(f"{PREFIX}DATABASE_URL must be a postgresql:// URL (got "
                          f"{url.split('://')[0]}://...); leave it empty for SQLite.")
    if not settings["SECRET_KEY"]:
        # Each node would otherwise make its own key file, and no node could read the
        # secrets another one stored.
        raise ConfigError(f"{PREFIX}DATABASE_URL is set, so {PREFIX}SECRET_KEY is required: "
                          "every node must encrypt and decrypt secrets with the same key "
                          "(make one with `hookengine key generate`).")


def unknown_variables(env_file: str | os.PathLike | None = ".env",
                      environ: dict | None = None) -> list[str]:
    """A warning for each HOOKENGINE_* variable (environment or `.env`) that is no setting:
    a mistyped name leaves its setting at the default, so name it and the closest setting."""
    sources = [("the environment", os.environ if environ is None else environ)]
    if env_file and Path(env_file).is_file():
        sources.append((str(env_file), dotenv_values(env_file)))
    warnings = []
    for where, values in sources:
        for key in sorted(values):
            name = key[len(PREFIX):]
            if key.startswith(PREFIX) and name not in BY_NAME and name not in CLIENT_VARIABLES:
                close = difflib.get_close_matches(name, list(BY_NAME), n=1)
                hint = f" (did you mean {PREFIX}{close[0]}?)" if close else ""
                warnings.append(f"{key} in {where} is not a setting{hint}; it is ignored")
    return warnings


def _prefixed(values: dict) -> dict[str, Any]:
    return {k[len(PREFIX):]: v for k, v in values.items()
            if k.startswith(PREFIX) and v is not None and k[len(PREFIX):] in BY_NAME}
