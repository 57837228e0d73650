"""Hook secrets: encryption at rest, write-only storage, and redaction of their values."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from hookengine.errors import ConfigError, Conflict, NotFound, ValidationError

log = logging.getLogger(__name__)

HIDDEN = "_VALUE_NOT_SHOWN_"  # what Auth0 returns for every secret value
KEY_FILE = "secret.key"
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,127}$")


def load_cipher(secret_key: str, data_dir: str | os.PathLike) -> Fernet:
    """Fernet from HOOKENGINE_SECRET_KEY, or from a key file created (0600) in the data dir."""
    if secret_key:
        try:
            return Fernet(secret_key.encode())
        except ValueError:
            raise ConfigError("HOOKENGINE_SECRET_KEY is not a Fernet key (32 url-safe base64 "
                              "bytes); create one with `hookengine key generate`.") from None
    path = Path(data_dir) / KEY_FILE
    if not path.exists():
        # O_EXCL: two engines starting at once must not write two different keys.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key())
            log.warning("Created key file %s; see README 'Key management' to move it to a "
                        "managed key", path)
    try:
        return Fernet(path.read_bytes().strip())
    except ValueError:
        raise ConfigError(f"Key file {path} does not hold a Fernet key") from None


class SecretStore:
    """Secrets of hooks, encrypted with one Fernet key; values never leave except to runs."""

    def __init__(self, store, cipher: Fernet, max_secrets: int, max_value_bytes: int):
        self.store = store
        self.cipher = cipher
        self.max_secrets = max_secrets
        self.max_value_bytes = max_value_bytes

    def names(self, hook_id: str) -> dict[str, str]:
        rows = self.store.query("SELECT name FROM secrets WHERE hook_id = ? ORDER BY name",
                                (hook_id,))
        return {row["name"]: HIDDEN for row in rows}

    def add(self, hook_id: str, values: dict[str, str]) -> None:
        """Add new secrets; 409 when a name exists, 400 past the per-hook limit."""
        self._validate(values)
        with self.store.transaction() as db:
            # Adds to one hook at once take turns: each counts what the one before added.
            self.store.lock(db, f"secrets {hook_id}")
            existing = {r["name"] for r in db.execute(
                "SELECT name FROM secrets WHERE hook_id = ?", (hook_id,))}
            clash = sorted(set(values) & existing)
            if clash:
                raise Conflict(f"Secret with the same name already exists: {', '.join(clash)}.",
                               error_code="secret_conflict")
            total = len(existing) + len(values)
            if total > self.max_secrets:
                raise ValidationError(
                    f"A hook can have a maximum of {self.max_secrets} secrets; it has "
                    f"{len(existing)} and this request adds {len(values)}.")
            db.executemany("INSERT INTO secrets (hook_id, name, value) VALUES (?, ?, ?)",
                           [(hook_id, n, self._encrypt(v)) for n, v in values.items()])

    def update(self, hook_id: str, values: dict[str, str]) -> None:
        """Replace values of existing secrets; 404 names the unknown ones."""
        self._validate(values)
        with self.store.transaction() as db:
            existing = {r["name"] for r in db.execute(
                "SELECT name FROM secrets WHERE hook_id = ?", (hook_id,))}
            unknown = sorted(set(values) - existing)
            if unknown:
                raise NotFound(f"Hook or secret not found: {', '.join(unknown)}.",
                               error_code="inexistent_secret")
            db.executemany("UPDATE secrets SET value = ? WHERE hook_id = ? AND name = ?",
                           [(self._encrypt(v), hook_id, n) for n, v in values.items()])

    def delete(self, hook_id: str, names: list[str]) -> None:
        with self.store.transaction() as db:
            db.executemany("DELETE FROM secrets WHERE hook_id = ? AND name = ?",
                           [(hook_id, n) for n in names])

    def values(self, hook_id: str) -> dict[str, str]:
        """Decrypted values, for a run of this hook only."""
        rows = self.store.query("SELECT name, value FROM secrets WHERE hook_id = ?", (hook_id,))
        try:
            return {row["name"]: self.cipher.decrypt(row["value"]).decode() for row in rows}
        except InvalidToken:
            raise ConfigError("Stored secrets cannot be decrypted with the configured key; "
                              "was HOOKENGINE_SECRET_KEY changed?") from None

    def _encrypt(self, value: str) -> bytes:
        return self.cipher.encrypt(value.encode())

    def _validate(self, values: dict[str, str]) -> None:
        problems = []
        for name, value in values.items():
            if not NAME_PATTERN.fullmatch(name):
                problems.append(f"secret name {name!r} must start with a letter or _ and hold "
                                "only letters, digits, _ and - (at most 128)")
            if not isinstance(value, str):
                problems.append(f"secret {name!r} must be a string, not "
                                f"{type(value).__name__}")
            elif len(value.encode()) > self.max_value_bytes:
                problems.append(f"secret {name!r} is {len(value.encode())} bytes; the limit "
                                f"is {self.max_value_bytes}")
        if problems:
            raise ValidationError("Invalid secrets", problems)


def redact(data, secrets: dict[str, str]):
    """Replace every secret value inside strings of `data` (any JSON data) by [secret:NAME].

    A copy is built with an explicit stack, not recursion: the data comes from hooks and
    requests, and no depth of it may exhaust the interpreter's recursion limit.
    """
    # Longest first, so a secret that contains another one is replaced whole.
    pairs = sorted(((v, f"[secret:{n}]") for n, v in secrets.items() if v),
                   key=lambda p: len(p[0]), reverse=True)
    if not pairs:
        return data
    pending: list[tuple] = []  # (original container, its copy still to fill)

    def scrub(value):
        """A string scrubbed, an empty copy of a container (filled later), else the value."""
        if isinstance(value, str):
            for secret, marker in pairs:
                if secret in value:
                    value = value.replace(secret, marker)
            return value
        if isinstance(value, (list, dict)):
            copy = [] if isinstance(value, list) else {}
            pending.append((value, copy))
            return copy
        return value

    top = scrub(data)
    while pending:
        value, copy = pending.pop()
        if isinstance(copy, list):
            copy.extend(scrub(item) for item in value)
        else:
            copy.update((scrub(k), scrub(v)) for k, v in value.items())
    return top


def redact_fields(record: dict | None, secrets: dict[str, str],
                  fields: tuple[str, ...] | None = None) -> dict | None:
    """`redact` for an object the engine shapes (an error, a log line): the values of
    `fields` (default: all) only, so a short secret value can never rename a field ("time")
    or change a value the engine wrote ("stdout")."""
    if record is None:
        return None
    return {key: redact(value, secrets) if fields is None or key in fields else value
            for key, value in record.items()}
