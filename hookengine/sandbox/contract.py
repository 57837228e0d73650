"""What a hook sees and gives back: error classes, print capture, arguments, results."""

from __future__ import annotations

import json
import time
import traceback

from hookengine.clock import utc_now
from hookengine.sandbox.policy import HookDict, ReadOnlyDict

HOOK_FILENAME = "hook.py"
LINE_OVERHEAD = 32  # bytes a log line costs beyond its text (its time and stream)


# Trigger error classes, available to every hook without import (as Auth0 injects them).
class SendPhoneMessageError(Exception):
    def __init__(self, message="", friendly_message=None):
        super().__init__(message)
        self.message = message
        self.friendly_message = friendly_message


class PreUserRegistrationError(Exception):
    def __init__(self, log_message="", user_message=None):
        super().__init__(log_message)
        self.message = log_message
        self.user_message = user_message


class InvalidScopeError(Exception):
    pass


class InvalidRequestError(Exception):
    pass


class ServerError(Exception):
    pass


HOOK_ERRORS = {cls.__name__: cls for cls in (
    SendPhoneMessageError, PreUserRegistrationError, InvalidScopeError, InvalidRequestError,
    ServerError)}



class LogSink:
    """Every line a hook prints, timestamped, capped at `max_bytes` with a visible marker."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.used = 0
        self.dropped = 0
        self.lines: list[dict] = []

    def add(self, stream: str, message: str) -> None:
        if self.dropped:
            self.dropped += len(message)
            return
        # Each line also costs LINE_OVERHEAD, so a flood of empty prints is capped as well.
        size = len(message.encode("utf-8", "replace")) + LINE_OVERHEAD
        if self.used + size > self.max_bytes:
            # Keep what fits of this line, then drop everything after it behind a marker.
            room = self.max_bytes - self.used - LINE_OVERHEAD
            self.dropped = size
            if room <= 0:
                return
            message = message.encode("utf-8", "replace")[:room].decode("utf-8", "ignore")
            size = room + LINE_OVERHEAD
        self.used += size
        self.lines.append({"time": utc_now(), "stream": stream, "message": message})

    def finish(self) -> list[dict]:
        if self.dropped:
            self.lines.append({"time": utc_now(), "stream": "engine", "message": (
                f"[output truncated: the hook printed more than {self.max_bytes} bytes; "
                "the rest was dropped]")})
        return self.lines

    def printer_factory(self):
        """The `_print_` RestrictedPython calls once per function scope."""
        sink = self

        class Printer:
            def __init__(self, getattr_=None):
                self.getattr_ = getattr_
                self.text = []

            def _call_print(self, *objects, sep=" ", end="\n", file=None, flush=False):
                message = (sep if isinstance(sep, str) else " ").join(str(o) for o in objects)
                if file is not None:
                    self.getattr_(file, "write")(message + end)
                    return
                line = message + (end if isinstance(end, str) else "\n")
                if not sink.dropped:  # `printed` keeps no more than the log does
                    self.text.append(line)
                sink.add("stdout", line.removesuffix("\n"))

            def __call__(self):  # `printed`
                return "".join(self.text)

        return Printer


class StreamToSink:
    """sys.stdout/sys.stderr in the child: library warnings become log lines, capped."""

    def __init__(self, sink: LogSink, stream: str):
        self.sink, self.stream, self.buffer = sink, stream, ""

    def write(self, text):
        self.buffer += str(text)
        while "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            self.sink.add(self.stream, line)
        return len(text)

    def flush(self):
        if self.buffer:
            self.sink.add(self.stream, self.buffer)
            self.buffer = ""


def hook_arguments(params: list[str], args: list, secrets: dict[str, str]) -> list:
    """Arguments for the entry function: a read-only context holding this hook's secrets."""
    built = []
    for name, value in zip(params, args):
        if name == "context":
            context = dict(value or {})
            webtask = dict(context.get("webtask") or {})
            webtask["secrets"] = dict(secrets)
            context["webtask"] = webtask
            built.append(ReadOnlyDict.freeze(context))
        else:
            built.append(HookDict.wrap(value))
    return built


def describe_error(error: BaseException, source: str) -> dict:
    """name, message and a stack of the hook's own lines only (no engine or library paths)."""
    lines = source.splitlines()
    stack = [f"{type(error).__name__}: {_capped(str(error))}"]
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename == HOOK_FILENAME:
            text = lines[frame.lineno - 1].strip() if 0 < (frame.lineno or 0) <= len(lines) else ""
            stack.append(f'    at {frame.name} ({HOOK_FILENAME}:{frame.lineno}) {text}'.rstrip())
    described = {"name": type(error).__name__, "message": _capped(str(error)),
                 "stack": _capped("\n".join(stack), MAX_STACK_CHARS)}
    for extra in ("friendly_message", "user_message"):
        value = getattr(error, extra, None)
        if isinstance(value, str):
            described[extra] = _capped(value)
    return described


MAX_MESSAGE_CHARS = 4096   # an error message (and each friendly message)
MAX_STACK_CHARS = 16384    # the hook's own frames


def _capped(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"... [{len(text) - limit} more characters dropped]"


MAX_RESULT_DEPTH = 64  # nesting of a result; deeper data is refused, not carried further


def to_json(value, max_bytes: int) -> str:
    """JSON text of a hook's result, or TypeError/ValueError saying why it is not JSON data."""
    depth = _depth(value)
    if depth > MAX_RESULT_DEPTH:
        raise ValueError(f"the result nests more than {MAX_RESULT_DEPTH} levels deep")
    try:
        text = json.dumps(value, allow_nan=False, separators=(",", ":"),
                          default=_not_json)
    except RecursionError:
        raise ValueError("the result nests too deeply (or refers to itself)") from None
    if len(text) > max_bytes:
        raise ValueError(f"the result is {len(text)} bytes of JSON; the limit is {max_bytes}")
    return text


def _depth(value) -> int:
    """Nesting depth of lists and dicts, walked without recursion (and stopping early)."""
    deepest, stack, seen = 0, [(value, 1)], 0
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, (list, tuple)):
            deepest = max(deepest, depth)
            seen += len(item)
            if deepest > MAX_RESULT_DEPTH or seen > 10_000_000:
                return deepest
            stack.extend((child, depth + 1) for child in item)
    return deepest


def _not_json(value):
    raise TypeError(f"the result holds a {type(value).__name__}, which is not JSON data "
                    "(return dicts, lists, strings, numbers, booleans and None)")


class Clock:
    """Milliseconds since `start` (default: now), for the execution's timing stats.

    perf_counter is CLOCK_MONOTONIC, shared by every process on the host, so a child can
    measure from the moment the zygote received its request.
    """

    def __init__(self, start: float | None = None):
        self.start = time.perf_counter() if start is None else start

    def ms(self) -> float:
        return round((time.perf_counter() - self.start) * 1000, 3)
