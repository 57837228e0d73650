"""Env files of secret values (`NAME=value` lines), as `run`, `push` and `secrets set` read them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values


@dataclass
class EnvFile:
    """The names given a value, and the names left empty (as in a copied example file)."""

    path: str = ""
    values: dict[str, str] = field(default_factory=dict)
    # `NAME=` and a bare `NAME` mean "not filled in", never "set to the empty string": an
    # empty secret stored on the server would pass the missing-secret check and fail later.
    empty: list[str] = field(default_factory=list)

    def not_set(self, names: list[str]) -> str:
        """'X, Y (empty in FILE)' for those of `names` the file leaves empty, or ''."""
        empty = [name for name in names if name in self.empty]
        return f"{', '.join(empty)} (empty in {self.path})" if empty else ""


def read_env_file(path: str | None) -> EnvFile:
    """Read `path` (no file: an empty EnvFile); FileNotFoundError when it does not exist."""
    if not path:
        return EnvFile()
    if not Path(path).is_file():
        raise FileNotFoundError(2, "no such env file", path)
    raw = dotenv_values(path)
    return EnvFile(path, {k: v for k, v in raw.items() if v},
                   [k for k, v in raw.items() if not v])
