"""Timestamps as every record shows them: UTC, milliseconds, a trailing Z."""

from __future__ import annotations

from datetime import datetime, timezone


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_from_timestamp(timestamp: float) -> str:
    """A POSIX time (a file's mtime) in the same form as utc_now()."""
    return (datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"))
