"""Web editor sessions: sign-in by token or one-time link, the cookie, CSRF and Origin checks,
idle and absolute expiry, revocation, and the pages' security headers."""

from __future__ import annotations

import re
import time

import pytest

from hookengine.sessions import COOKIE, LINK_SECONDS

# The store's own behaviour: the same on SQLite and on PostgreSQL.
pytestmark = pytest.mark.backends

ORIGIN = {"Origin": "http://localhost"}  # the test client's own origin


@pytest.fixture
def sign_in(client, token):
    """sign_in(*scopes) -> the CSRF token of a new session (its cookie is in `client`)."""
    def session(*scopes: str) -> str:
        response = client.post("/ui/sign-in", data={"token": token(*scopes)}, headers=ORIGIN)
        assert response.status_code == 302, response.data
        page = client.get("/ui/")
        return re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
    return session


def create(client, headers) -> int:
    return client.post("/api/v2/hooks", headers=headers, json={
        "name": "h", "triggerId": "post-user-registration",
        "script": "def post_user_registration(user, context):\n    return {}\n"}).status_code


def test_the_cookie_is_httponly_strict_and_never_the_token(client, token):
    secret = token()
    response = client.post("/ui/sign-in", data={"token": secret}, headers=ORIGIN)
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=") and secret not in cookie
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert response.location == "/ui/"


def test_a_session_reads_with_the_cookie_and_changes_with_the_csrf_token(client, sign_in):
    csrf = sign_in()
    assert client.get("/api/v2/hooks").status_code == 200  # reading needs no CSRF token
    assert create(client, {"X-CSRF-Token": csrf, **ORIGIN}) == 201


@pytest.mark.parametrize("headers, code", [
    ({}, "cross_site_request"),  # no Origin, no Sec-Fetch-Site: not from a page of ours
    ({"Origin": "http://evil.example"}, "cross_site_request"),
    ({"Sec-Fetch-Site": "cross-site"}, "cross_site_request"),
    (ORIGIN, "csrf_token"),  # the right origin without the token
    ({**ORIGIN, "X-CSRF-Token": "forged"}, "csrf_token"),
])
def test_a_change_with_the_cookie_alone_is_refused(client, sign_in, headers, code):
    csrf = sign_in()
    if headers.get("X-CSRF-Token") is None and code == "cross_site_request":
        headers = {**headers, "X-CSRF-Token": csrf}  # even with the token
    response = client.post("/api/v2/hooks", headers=headers, json={})
    assert response.status_code == 403 and response.json["errorCode"] == code
    assert client.get("/api/v2/hooks").json == []


def test_a_session_has_its_tokens_scopes(client, sign_in):
    csrf = sign_in("read:hooks")
    assert client.get("/api/v2/hooks").status_code == 200
    response = client.post("/api/v2/hooks", headers={"X-CSRF-Token": csrf, **ORIGIN}, json={})
    assert response.status_code == 403 and "create:hooks" in response.json["message"]
    assert '"scopes": ["read:hooks"]' in client.get("/ui/").text


def test_revoking_the_token_ends_its_sessions(client, engine, sign_in):
    sign_in()
    token_id = engine.tokens.list()[-1]["id"]
    assert engine.tokens.revoke(token_id)
    response = client.get("/api/v2/hooks")
    assert response.status_code == 401 and response.json["errorCode"] == "session_ended"
    assert client.get("/ui/").location.startswith("/ui/sign-in")


@pytest.mark.parametrize("setting, seconds", [("SESSION_IDLE_MINUTES", 60),
                                              ("SESSION_MAX_HOURS", 3600)])
def test_an_idle_or_old_session_is_refused(client, engine, sign_in, monkeypatch, setting,
                                           seconds):
    sign_in()
    now = time.time()
    limit = engine.settings[setting] * seconds
    if setting == "SESSION_MAX_HOURS":  # keep it busy, so only the absolute cap ends it
        engine.store.connection().execute("UPDATE sessions SET seen_at = ?", (now + limit,))
    monkeypatch.setattr(time, "time", lambda: now + limit + 1)
    assert client.get("/api/v2/hooks").status_code == 401


def test_sign_out_ends_the_session_and_clears_the_cookie(client, sign_in):
    csrf = sign_in()
    response = client.post("/ui/sign-out", data={"csrf": csrf}, headers=ORIGIN)
    assert response.status_code == 302 and f"{COOKIE}=;" in response.headers["Set-Cookie"]
    client.set_cookie(COOKIE, "")  # even if the browser kept it, the session is gone
    assert client.get("/api/v2/hooks").status_code == 401


def test_sign_out_from_another_site_is_refused(client, sign_in):
    sign_in()
    response = client.post("/ui/sign-out", data={"csrf": "x"},
                           headers={"Origin": "http://evil.example"})
    assert response.status_code == 403
    assert client.get("/api/v2/hooks").status_code == 200


def test_a_wrong_token_is_refused_and_a_cross_site_sign_in_too(client, token):
    response = client.post("/ui/sign-in", data={"token": "he_wrong"}, headers=ORIGIN)
    assert response.status_code == 401 and "unknown or revoked" in response.text
    assert "Set-Cookie" not in response.headers
    response = client.post("/ui/sign-in", data={"token": token()},
                           headers={"Origin": "http://evil.example"})
    assert response.status_code == 403 and "Set-Cookie" not in response.headers


def test_a_sign_in_link_works_once_and_within_a_minute(client, engine, monkeypatch):
    link = engine.sessions.create_link()
    assert client.get(f"/ui/sign-in/{link}").status_code == 302
    assert client.get("/api/v2/hooks").status_code == 200
    client.delete_cookie(COOKIE)
    assert client.get(f"/ui/sign-in/{link}").status_code == 401  # used up
    late = engine.sessions.create_link()
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + LINK_SECONDS + 1)
    response = client.get(f"/ui/sign-in/{late}")
    assert response.status_code == 401 and "expired" in response.text


def test_links_share_one_ui_token_which_revocation_ends(engine):
    engine.sessions.create_link(), engine.sessions.create_link()
    ui_tokens = [t for t in engine.tokens.list() if t["description"].startswith("hookengine ui")]
    assert len(ui_tokens) == 1
    engine.tokens.revoke(ui_tokens[0]["id"])
    engine.sessions.create_link()  # a new token for the next link
    assert len([t for t in engine.tokens.list() if t["description"].startswith(
        "hookengine ui") and not t["revoked_at"]]) == 1


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/ui/",
                                    "/ui/\\\\evil.example", "/api/v2/hooks"])
def test_sign_in_never_sends_the_browser_elsewhere(client, token, target):
    response = client.post("/ui/sign-in", data={"token": token(), "next": target},
                           headers=ORIGIN)
    assert response.location == "/ui/"


def test_pages_forbid_inline_script_and_framing(client, sign_in):
    sign_in()
    page = client.get("/ui/")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    assert nonce != re.search(r"'nonce-([^']+)'", client.get("/ui/").headers[
        "Content-Security-Policy"]).group(1)  # a new one for every page
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Cache-Control"] == "no-store"
    # No inline script: the only <script> without src is the boot data, which is not run.
    scripts = re.findall(r"<script([^>]*)>", page.text)
    assert all("src=" in attrs or 'type="application/json"' in attrs for attrs in scripts)


def test_boot_data_cannot_break_out_of_its_script_element(client, sign_in):
    sign_in()
    page = client.get("/ui/hooks/<img src=x onerror=alert(1)><!--")
    assert "<img src=x" not in page.text and "\\u003cimg src=x" in page.text


def test_static_files_are_gzipped_and_revalidated(client):
    response = client.get("/ui/static/vendor/hook-editor.js",
                          headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200 and response.headers["Content-Encoding"] == "gzip"
    again = client.get("/ui/static/vendor/hook-editor.js", headers={
        "Accept-Encoding": "gzip", "If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
    assert client.get("/ui/static/../sessions.py").status_code == 404


def test_our_scripts_never_write_html(client):
    """Hook-controlled text (logs, results, names) reaches the page only as text."""
    from hookengine.ui.assets import STATIC

    for module in STATIC.glob("*.js"):
        source = module.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                     "eval(", "new Function"):
            assert sink not in source, f"{module.name} uses {sink}"


def test_behind_a_trusted_tls_proxy_the_cookie_is_secure_and_https_pages_may_change(tmp_path):
    import requests
    from serverprocess import ServerProcess

    server = ServerProcess(tmp_path / "data", TRUSTED_PROXY="127.0.0.1",
                           LOG_LEVEL="WARNING").start()
    try:
        proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "hooks.example.com",
                   "Origin": "https://hooks.example.com"}
        response = requests.post(f"{server.base}/ui/sign-in", data={"token": server.token},
                                 headers=proxied, allow_redirects=False, timeout=30)
        cookie = response.headers["Set-Cookie"]
        assert cookie.startswith("__Host-hookengine_session=") and "Secure" in cookie
        session = {**proxied, "Cookie": cookie.split(";")[0]}
        page = requests.get(f"{server.base}/ui/", headers=session, timeout=30)
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
        answer = requests.post(f"{server.api}/hooks", json={}, timeout=30,
                               headers={**session, "X-CSRF-Token": csrf})
        assert answer.status_code == 400  # past the Origin check, to the body's own problems
    finally:
        server.terminate()
