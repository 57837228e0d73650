"""What a hook sees and gives back: error classes, print capture, arguments, results."""

from __future__ import annotations

import json
import math
import re
import sys
import time
import traceback
from enum import StrEnum

from hookengine.clock import utc_now
from hookengine.sandbox.policy import HookDict, ReadOnlyDict

HOOK_FILENAME = "hook.py"
LINE_OVERHEAD = 32  # bytes a log line costs beyond its text (its time and stream)
# Streams a child writes; the engine adds `error` lines itself (a child cannot forge them).
CHILD_STREAMS = ("stdout", "stderr", "engine", "http")
LOG_STREAMS = CHILD_STREAMS + ("error",)


class Status(StrEnum):
    """How an execution ended (or that it has not yet): the one list of outcomes."""

    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory_limit"
    KILLED = "killed"
    INTERRUPTED = "interrupted"


def failure(name: str, message: str, stack: str = "") -> dict:
    """An execution's `error`: the one shape every failure takes."""
    return {"name": name, "message": message, "stack": stack}


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
    """Every line a hook prints, timestamped, capped at `max_bytes` with a visible marker.

    Each line goes to `emit` as it is printed (the child streams it out at once), so output
    printed before a timeout or a crash is not lost with the process.
    """

    def __init__(self, max_bytes: int, emit):
        self.max_bytes = max_bytes
        self.emit = emit
        self.used = 0
        self.dropped = 0

    def add(self, stream: str, message: str, request: dict | None = None) -> None:
        if self.dropped:
            self.dropped += len(message)
            return
        # Each line also costs LINE_OVERHEAD, so a flood of empty prints is capped as well.
        size = len(message.encode("utf-8", "replace")) + LINE_OVERHEAD
        if request is not None:
            size += len(json.dumps(request))
        if self.used + size > self.max_bytes:
            # Keep what fits of this line, then drop everything after it behind a marker.
            room = self.max_bytes - self.used - LINE_OVERHEAD
            self.dropped = size
            if room <= 0 or request is not None:
                return
            message = message.encode("utf-8", "replace")[:room].decode("utf-8", "ignore")
            size = room + LINE_OVERHEAD
        self.used += size
        line = {"time": utc_now(), "stream": stream, "message": message}
        if request is not None:
            line["request"] = request
        self.emit(line)

    def finish(self) -> None:
        if self.dropped:
            self.emit({"time": utc_now(), "stream": "engine", "message": (
                f"[output truncated: the hook printed more than {self.max_bytes} bytes; "
                "the rest was dropped]")})

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
    message = _capped(_text_of(error))
    stack = [f"{type(error).__name__}: {message}"]
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename == HOOK_FILENAME:
            text = lines[frame.lineno - 1].strip() if 0 < (frame.lineno or 0) <= len(lines) else ""
            stack.append(f'    at {frame.name} ({HOOK_FILENAME}:{frame.lineno}) {text}'.rstrip())
    described = {"name": str.__str__(type(error).__name__), "message": message,
                 "stack": _capped("\n".join(stack), MAX_STACK_CHARS)}
    for extra in ("friendly_message", "user_message"):
        try:
            value = getattr(error, extra, None)
        except Exception:  # a hook's property that raises: the field is left out
            continue
        if issubclass(type(value), str):
            described[extra] = _capped(str.__str__(value))
    return described


def _text_of(error: BaseException) -> str:
    """str(error) as a plain str; an error whose text cannot be built says so instead."""
    try:
        return str.__str__(str(error))
    except Exception as failure:  # e.g. RecursionError from arguments nested too deeply
        return f"(the error's text could not be built: {type(failure).__name__})"


MAX_MESSAGE_CHARS = 4096   # an error message (and each friendly message)
MAX_STACK_CHARS = 16384    # the hook's own frames


def _capped(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"... [{len(text) - limit} more characters dropped]"


MAX_RESULT_DEPTH = 64  # nesting of a result; deeper data is refused, not carried further
# An answer holds the result one level down; its error and stats are shallower.
MAX_ANSWER_DEPTH = MAX_RESULT_DEPTH + 1
_END = object()


def to_json(value, max_bytes: int) -> str:
    """JSON text of a hook's result, or TypeError/ValueError saying what was refused.

    The text is written here, without recursion, from what the data really holds: dicts,
    lists and tuples are read through the base types' own methods (`dict.items(d)`,
    `list.__iter__(l)`), never through a subclass's overrides, and str, int and float
    subclasses are written as their base values. So the depth and size caps apply to exactly
    the text that leaves the process. Dict keys that are numbers, booleans or None become
    strings as `json.dumps` makes them (a clash with a string key keeps the last, as
    `json.loads` does); other keys are refused.
    """
    parts: list[str] = []
    stack: list[list] = []  # open containers: [entries, closing bracket, entries begun, key]
    budget = _Budget(max_bytes)
    while True:
        opened = _open(value)
        if opened is None:
            parts.append(_scalar(value, budget, stack))
        elif len(stack) == MAX_RESULT_DEPTH:
            raise ValueError(f"the result nests more than {MAX_RESULT_DEPTH} levels deep "
                             "(or refers to itself)")
        else:
            bracket, entries, closing = opened
            budget.spend(2)  # both brackets
            parts.append(bracket)
            stack.append([entries, closing, 0, None])
        while stack:  # close the containers that are done; stop at the next entry
            frame = stack[-1]
            entry = next(frame[0], _END)
            if entry is not _END:
                break
            parts.append(frame[1])
            stack.pop()
        else:
            return "".join(parts)
        if frame[2]:
            budget.spend(1)
            parts.append(",")
        frame[2] += 1
        if frame[1] == "}":
            frame[3], value = _key(entry[0], stack), entry[1]
            parts.append(_string(frame[3], budget) + ":")
            budget.spend(1)
        else:
            value = entry


class _Budget:
    """Bytes of JSON text written so far, against the cap."""

    def __init__(self, max_bytes: int):
        self.max_bytes, self.used = max_bytes, 0

    def spend(self, size: int) -> None:
        self.used += size
        if self.used > self.max_bytes:
            raise ValueError(f"the result is over {self.max_bytes} bytes as JSON; the limit "
                             f"is {self.max_bytes}")


def _open(value):
    """(opening bracket, iterator over the real entries, closing bracket) of a container."""
    kind = type(value)
    if issubclass(kind, dict):
        return "{", iter(dict.items(value)), "}"
    if issubclass(kind, list):
        return "[", list.__iter__(value), "]"
    if issubclass(kind, tuple):
        return "[", tuple.__iter__(value), "]"
    return None


def _scalar(value, budget: _Budget, stack: list) -> str:
    kind = type(value)
    if issubclass(kind, str):
        return _string(value, budget)
    if value is None or kind is bool or issubclass(kind, (int, float)):
        try:
            text = _plain_text(value)
        except ValueError as error:
            raise ValueError(f"{_where(stack)} {error}") from None
        budget.spend(len(text))
        return text
    hint = "; decode bytes to a string first" if issubclass(kind, (bytes, bytearray)) else ""
    raise TypeError(f"{_where(stack)} is of type {kind.__name__}, which is not JSON data (return "
                    f"dicts, lists, strings, numbers, booleans and None{hint})")


def _string(value: str, budget: _Budget) -> str:
    budget.spend(str.__len__(value) + 2)  # checked before escaping builds the text
    text = json.encoder.encode_basestring_ascii(str.__str__(value))
    budget.spend(len(text) - str.__len__(value) - 2)
    return text


def _plain_text(value) -> str:
    """JSON text of None, a bool, or an int or float (subclasses as their base values)."""
    if value is None or type(value) is bool:
        return json.dumps(value)
    if issubclass(type(value), int):
        try:
            return int.__repr__(value)
        except ValueError:  # past the interpreter's int-to-text limit (sys.int_info)
            digits = int(int.bit_length(value) * 0.30103) + 1
            raise ValueError(f"is an integer of about {digits} digits; the limit is "
                             f"{sys.get_int_max_str_digits()} digits (return it as a string)"
                             ) from None
    number = float.__float__(value)
    if not math.isfinite(number):
        raise ValueError(f"is {number!r}, which JSON cannot carry (return None or a string "
                         "instead)")
    return float.__repr__(number)


def _key(key, stack: list) -> str:
    """A dict key as JSON writes it: strings as they are; numbers, booleans, None as text."""
    kind = type(key)
    if issubclass(kind, str):
        return str.__str__(key)
    if key is None or kind is bool or issubclass(kind, (int, float)):
        try:
            return _plain_text(key)
        except ValueError as error:
            raise ValueError(f"a key of {_where(stack[:-1])} {error}") from None
    raise TypeError(f"{_where(stack[:-1])} has a key of type {kind.__name__}; keys must be "
                    "strings (numbers, booleans and None are turned into strings)")


def _where(stack: list) -> str:
    """Where the value being written is: 'the result', or 'result["a"][2]'."""
    if not stack:
        return "the result"
    return "result" + "".join(
        f"[{json.dumps(frame[3][:40])}]" if frame[1] == "}" else f"[{frame[2] - 1}]"
        for frame in stack)


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_EMPTY_PAIR = re.compile(r"\[\]|\{\}")


def read_answer(text: str) -> dict:
    """The child's answer as plain JSON data checked for shape, or ValueError saying why not.

    It is hook-controlled text: nesting is measured before parsing, without recursion, so
    the parser never goes deeper than MAX_ANSWER_DEPTH; NaN, Infinity and integers too long
    to convert are refused; the error and stats must have the shapes the child writes.
    """
    data = _read_json(text, MAX_ANSWER_DEPTH)
    if not isinstance(data, dict) or data.get("status") not in set(Status) - {
            Status.RUNNING, Status.INTERRUPTED}:
        raise ValueError("it is not an object with the status of a finished run")
    error, stats = data.get("error"), data.get("stats") or {}
    if error is not None and not (isinstance(error, dict) and _all_text(error.values())):
        raise ValueError("its error is not an object of strings")
    if not isinstance(stats, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in stats.values()):
        raise ValueError("its stats are not an object of numbers")
    return {"status": Status(data["status"]), "result": data.get("result"), "error": error,
            "stats": stats}


def read_line(text: str) -> dict:
    """One log line a child wrote: {time, stream, message} strings, and for an outbound
    HTTP request a flat `request` object; ValueError when it is anything else."""
    line = _read_json(text, 2)
    if not (isinstance(line, dict) and {"time", "stream", "message"} <= set(line) <= {
            "time", "stream", "message", "request"}
            and _all_text((line["time"], line["stream"], line["message"]))
            and line["stream"] in CHILD_STREAMS):
        raise ValueError("it is not a {time, stream, message} line")
    request = line.get("request")
    if request is not None and not (isinstance(request, dict) and all(
            isinstance(v, (str, int, float)) or v is None for v in request.values())):
        raise ValueError("its request is not a flat object")
    return line


def _read_json(text: str, max_depth: int):
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    for _ in range(max_depth):  # each pass removes the innermost level
        if not brackets:
            break
        brackets = _EMPTY_PAIR.sub("", brackets)
    if _EMPTY_PAIR.search(brackets):
        raise ValueError(f"it nests more than {max_depth} levels deep")
    if brackets:
        raise ValueError("it is not valid JSON (its brackets do not match)")
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except ValueError as error:  # also an integer past the int-to-text limit
        raise ValueError(f"it is not valid JSON ({_capped(str(error), 200)})") from None


def _all_text(values) -> bool:
    return all(isinstance(v, str) for v in values)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{_capped(text, 40)} is out of a float's range")
    return number


class Clock:
    """Milliseconds since `start` (default: now), for the execution's timing stats.

    perf_counter is CLOCK_MONOTONIC, shared by every process on the host, so a child can
    measure from the moment the zygote received its request.
    """

    def __init__(self, start: float | None = None):
        self.start = time.perf_counter() if start is None else start

    def ms(self) -> float:
        return round((time.perf_counter() - self.start) * 1000, 3)
