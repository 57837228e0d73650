"""Security headers of every response, and the Content-Security-Policy of the editor's pages.

Pages get a strict policy: scripts only from the engine itself (no inline script at all), and
styles from the engine plus the one per-response nonce that CodeMirror's injected <style>
carries. API answers are data, never documents: they get a policy that allows nothing.
"""

from __future__ import annotations

import secrets

from flask import g, request

PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self' 'nonce-{nonce}'; "
               "img-src 'self' data:; connect-src 'self'; font-src 'self'; "
               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
DATA_POLICY = "default-src 'none'; frame-ancestors 'none'"
COMMON = {
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: under it a browser sends `Origin: null` with a form's POST, and the
    # sign-in and sign-out forms are checked by their Origin.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def csp_nonce() -> str:
    """This response's style nonce (made on first use)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def init_app(app) -> None:
    app.jinja_env.globals["csp_nonce"] = csp_nonce

    @app.after_request
    def secure(response):
        response.headers.update(COMMON)
        if response.mimetype == "text/html":
            response.headers["Content-Security-Policy"] = PAGE_POLICY.format(nonce=csp_nonce())
            response.headers["Cache-Control"] = "no-store"
        elif not request.path.startswith("/ui/static/"):
            response.headers["Content-Security-Policy"] = DATA_POLICY
            response.headers.setdefault("Cache-Control", "no-store")
        return response
