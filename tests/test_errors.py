"""Every error, including the framework's own, comes back as Auth0's JSON error body."""

from __future__ import annotations

import pytest

# The store's own behaviour: the same on SQLite and on PostgreSQL.
pytestmark = pytest.mark.backends

HOOKS = "/api/v2/hooks"
ERROR_KEYS = {"statusCode", "error", "message", "errorCode"}


def assert_error(response, status: int, error_code: str) -> dict:
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = response.json
    assert ERROR_KEYS <= set(body) and body["statusCode"] == status
    assert body["errorCode"] == error_code
    return body


@pytest.mark.parametrize("data", [b"{", b'{"name": "a",}', b"{'name': 'a'}", b"\xff\xfe"])
def test_malformed_json_is_400(client, auth, data):
    response = client.post(HOOKS, data=data, content_type="application/json",
                           headers=auth("create:hooks"))
    body = assert_error(response, 400, "invalid_body")
    assert "not valid JSON" in body["message"]


@pytest.mark.parametrize("data", [b"", b"   ", b"null"])
def test_empty_body_is_400(client, auth, data):
    response = client.post(HOOKS, data=data, content_type="application/json",
                           headers=auth("create:hooks"))
    body = assert_error(response, 400, "invalid_body")
    assert "empty" in body["message"]


@pytest.mark.parametrize("content_type", [
    "application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x", None,
])
def test_body_that_is_not_json_is_415_saying_what_to_send(client, auth, content_type):
    headers = auth("create:hooks")
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post(HOOKS, data=b"name=a", headers=headers)
    body = assert_error(response, 415, "unsupported_media_type")
    assert "application/json" in body["message"]


def test_body_over_the_limit_is_413(client, auth, engine):
    limit = engine.settings["MAX_BODY_BYTES"]
    response = client.post(HOOKS, data=b" " * (limit + 1), content_type="application/json",
                           headers=auth("create:hooks"))
    assert_error(response, 413, "payload_too_large")


def test_a_body_at_the_limit_is_read(client, auth, engine):
    limit = engine.settings["MAX_BODY_BYTES"]
    padding = limit - len(b'{"name": "x"}')
    response = client.post(HOOKS, data=b'{"name": "x"}' + b" " * padding,
                           content_type="application/json", headers=auth("create:hooks"))
    assert_error(response, 400, "invalid_body")  # read and validated, not refused for size


def test_unknown_route_is_404_json(client):
    body = assert_error(client.get("/api/v2/nothing-here"), 404, "inexistent_resource")
    assert "/api/v2" in body["message"]
    assert_error(client.get("/nothing-here"), 404, "inexistent_resource")
    assert client.get("/").location == "/ui/"  # the root is the web editor's


def test_wrong_method_is_405_json_with_allow(client, auth):
    response = client.put(HOOKS, json={}, headers=auth())
    body = assert_error(response, 405, "method_not_allowed")
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}
    assert "GET" in body["message"]


def test_unexpected_fault_is_500_without_a_stack(app, client, caplog):
    def explode():
        raise RuntimeError("internal detail /etc/hookengine")

    app.add_url_rule("/api/v2/explode", "explode", explode)
    response = client.get("/api/v2/explode")
    body = assert_error(response, 500, "internal_error")
    assert body["message"] == "An unexpected error occurred; see the engine log."
    assert b"Traceback" not in response.data and b"internal detail" not in response.data
    assert "internal detail" in caplog.text  # the operator still gets it, in the engine log


@pytest.mark.parametrize("code, error_code", [
    (413, "payload_too_large"), (404, "inexistent_resource"),
    (431, "request_header_fields_too_large"), (400, "bad_request"),
])
def test_an_error_for_a_status_from_another_layer_uses_the_engines_codes(code, error_code):
    from hookengine.errors import HookEngineError

    error = HookEngineError.for_status(code, "said by the server")
    assert error.to_dict() == {"statusCode": code, "error": error.to_dict()["error"],
                               "message": "said by the server", "errorCode": error_code}


def test_waitress_answers_in_the_same_shape_and_codes():
    import json

    from waitress.utilities import RequestEntityTooLarge

    import hookengine.server  # noqa: F401 (installs the JSON answer)

    status, headers, body = RequestEntityTooLarge("exceeds the limit").to_response()
    assert status == "413 Request Entity Too Large"
    assert ("Content-Type", "application/json") in headers
    assert json.loads(body)["errorCode"] == "payload_too_large"
