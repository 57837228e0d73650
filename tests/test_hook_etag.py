"""Optimistic concurrency on a hook's saves: an ETag on every answer that shows the hook, and
If-Match on PATCH, so that an editor's save never silently overwrites one made since it loaded
the hook."""

from __future__ import annotations

import re
import threading

import pytest

# The store's own behaviour: the same on SQLite and on PostgreSQL.
pytestmark = pytest.mark.backends

HOOKS = "/api/v2/hooks"


def script(body: str = "return {}") -> str:
    return f"def send_phone_message(recipient, text, context):\n    {body}\n"


@pytest.fixture
def headers(auth):
    return auth()


@pytest.fixture
def hook(client, headers):
    """A created hook, with the ETag its 201 gave."""
    response = client.post(HOOKS, json={"name": "sms", "script": script(),
                                        "triggerId": "send-phone-message"}, headers=headers)
    assert response.status_code == 201
    return {**response.json, "etag": response.headers["ETag"]}


def etag_of(client, headers, hook_id: str) -> str:
    response = client.get(f"{HOOKS}/{hook_id}", headers=headers)
    assert response.status_code == 200
    return response.headers["ETag"]


def patch(client, headers, hook_id: str, body: dict, if_match: str | None = None):
    extra = {} if if_match is None else {"If-Match": if_match}
    return client.patch(f"{HOOKS}/{hook_id}", json=body, headers={**headers, **extra})


def test_the_etag_is_strong_and_stable_across_reads(client, headers, hook):
    assert re.fullmatch(r'"[^"]+"', hook["etag"])  # quoted, no W/ (If-Match compares strongly)
    assert etag_of(client, headers, hook["id"]) == hook["etag"]
    assert etag_of(client, headers, hook["id"]) == hook["etag"]
    response = client.get(f"{HOOKS}/{hook['id']}?fields=name", headers=headers)
    assert response.headers["ETag"] == hook["etag"]


def test_a_save_that_changes_the_hook_changes_the_etag(client, headers, hook):
    seen = {hook["etag"]}
    for change in ({"script": script("return {'x': 1}")}, {"name": "renamed"},
                   {"enabled": False}, {"dependencies": {"twilio": "latest"}}):
        response = patch(client, headers, hook["id"], change)
        assert response.status_code == 200
        assert response.headers["ETag"] not in seen, change
        assert etag_of(client, headers, hook["id"]) == response.headers["ETag"]
        seen.add(response.headers["ETag"])


def test_a_save_that_changes_nothing_keeps_the_etag(client, headers, hook):
    response = patch(client, headers, hook["id"], {"name": "sms", "enabled": True})
    assert response.status_code == 200
    assert response.headers["ETag"] == hook["etag"]


def test_the_installer_recording_its_progress_keeps_the_etag(client, headers, engine, hook):
    """The editor's next save must not be refused because an install finished meanwhile."""
    response = patch(client, headers, hook["id"], {"dependencies": {"twilio": "latest"}})
    saved = response.headers["ETag"]
    engine.hooks.set_installed(hook["id"], {"twilio": "latest"}, "failed", error="no index")
    shown = client.get(f"{HOOKS}/{hook['id']}", headers=headers)
    assert shown.json["dependencies_error"] == "no index"
    assert shown.headers["ETag"] == saved
    assert patch(client, headers, hook["id"], {"name": "after"}, saved).status_code == 200


def test_being_disabled_by_another_hook_changes_the_etag(client, headers, hook, make_hook):
    make_hook(enabled=True)  # the one enabled hook of the trigger: ours is disabled
    assert etag_of(client, headers, hook["id"]) != hook["etag"]


def test_a_stale_if_match_is_412_and_changes_nothing(client, headers, engine, hook):
    assert patch(client, headers, hook["id"], {"name": "theirs"}).status_code == 200
    response = patch(client, headers, hook["id"], {"script": script("return 'mine'")},
                     hook["etag"])
    assert response.status_code == 412
    assert response.json["errorCode"] == "precondition_failed"
    assert response.json["error"] == "Precondition Failed"
    assert re.fullmatch(r"The hook was changed since you loaded it \(at \S+Z\); reload it to "
                        r"see the change, or send the update again without If-Match to "
                        r"overwrite it\.", response.json["message"])
    stored = engine.hooks.get(hook["id"])
    assert (stored["name"], stored["script"]) == ("theirs", script())


def test_the_current_etag_or_star_lets_the_update_through(client, headers, hook):
    response = patch(client, headers, hook["id"], {"name": "mine"}, hook["etag"])
    assert response.status_code == 200 and response.json["name"] == "mine"
    response = patch(client, headers, hook["id"], {"name": "any"}, "*")
    assert response.status_code == 200 and response.json["name"] == "any"
    current = response.headers["ETag"]
    listed = patch(client, headers, hook["id"], {"name": "listed"}, f'"other", {current}')
    assert listed.status_code == 200


@pytest.mark.parametrize("value", ["", "garbage", '"unterminated', "01ABC.1", "*, *",
                                   '"a" "b"', '"a",'])
def test_a_malformed_if_match_is_412_and_changes_nothing(client, headers, engine, hook, value):
    response = patch(client, headers, hook["id"], {"name": "mine"}, value)
    assert response.status_code == 412
    assert response.json["message"].startswith("If-Match must be * or entity tags")
    assert engine.hooks.get(hook["id"])["name"] == "sms"


def test_a_weak_etag_never_matches(client, headers, hook):
    response = patch(client, headers, hook["id"], {"name": "mine"}, f"W/{hook['etag']}")
    assert response.status_code == 412


def test_an_unknown_hook_or_a_bad_body_answers_before_the_condition(client, headers, hook):
    """RFC 9110: a request that fails without its precondition fails the same way with it."""
    unknown = patch(client, headers, "01ARZ3NDEKTSV4RRFFQ69G5FAV", {"name": "x"}, '"stale"')
    assert unknown.status_code == 404
    assert patch(client, headers, hook["id"], {"name": "-bad"}, '"stale"').status_code == 400


def test_without_if_match_the_last_save_wins_as_before(client, headers, hook):
    assert patch(client, headers, hook["id"], {"name": "first"}).status_code == 200
    response = patch(client, headers, hook["id"], {"name": "second"})
    assert response.status_code == 200 and response.json["name"] == "second"


def test_two_saves_of_the_same_version_at_once_one_wins(app, headers, engine, hook):
    barrier = threading.Barrier(2)
    answers = {}

    def save(which: str) -> None:
        client = app.test_client()
        barrier.wait()
        answers[which] = patch(client, headers, hook["id"], {"script": script(f"return '{which}'")},
                               hook["etag"])

    threads = [threading.Thread(target=save, args=(which,)) for which in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    statuses = sorted(answer.status_code for answer in answers.values())
    assert statuses == [200, 412]
    (winner,) = [which for which, answer in answers.items() if answer.status_code == 200]
    assert engine.hooks.get(hook["id"])["script"] == script(f"return '{winner}'")


def test_a_save_between_the_checks_and_the_write_does_not_slip_through(
        client, headers, engine, hook, monkeypatch):
    """The ETag is compared inside the write's transaction, not only when the request came."""
    validate = engine.hooks.validate_script

    def validate_while_another_saves(*args, **kwargs):
        engine.hooks.update(hook["id"], {"name": "in-between"})
        return validate(*args, **kwargs)

    monkeypatch.setattr(engine.hooks, "validate_script", validate_while_another_saves)
    response = patch(client, headers, hook["id"], {"script": script("return 'late'")},
                     hook["etag"])
    assert response.status_code == 412
    stored = engine.hooks.get(hook["id"])
    assert (stored["name"], stored["script"]) == ("in-between", script())


def test_the_document_declares_etag_if_match_and_412(client):
    paths = client.get("/api/v2/openapi.json").json["paths"]
    update = paths["/api/v2/hooks/{id}"]["patch"]
    (if_match,) = [p for p in update["parameters"] if p["name"] == "If-Match"]
    assert (if_match["in"], if_match["required"]) == ("header", False)
    assert "412" in update["responses"]
    for path, method, status in [("/api/v2/hooks/{id}", "patch", "200"),
                                 ("/api/v2/hooks/{id}", "get", "200"),
                                 ("/api/v2/hooks", "post", "201")]:
        assert "ETag" in paths[path][method]["responses"][status]["headers"], (method, path)


def test_hooks_saved_before_versions_existed_get_an_etag(tmp_path, app_settings, sandbox,
                                                        sqlite_only):
    """The version column is a migration of its own: an older data directory's hooks start at
    version 1."""
    sqlite_only("a SQLite data directory from before the version column; PostgreSQL's schema "
                "has had it from its first migration")
    import sqlite3

    from hookengine import create_app
    from hookengine.store import DB_NAME, MIGRATIONS, _statements

    data = tmp_path / "old"
    data.mkdir()
    db = sqlite3.connect(data / DB_NAME, isolation_level=None)
    versions = next(i for i, migration in enumerate(MIGRATIONS)
                    if "ADD COLUMN version" in migration)
    for number, migration in enumerate(MIGRATIONS[:versions], start=1):
        for statement in _statements(migration):
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {number}")
    db.execute("INSERT INTO hooks (id, name, script, trigger_id, created_at, updated_at) "
               "VALUES ('01ARZ3NDEKTSV4RRFFQ69G5FAV', 'old', ?, 'send-phone-message', 'then', "
               "'then')", (script(),))
    db.close()
    app = create_app({**app_settings, "DATA_DIR": str(data)}, env_file=None, sandbox=sandbox)
    try:
        engine = app.extensions["hookengine"]
        headers = {"Authorization": f"Bearer {engine.tokens.create([])}"}
        response = app.test_client().get(f"{HOOKS}/01ARZ3NDEKTSV4RRFFQ69G5FAV", headers=headers)
        assert response.headers["ETag"] == '"01ARZ3NDEKTSV4RRFFQ69G5FAV.1"'
    finally:
        app.extensions["hookengine"].close()
