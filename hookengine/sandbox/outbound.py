"""Outbound HTTP requests of one execution: one record each, with the provider's error.

`install(emit)` runs in the child before the hook; `emit` then gets one dict per request as
it completes. A record says what went where and how it ended, never what was sent:

    {"method": "POST", "host": "api.twilio.com", "path": "/2010-04-01/.../Messages.json",
     "status": 400, "duration_ms": 35.2, "error_code": 21211, "error_message": "..."}

`path` has no query string (it can carry credentials); no headers or bodies are kept; the
error fields are present only when the answer is a JSON error of a shape in PROVIDER_ERRORS.
A request that got no answer (refused by the egress policy, connection error, timeout) has
`"status": None` and `"error": "<exception class>: message"` instead.

Where it records: urllib3's `HTTPConnectionPool._make_request`, one call per HTTP exchange
(each retry and each redirect hop is its own call). It is the lowest layer that still knows
the request when it fails before a byte is sent: for https urllib3 connects (resolves,
meets the egress policy) before `http.client` sees a method or path. requests and so both
SDKs (twilio 9 and vonage 4 send through requests) pass through it. Nothing higher is
wrapped: requests' `Session.send` and `HTTPAdapter.send` are in policy.PATH_ARGUMENTS, whose
checks are keyed on the functions' identity, and a wrapper would slip past them.
Below it, `http.client.HTTPConnection` (putrequest, endheaders, getresponse) is wrapped
only as a backstop for a connection used outside a pool (hooks may not import http.client
or urllib.request, see policy.STDLIB_MODULES / DENIED_MODULE_ROOTS); inside a pool
exchange it records nothing, so each request is recorded exactly once.

The provider's error is read from the bytes the caller itself read (urllib3's response
`read`, `read1`, `read_chunked`), never by reading ahead: a `stream=True` response stays as
the caller left it, and a body nobody read gives a record without error fields, emitted
when the response is closed or by `flush()`.

The wrappers are plain closures without `functools.wraps` (no `__wrapped__`); a hook that
reaches one (`response.raw.read`) gets a function whose every attribute starts with "_",
which RestrictedPython refuses. Per-response state lives in `_outbound_*` attributes, which
a hook cannot name either. Nothing here raises into the hook's call: a recorder fault loses
the record, never the request.
"""

from __future__ import annotations

import fnmatch
import json
import re
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

BODY_LIMIT = 64 * 1024  # bytes of an answer kept for parsing; a larger body is not parsed
MESSAGE_LIMIT = 500  # characters of an error message or exception text in a record
PATH_LIMIT = 500


@dataclass(frozen=True)
class ErrorShape:
    """One provider's JSON error: where the error object is, and its code and message keys.

    `at` is the path to the error object; "*" takes the first list item that qualifies.
    The object qualifies when it has every key in `requires` and, for `unless`, the key's
    value differs from the one given (Vonage SMS: status "0" is success). `any_status`: the
    shape means an error even in a 2xx answer (Vonage SMS answers 200); other shapes are
    read only from 4xx and 5xx answers, where a `code` or `message` key is an error's.
    """

    name: str
    at: tuple = ()
    code: str | None = "code"
    message: str = "message"
    requires: tuple = ()
    unless: tuple | None = None
    any_status: bool = False
    convert_code: Callable | None = None


def _problem_type(value):
    """RFC 7807 `type` URL -> its last part ("...api-errors#validation" -> "validation")."""
    text = str(value)
    return re.split(r"[#/]", text.rstrip("/#"))[-1] or text


# First match wins; specific shapes come before the generic ones they would also match.
PROVIDER_ERRORS = (
    # {"code": 21211, "message": "...", "more_info": "https://www.twilio.com/docs/errors/21211",
    #  "status": 400}
    ErrorShape("Twilio", requires=("code", "message", "more_info")),
    # Vonage SMS API: HTTP 200, {"messages": [{"status": "2", "error-text": "Missing to"}]}
    # (Infobip's success, {"messages": [{"status": {...}}]}, must not match: it has no
    # error-text, and its status is an object.)
    ErrorShape("Vonage SMS", at=("messages", "*"), code="status", message="error-text",
               requires=("status", "error-text"), unless=("status", "0"), any_status=True),
    # Infobip: {"requestError": {"serviceException": {"messageId": "BAD_REQUEST", "text": ...}}}
    ErrorShape("Infobip", at=("requestError", "serviceException"), code="messageId",
               message="text", requires=("text",)),
    ErrorShape("Infobip", at=("requestError", "policyException"), code="messageId",
               message="text", requires=("text",)),
    # RFC 7807 problems (Vonage Messages, Verify, Voice): {"type", "title", "detail"}
    ErrorShape("RFC 7807 problem", code="type", message="detail",
               requires=("type", "title", "detail"), convert_code=_problem_type),
    ErrorShape("RFC 7807 problem", code="type", message="title", requires=("type", "title"),
               convert_code=_problem_type),
    # Auth0 Management API: {"statusCode": 400, "error": "Bad Request", "message": ...,
    #  "errorCode": "..."}
    ErrorShape("Auth0", code="errorCode", requires=("statusCode", "message", "errorCode")),
    ErrorShape("Auth0", code="error", requires=("statusCode", "error", "message")),
    # OAuth 2: {"error": "invalid_grant", "error_description": "..."}
    ErrorShape("OAuth", code="error", message="error_description",
               requires=("error", "error_description")),
    # {"error": {"code": ..., "message": ...}} and {"code": ..., "message": ...}
    ErrorShape("generic", at=("error",), requires=("message",)),
    ErrorShape("generic", requires=("message",)),
    ErrorShape("generic", code="error", message="error", requires=("error",)),
)

# Names for the host in `describe`; the records themselves carry only the host.
PROVIDER_NAMES = (("*.twilio.com", "Twilio"), ("twilio.com", "Twilio"),
                  ("*.nexmo.com", "Vonage"), ("*.vonage.com", "Vonage"),
                  ("*.infobip.com", "Infobip"), ("*.auth0.com", "Auth0"))

_QUERY = re.compile(r"\?[^\s'\"]*")  # a query string inside an exception's text


def provider_error(status, content_type, body: bytes) -> tuple | None:
    """(code, message) of a JSON error answer, or None; never raises."""
    if not body or len(body) > BODY_LIMIT or "json" not in (content_type or "").lower():
        return None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    failed = isinstance(status, int) and status >= 400
    for shape in PROVIDER_ERRORS:
        if not (failed or shape.any_status):
            continue
        found = _find(document, shape.at, shape)
        if found is None:
            continue
        code = found.get(shape.code) if shape.code else None
        if code is not None and shape.convert_code is not None:
            code = shape.convert_code(code)
        message = found.get(shape.message)
        if isinstance(message, (dict, list)):
            message = json.dumps(message)[:MESSAGE_LIMIT]
        return _scalar(code), None if message is None else _text(message)
    return None


def _find(value, path: tuple, shape: ErrorShape):
    if not path:
        return value if _qualifies(value, shape) else None
    step, rest = path[0], path[1:]
    if step == "*":
        items = value if isinstance(value, list) else ()
        return next((f for f in (_find(item, rest, shape) for item in items) if f is not None),
                    None)
    return _find(value.get(step), rest, shape) if isinstance(value, dict) else None


def _qualifies(value, shape: ErrorShape) -> bool:
    if not isinstance(value, dict) or any(key not in value for key in shape.requires):
        return False
    if shape.unless is None:
        return True
    decisive = value.get(shape.unless[0])
    return isinstance(decisive, (str, int)) and decisive != shape.unless[1]


def _scalar(value):
    if value is None or isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return _text(value)


def _text(value) -> str:
    return str(value)[:MESSAGE_LIMIT]


# -- recording


class _Recorder:
    """Where records go, and how a mapped host is named; replaced by each `install`."""

    def __init__(self):
        self.emit: Callable[[dict], object] | None = None
        self.names: dict[tuple, str] = {}
        self.local = threading.local()  # .in_pool: a pool exchange is under way

    def send(self, record: dict) -> None:
        emit = self.emit
        if emit is not None:
            emit(record)


_recorder = _Recorder()
_installed: set[str] = set()  # the layers already wrapped in this process


def install(emit: Callable[[dict], object], host_map: dict | None = None) -> None:
    """Record this process's outbound HTTP requests from now on, one `emit(record)` each.

    `host_map` is the egress policy's {host: target URL}: a request sent to a target is
    recorded under the host it stands for (when only one host maps there). Calling it
    again replaces `emit` and the map; nothing is wrapped twice.
    """
    names: dict[tuple, list] = {}
    for host, url in (host_map or {}).items():
        names.setdefault(_target(url), []).append(host)
    _recorder.names = {target: hosts[0] for target, hosts in names.items() if len(hosts) == 1}
    _recorder.emit = emit
    _install_urllib3()
    _install_http_client()


def flush() -> None:
    """Emit the records of answers whose body is still unread (a `stream=True` never read)."""
    for response in list(_open_responses):
        _safely(_finish, response)


def _target(url: str) -> tuple:
    parts = urlsplit(url)
    scheme = parts.scheme or "http"
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)


_DEFAULT_PORTS = {"http": 80, "https": 443}

# Answers with a pending record, until their body is read or they are closed. Weak: an
# answer dropped unread is closed by its finalizer, which emits its record.
_open_responses: weakref.WeakSet = weakref.WeakSet()


def _safely(function, *args) -> None:
    """Run a recorder step; its faults are the recorder's, never the hook's request's."""
    try:
        function(*args)
    except Exception:  # noqa: BLE001 - a lost record is better than a failed request
        pass


def _host(scheme: str, host, port) -> str:
    scheme = scheme or "http"
    host = (host or "").lower().strip("[]")
    name = _recorder.names.get((scheme, host, port))
    if name is not None:
        return name
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _path(url) -> str:
    text = str(url or "")
    if "://" in text.split("?", 1)[0]:  # a proxied request names the whole URL
        text = urlsplit(text).path
    path = text.split("?", 1)[0].split("#", 1)[0] or "/"
    return path[:PATH_LIMIT]


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _failure(error: BaseException) -> str:
    """`Class: message` of the root cause: the EgressDenied under urllib3's wrappers."""
    seen = set()
    while id(error) not in seen:
        seen.add(id(error))
        inner = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
        if inner is None:
            # urllib3's MaxRetryError and ProtocolError keep the cause as `.reason`/args.
            inner = getattr(error, "reason", None)
            if not isinstance(inner, BaseException):
                break
        error = inner
    text = _QUERY.sub("", str(error))
    return _text(f"{type(error).__name__}: {text}" if text else type(error).__name__)


def _failed(method, host: str, url, started: float, error: BaseException) -> None:
    _recorder.send({"method": str(method).upper(), "host": host, "path": _path(url),
                    "status": None, "duration_ms": _ms(started), "error": _failure(error)})


def _answered(response, method, host: str, url, started: float) -> None:
    record = {"method": str(method).upper(), "host": host, "path": _path(url),
              "status": getattr(response, "status", None), "duration_ms": _ms(started)}
    response._outbound_record = record
    _open_responses.add(response)
    if _body_done(response):  # preloaded, or nothing to read
        _finish(response)


def _finish(response) -> None:
    """Emit the response's record once, with the provider's error if its body says one."""
    record = response.__dict__.pop("_outbound_record", None)
    _open_responses.discard(response)
    if record is None:
        return
    tee = response.__dict__.get("_outbound_tee")
    if tee is not None and len(tee) <= BODY_LIMIT:
        headers = getattr(response, "headers", None) or {}
        error = provider_error(record["status"], headers.get("Content-Type"), bytes(tee))
        if error is not None:
            code, message = error
            if code is not None:
                record["error_code"] = code
            if message is not None:
                record["error_message"] = message
    response.__dict__.pop("_outbound_tee", None)
    _recorder.send(record)


def _took(response, data) -> None:
    """Keep (up to the limit) what the caller read from a response."""
    if data:
        tee = response.__dict__.get("_outbound_tee")
        if tee is None:
            tee = response._outbound_tee = bytearray()
        if len(tee) <= BODY_LIMIT:
            tee += bytes(data[:BODY_LIMIT + 1 - len(tee)])
    if "_outbound_record" in response.__dict__ and _body_done(response):
        _finish(response)


def _body_done(response) -> bool:
    if not response.isclosed():
        return False
    buffered = getattr(response, "_decoded_buffer", None)  # decoded, not yet handed out
    return buffered is None or len(buffered) == 0


def _install_urllib3() -> None:
    """Wrap the pool's per-exchange call and the response's reads (if urllib3 is loaded)."""
    connectionpool = sys.modules.get("urllib3.connectionpool")
    response_module = sys.modules.get("urllib3.response")
    if connectionpool is None or response_module is None or "urllib3" in _installed:
        return
    _installed.add("urllib3")
    Pool, Response = connectionpool.HTTPConnectionPool, response_module.HTTPResponse
    real_make_request = Pool._make_request
    real_read, real_read1 = Response.read, Response.read1
    real_read_chunked, real_close = Response.read_chunked, Response.close
    local = _recorder.local

    def _make_request(pool, conn, method, url, *args, **kwargs):
        started = time.perf_counter()
        local.in_pool = getattr(local, "in_pool", 0) + 1
        try:
            response = real_make_request(pool, conn, method, url, *args, **kwargs)
        except BaseException as error:
            _safely(_failed, method, _pool_host(pool), url, started, error)
            raise
        finally:
            local.in_pool -= 1
        _safely(_answered, response, method, _pool_host(pool), url, started)
        return response

    def read(response, *args, **kwargs):
        data = real_read(response, *args, **kwargs)
        _safely(_took, response, data)
        return data

    def read1(response, *args, **kwargs):
        data = real_read1(response, *args, **kwargs)
        _safely(_took, response, data)
        return data

    def read_chunked(response, *args, **kwargs):
        chunks = real_read_chunked(response, *args, **kwargs)
        try:
            for chunk in chunks:
                _safely(_took, response, chunk)
                yield chunk
        finally:
            chunks.close()
        _safely(_took, response, b"")

    def close(response):
        try:
            return real_close(response)
        finally:
            if "_outbound_record" in response.__dict__:
                _safely(_finish, response)

    Pool._make_request = _make_request
    Response.read, Response.read1 = read, read1
    Response.read_chunked, Response.close = read_chunked, close


def _pool_host(pool) -> str:
    try:
        return _host(pool.scheme, pool.host, pool.port)
    except Exception:  # noqa: BLE001
        return "?"


def _install_http_client() -> None:
    """A backstop for connections driven outside urllib3's pools: method and path from
    `putrequest`, a failure to connect or send at `endheaders`, the status or failure at
    `getresponse`; no provider error (the body belongs to whoever reads it)."""
    http_client = sys.modules.get("http.client")
    if http_client is None or "http.client" in _installed:
        return
    _installed.add("http.client")
    Connection = http_client.HTTPConnection
    real_putrequest, real_getresponse = Connection.putrequest, Connection.getresponse
    real_endheaders = Connection.endheaders
    local = _recorder.local

    def putrequest(conn, method, url, *args, **kwargs):
        if not getattr(local, "in_pool", 0):
            conn._outbound_request = (method, url, time.perf_counter())
        return real_putrequest(conn, method, url, *args, **kwargs)

    def endheaders(conn, *args, **kwargs):
        try:
            return real_endheaders(conn, *args, **kwargs)
        except BaseException as error:
            started = conn.__dict__.pop("_outbound_request", None)
            if started is not None:
                _safely(_failed, started[0], _connection_host(conn), started[1], started[2],
                        error)
            raise

    def getresponse(conn):
        started = conn.__dict__.pop("_outbound_request", None)
        try:
            response = real_getresponse(conn)
        except BaseException as error:
            if started is not None:
                _safely(_failed, started[0], _connection_host(conn), started[1], started[2],
                        error)
            raise
        if started is not None:
            method, url, at = started
            _safely(_recorder.send, {
                "method": str(method).upper(), "host": _connection_host(conn),
                "path": _path(url), "status": response.status, "duration_ms": _ms(at)})
        return response

    Connection.putrequest, Connection.getresponse = putrequest, getresponse
    Connection.endheaders = endheaders


def _connection_host(conn) -> str:
    try:
        scheme = "https" if hasattr(conn, "_context") or conn.default_port == 443 else "http"
        return _host(scheme, conn.host, conn.port)
    except Exception:  # noqa: BLE001
        return "?"


# -- the one-line form


def describe(record: dict) -> str:
    """One line for logs and the CLI:

    `POST api.twilio.com/2010-04-01/Accounts/AC…/Messages.json → 400 Twilio 21211: The 'To'
    number is not a valid phone number (35 ms)`, `GET example.com/ → refused: …`.
    """
    where = f"{record.get('method', '?')} {record.get('host', '?')}{record.get('path', '')}"
    took = record.get("duration_ms")
    took = f" ({took:.0f} ms)" if isinstance(took, (int, float)) else ""
    status = record.get("status")
    if status is None:
        error = str(record.get("error") or "no answer")
        cls, _, message = error.partition(": ")
        if cls in ("EgressDenied", "ConnectionRefusedError"):
            return f"{where} → refused: {message or cls}{took}"
        return f"{where} → failed: {error}{took}"
    outcome = str(status)
    code, message = record.get("error_code"), record.get("error_message")
    if code is not None or message is not None:
        provider = _provider_name(str(record.get("host", "")))
        label = " ".join(str(p) for p in (provider, code) if p is not None)
        outcome += f" {label}: {message}" if message is not None else f" {label}"
    return f"{where} → {outcome}{took}"


def _provider_name(host: str) -> str | None:
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return next((name for pattern, name in PROVIDER_NAMES
                 if fnmatch.fnmatchcase(host.lower(), pattern)), None)
