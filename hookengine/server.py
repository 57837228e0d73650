"""The production WSGI server (waitress) and how it is configured for the engine."""

from __future__ import annotations

import json

import waitress.utilities
from waitress import create_server

from hookengine.errors import HookEngineError


def _json_error_response(self, ident=None):
    """waitress answers some requests itself, before the app sees them (a body over the
    limit, a malformed request line); give those the API's JSON error shape too."""
    error = HookEngineError.for_status(self.code, f"{self.reason}: {self.body}")
    body = json.dumps(error.to_dict()).encode()
    return f"{self.code} {self.reason}", [("Content-Type", "application/json")], body


waitress.utilities.Error.to_response = _json_error_response


def make_server(app, host: str, port: int):
    """A waitress server for `app`.

    waitress reads requests in its event loop and hands only complete ones to worker threads,
    so slow clients hold a socket, not a thread. Bodies over MAX_BODY_BYTES are refused from
    the Content-Length header, before they are read.
    """
    settings = app.extensions["hookengine"].settings
    return create_server(
        app, host=host, port=port, threads=settings["SERVER_THREADS"], ident="hookengine",
        max_request_body_size=settings["MAX_BODY_BYTES"],
        channel_timeout=60,          # an idle or stalled connection is closed after this
        connection_limit=500,        # beyond it new connections wait in the listen backlog
        clear_untrusted_proxy_headers=True,
        # Keeps reading a connection while its request runs, so a client that goes away is
        # seen at once (environ["waitress.client_disconnected"]): a closed live log stream
        # frees its thread now, not at its next heartbeat.
        channel_request_lookahead=1,
        **_proxy(settings["TRUSTED_PROXY"]),
    )


def _proxy(address: str) -> dict:
    """Believe the proxy's scheme and host (the web editor compares a page's Origin with
    them, and marks its cookie Secure under TLS); without one, no forwarded header counts."""
    if not address:
        return {}
    return {"trusted_proxy": address, "trusted_proxy_count": 1,
            "trusted_proxy_headers": {"x-forwarded-proto", "x-forwarded-host",
                                      "x-forwarded-for"}}
