"""The web editor: server-rendered page shells whose native ES modules call /api/v2.

The pages hold no data of their own: each shell names what the page is about and carries
the session's CSRF token and scopes; its modules fetch everything through the same JSON API
the CLI and Auth0's SDKs use, with the session cookie instead of a bearer token.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Blueprint, current_app, redirect, render_template, request

from hookengine import phoneconfig
from hookengine.auth import check_origin, check_same_origin
from hookengine.phone.providers import DEV_OUTBOX_CAP
from hookengine.sandbox import Status
from hookengine.sessions import cookie_name, session_cookie
from hookengine.triggers import TRIGGERS
from hookengine.ui import assets, headers

log = logging.getLogger(__name__)

bp = Blueprint("ui", __name__, url_prefix="/ui", template_folder="templates")


def init_app(app) -> None:
    app.register_blueprint(bp)
    app.add_url_rule("/", "home", lambda: redirect("/ui/"))
    headers.init_app(app)
    app.jinja_env.globals["imports_of"] = assets.imports_of


def _engine():
    return current_app.extensions["hookengine"]


def _session():
    cookie = session_cookie(request)
    return _engine().sessions.check(cookie) if cookie else None


def _page(template: str, **boot):
    """A page shell for the signed-in session; the sign-in page for anyone else."""
    session = _session()
    if session is None:
        return redirect(f"/ui/sign-in?next={request.full_path.rstrip('?')}")
    boot = {"scopes": sorted(session.scopes), **boot}
    return render_template(template, boot=boot, csrf=session.csrf)


@bp.get("/")
def hooks_page():
    return _page("hooks.html", triggers=[{"id": t.id, "entry": t.entry_function}
                                         for t in TRIGGERS.values()])


@bp.get("/hooks/<id>")
def editor_page(id):
    return _page("editor.html", hookId=id, statuses=list(Status))


@bp.get("/phone")
def phone_page():
    # The Guardian messages' defaults, for Reset (the API has no route that gives them).
    return _page("phone.html", guardianDefaults=phoneconfig.DEFAULT_TEMPLATES,
                 outboxCap=DEV_OUTBOX_CAP)


@bp.get("/static/<path:name>")
def static(name):
    return assets.serve(name)


@bp.get("/sign-in")
def sign_in_page():
    return render_template("sign_in.html", next=_next(), problem=request.args.get("problem"))


@bp.post("/sign-in")
def sign_in():
    check_origin(request)  # no login CSRF: signing in happens on this page only
    cookie = _engine().sessions.sign_in(request.form.get("token", "").strip())
    if cookie is None:
        # Tokens are 256 random bits: a failure is noise or a typo, logged for the operator.
        log.warning("Web editor sign-in refused from %s: unknown or revoked token",
                    request.remote_addr)
        return render_template("sign_in.html", next=_next(),
                               problem="That token is unknown or revoked. Paste a token from "
                                       "`hookengine token create`."), 401
    return _signed_in(cookie)


@bp.get("/sign-in/<link>")
def sign_in_link(link):
    """A one-time link from `hookengine ui`: exchanged for a session, then gone."""
    cookie = _engine().sessions.redeem_link(link)
    if cookie is None:
        return render_template("sign_in.html", next="/ui/",
                               problem="That sign-in link is used up or expired (links last "
                                       "a minute). Run `hookengine ui` again, or paste a "
                                       "token."), 401
    return _signed_in(cookie)


@bp.post("/sign-out")
def sign_out():
    cookie = session_cookie(request)
    session = _engine().sessions.check(cookie) if cookie else None
    if session is not None:
        check_same_origin(session, request, request.form.get("csrf", ""))
        _engine().sessions.sign_out(cookie)
    response = redirect("/ui/sign-in?problem=Signed+out.")
    response.delete_cookie(cookie_name(request), path="/", secure=request.is_secure,
                           httponly=True, samesite="Strict")
    return response


def _signed_in(cookie: str):
    response = redirect(_next())
    response.set_cookie(cookie_name(request), cookie, path="/", httponly=True,
                        samesite="Strict", secure=request.is_secure,
                        max_age=_engine().settings["SESSION_MAX_HOURS"] * 3600)
    return response


def _next() -> str:
    """Where to go after signing in: a path of this engine's pages, never another site."""
    target = request.values.get("next", "/ui/")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/ui/") or "\\" in target:
        return "/ui/"
    return target
