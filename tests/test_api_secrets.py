"""The hook secrets endpoints: write-only values, Auth0's status codes, and refused inputs."""

from __future__ import annotations

import pytest

# The store's own behaviour: the same on SQLite and on PostgreSQL.
pytestmark = pytest.mark.backends

HIDDEN = "_VALUE_NOT_SHOWN_"


@pytest.fixture
def headers(auth):
    return auth()


@pytest.fixture
def hook(make_hook):
    return make_hook()


@pytest.fixture
def url(hook):
    return f"/api/v2/hooks/{hook['id']}/secrets"


def test_secrets_lifecycle(client, headers, url, engine, hook):
    assert client.get(url, headers=headers).json == {}

    response = client.post(url, json={"API_KEY": "k-1", "SID": "s-1"}, headers=headers)
    assert (response.status_code, response.json) == (201, {})
    assert client.get(url, headers=headers).json == {"API_KEY": HIDDEN, "SID": HIDDEN}

    response = client.patch(url, json={"API_KEY": "k-2"}, headers=headers)
    assert (response.status_code, response.json) == (200, {})
    assert engine.secrets.values(hook["id"]) == {"API_KEY": "k-2", "SID": "s-1"}

    response = client.delete(url, json=["SID"], headers=headers)
    assert (response.status_code, response.data) == (204, b"")
    assert client.get(url, headers=headers).json == {"API_KEY": HIDDEN}


def test_values_are_never_returned(client, headers, url):
    client.post(url, json={"TOKEN": "very-secret-value"}, headers=headers)
    assert b"very-secret-value" not in client.get(url, headers=headers).data


def test_secrets_belong_to_one_hook(client, headers, url, make_hook):
    client.post(url, json={"ONLY_MINE": "x"}, headers=headers)
    other = make_hook()
    assert client.get(f"/api/v2/hooks/{other['id']}/secrets", headers=headers).json == {}


def test_adding_an_existing_name_is_409(client, headers, url, engine, hook):
    client.post(url, json={"A": "1"}, headers=headers)
    response = client.post(url, json={"A": "2", "B": "3"}, headers=headers)
    assert response.status_code == 409
    assert response.json["message"].startswith("Secret with the same name already exists")
    assert engine.secrets.values(hook["id"]) == {"A": "1"}


def test_updating_an_unknown_name_is_404(client, headers, url, engine, hook):
    client.post(url, json={"A": "1"}, headers=headers)
    response = client.patch(url, json={"A": "2", "NOPE": "3"}, headers=headers)
    assert response.status_code == 404
    assert "NOPE" in response.json["message"]
    assert engine.secrets.values(hook["id"]) == {"A": "1"}


@pytest.mark.parametrize("method, body", [
    ("get", None), ("post", {"A": "1"}), ("patch", {"A": "1"}), ("delete", ["A"]),
    ("post", "not even an object"),
])
def test_unknown_hook_is_404_before_the_body_is_read(client, headers, method, body):
    response = getattr(client, method)("/api/v2/hooks/nope/secrets", json=body,
                                       headers=headers)
    assert response.status_code == 404
    assert response.json["message"] == "Hook not found."


def test_the_21st_secret_is_refused(client, headers, url, engine, hook):
    twenty = {f"S{i}": "v" for i in range(20)}
    assert client.post(url, json=twenty, headers=headers).status_code == 201
    response = client.post(url, json={"S20": "v"}, headers=headers)
    assert response.status_code == 400
    assert "maximum of 20 secrets" in response.json["message"]
    assert len(engine.secrets.names(hook["id"])) == 20


def test_21_secrets_at_once_are_refused(client, headers, url, engine, hook):
    response = client.post(url, json={f"S{i}": "v" for i in range(21)}, headers=headers)
    assert response.status_code == 400
    assert "maximum of 20 secrets" in response.json["message"]
    assert engine.secrets.names(hook["id"]) == {}


@pytest.mark.parametrize("method", ["post", "patch"])
@pytest.mark.parametrize("body, named", [
    ({}, "non-empty"),
    ([], "not of type 'object'"),
    ({"A": 1}, "A: 1 is not of type 'string'"),
    ({"A": None}, "A: None is not of type 'string'"),
    ({"A": {"nested": "x"}}, "is not of type 'string'"),
    ({"bad name": "x"}, "'bad name' must start with a letter"),
    ({"1ST": "x"}, "'1ST' must start with a letter"),
    ({"A": "x" * 8193}, "'A' is 8193 bytes; the limit is 8192"),
])
def test_bad_secret_bodies_are_refused(client, headers, url, engine, hook, method, body,
                                       named):
    client.post(url, json={"A": "kept"}, headers=headers)
    response = getattr(client, method)(url, json=body, headers=headers)
    assert response.status_code == 400
    assert named in response.json["message"]
    assert engine.secrets.values(hook["id"]) == {"A": "kept"}


@pytest.mark.parametrize("body, named", [
    ([], "should be non-empty"), ({"A": 1}, "not of type 'array'"), ([1], "not of type 'string'"),
    ("A", "not of type 'array'"),
])
def test_bad_delete_bodies_are_refused(client, headers, url, engine, hook, body, named):
    client.post(url, json={"A": "kept"}, headers=headers)
    response = client.delete(url, json=body, headers=headers)
    assert response.status_code == 400
    assert named in response.json["message"]
    assert engine.secrets.values(hook["id"]) == {"A": "kept"}


def test_delete_without_a_body_is_refused(client, headers, url):
    response = client.delete(url, headers={**headers, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert "empty" in response.json["message"]


def test_deleting_names_that_do_not_exist_is_harmless(client, headers, url, engine, hook):
    client.post(url, json={"A": "kept"}, headers=headers)
    assert client.delete(url, json=["NOT_SET"], headers=headers).status_code == 204
    assert engine.secrets.values(hook["id"]) == {"A": "kept"}


def test_secret_values_may_be_empty_or_unicode(client, headers, url, engine, hook):
    values = {"EMPTY": "", "PEM": "-----BEGIN KEY-----\nMIIE\n-----END KEY-----\n",
              "U": "ü€😀"}
    assert client.post(url, json=values, headers=headers).status_code == 201
    assert engine.secrets.values(hook["id"]) == values
