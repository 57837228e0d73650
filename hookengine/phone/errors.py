"""The delivery endpoint's refusals: Auth0's error body plus the fields Guardian adds."""

from __future__ import annotations

from hookengine.errors import HookEngineError


class DeliveryRefused(HookEngineError):
    """A delivery refused or failed after the caller was authenticated (contract §B).

    `extra` joins the error body (`method` for a disabled channel, `provider_error` for a
    provider's failure); `headers` go with the response (X-RateLimit-*, Retry-After).
    """

    def __init__(self, status: int, error_code: str, message: str, *, extra: dict | None = None,
                 headers: dict | None = None, execution_id: str | None = None):
        super().__init__(message, error_code=error_code)
        self.status_code = status
        self.extra = extra or {}
        self.headers = headers or {}
        self.execution_id = execution_id

    def to_dict(self) -> dict:
        return {**super().to_dict(), **self.extra}


class ProviderFailed(Exception):
    """The provider (Twilio, a hook) did not take the message: its code and message."""

    def __init__(self, error_code: str, message: str, execution_id: str | None = None):
        super().__init__(message)
        self.error_code, self.message, self.execution_id = error_code, message, execution_id

    def as_dict(self) -> dict:
        return {"errorCode": self.error_code, "message": self.message}
