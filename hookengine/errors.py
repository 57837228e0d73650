"""The engine's one error hierarchy, rendered as Auth0's JSON error body in one place."""

from __future__ import annotations

from http import HTTPStatus


class HookEngineError(Exception):
    """Base of every error the engine reports; `status_code` is the HTTP status it maps to."""

    status_code = 500
    error_code = "internal_error"

    def __init__(self, message: str, *, errors: list[str] | None = None,
                 error_code: str | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors or []
        if error_code:
            self.error_code = error_code

    def to_dict(self) -> dict:
        """Auth0's error body: {statusCode, error, message, errorCode} (+ errors when listed)."""
        body = {
            "statusCode": self.status_code,
            "error": HTTPStatus(self.status_code).phrase,
            "message": self.message,
            "errorCode": self.error_code,
        }
        if self.errors:
            body["errors"] = self.errors
        return body

    @classmethod
    def for_status(cls, code: int, message: str) -> HookEngineError:
        """The engine's error for an HTTP status that another layer chose (werkzeug, waitress).

        A status with its own class gets it (413 is `payload_too_large` wherever it is
        raised); any other keeps the status, with an error code made from its phrase.
        """
        known = _BY_STATUS.get(code)
        if known is not None:
            return known(message)
        error = cls(message)
        error.status_code = code
        error.error_code = HTTPStatus(code).phrase.lower().replace(" ", "_")
        return error


class BadRequest(HookEngineError):
    status_code = 400
    error_code = "invalid_body"


class MissingSecrets(BadRequest):
    """A hook declares secrets that are not set; each caller adds how to set them."""

    error_code = "missing_secret"

    def __init__(self, names: list[str], hint: str = ""):
        super().__init__(f"The hook declares secret(s) that are not set: {', '.join(names)}."
                         + (f" {hint}" if hint else ""))
        self.names = names

    def with_hint(self, hint: str) -> "MissingSecrets":
        return MissingSecrets(self.names, hint)


class InvalidQuery(BadRequest):
    error_code = "invalid_query_string"


class ValidationError(BadRequest):
    """Every problem found, not just the first: `errors` lists them ("Line N: ...")."""

    def __init__(self, message: str, errors: list[str] | None = None, **kwargs):
        if errors:
            message = f"{message}: " + "; ".join(errors)
        super().__init__(message, errors=errors, **kwargs)


class Unauthorized(HookEngineError):
    status_code = 401
    error_code = "invalid_token"


class Forbidden(HookEngineError):
    status_code = 403
    error_code = "insufficient_scope"


class NotFound(HookEngineError):
    status_code = 404
    error_code = "inexistent_resource"


class MethodNotAllowed(HookEngineError):
    status_code = 405
    error_code = "method_not_allowed"


class Conflict(HookEngineError):
    status_code = 409
    error_code = "conflict"


class PreconditionFailed(HookEngineError):
    """An If-Match that names no current state of the resource (or is not entity tags): the
    client's copy is stale, and nothing was changed."""

    status_code = 412
    error_code = "precondition_failed"


class PayloadTooLarge(HookEngineError):
    status_code = 413
    error_code = "payload_too_large"


class UnsupportedMediaType(HookEngineError):
    status_code = 415
    error_code = "unsupported_media_type"


class ServiceUnavailable(HookEngineError):
    """The engine cannot serve right now (disk full, database locked); nothing was changed."""

    status_code = 503
    error_code = "service_unavailable"


class NodeBusy(ServiceUnavailable):
    """This node takes no run now (every run slot busy, or it is draining); nothing was
    recorded or run, so the client (or a load balancer) may send it again, here or to
    another node, after Retry-After."""

    error_code = "node_busy"
    headers = {"Retry-After": "1"}


class DependencyError(HookEngineError):
    """A hook's dependencies cannot be given an environment; the message names the package,
    the version and why (no such version, source only, not allowed, the disk cap)."""

    status_code = 400
    error_code = "dependency_failed"


class ConfigError(HookEngineError):
    """A setting or key the engine cannot use (500).

    Mostly raised at start (a bad HOOKENGINE_* value, a key file that is not a Fernet key);
    also mid-request when stored secrets cannot be decrypted with the configured key.
    """


# Statuses whose class is the engine's one error for them, whoever detects the condition.
_BY_STATUS = {cls.status_code: cls for cls in (NotFound, MethodNotAllowed, PreconditionFailed,
                                               PayloadTooLarge, UnsupportedMediaType)}


class DataDirInUse(HookEngineError):
    """Another `hookengine serve` holds the data directory's lock (see serverlock.py)."""


def register_error_handlers(app) -> None:
    """Render HookEngineError, werkzeug's HTTP errors and unexpected faults as Auth0 JSON."""
    import sqlite3

    from werkzeug.exceptions import HTTPException

    def render(error: HookEngineError):
        return error.to_dict(), error.status_code, getattr(error, "headers", None) or {}

    def render_http(error: HTTPException):
        response = render(HookEngineError.for_status(error.code or 500, _http_message(error)))
        if error.code == 405 and getattr(error, "valid_methods", None):
            return response[0], response[1], {"Allow": ", ".join(error.valid_methods)}
        return response

    def render_database(error: Exception):
        # A full disk, a database locked past the busy timeout, a PostgreSQL that restarted
        # or failed over: the transaction rolled back, so the client may retry. Any other
        # SQLite operational error is a fault (500).
        text = str(error).lower()
        if not isinstance(error, sqlite3.OperationalError) or any(
                word in text for word in ("locked", "busy", "full", "disk i/o")):
            app.logger.warning("Database unavailable: %s", error)
            return render(ServiceUnavailable(
                "The database is unavailable (%s); nothing was changed, retry later." % error))
        return render_unexpected(error)

    def render_unexpected(error: Exception):
        # The stack goes to the engine's log, never into the response.
        app.logger.exception("Unexpected error: %s", error)
        return render(HookEngineError("An unexpected error occurred; see the engine log."))

    app.register_error_handler(HookEngineError, render)
    app.register_error_handler(HTTPException, render_http)
    for unavailable in app.extensions["hookengine"].store.unavailable:
        app.register_error_handler(unavailable, render_database)
    app.register_error_handler(Exception, render_unexpected)


def _http_message(error) -> str:
    if error.code == 404:
        return "Not Found: no such route. The API lives under /api/v2 (see /api/v2/openapi.json)."
    if error.code == 405:
        return f"Method not allowed; this route accepts {', '.join(error.valid_methods or [])}."
    if error.code == 413:
        return "Request body too large."
    return error.description or HTTPStatus(error.code).phrase
