"""Timestamps as every record shows them: UTC, milliseconds, a trailing Z."""

from __future__ import annotations

from datetime import datetime, timezone


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def as_utc_text(value: str) -> str:
    """An ISO 8601 time (with an offset, or UTC when it has none) in the records' form;
    ValueError when it is not one."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def utc_from_timestamp(timestamp: float) -> str:
    """A POSIX time (a file's mtime) in the same form as utc_now()."""
    return (datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"))
