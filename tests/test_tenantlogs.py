"""Tenant logs: recorded events read back through GET /api/v2/logs, as Auth0 serves them."""

from __future__ import annotations

import threading

import httpx
import pytest
import waitress
from auth0.management import Auth0

from hookengine.tenantlogs import SEARCH_CAP, mask_phone

# The store's own behaviour: the same on SQLite and on PostgreSQL.
pytestmark = pytest.mark.backends


@pytest.fixture
def record(engine):
    """record(type, **fields) -> the stored entry (TenantLogs.record, as part D calls it)."""
    def write(log_type: str = "gd_send_sms", **fields) -> dict:
        return engine.logs.record({"type": log_type, **fields})
    return write


@pytest.fixture
def reader(auth):
    return auth("read:logs")


def test_record_assigns_sortable_ids_and_a_date(record, engine):
    first, second = record(user_id="auth0|1"), record()
    assert first["_id"] == first["log_id"] and len(first["log_id"]) == 56
    assert first["log_id"] < second["log_id"] and first["date"].endswith("Z")
    assert engine.logs.get(first["log_id"]) == first


def test_record_requires_a_type(engine):
    with pytest.raises(ValueError):
        engine.logs.record({"description": "no type"})


def test_mask_phone_keeps_the_last_four_digits():
    assert mask_phone("+14155550123") == "+XXXXXXX0123"
    assert mask_phone(None) is None


def test_get_log_and_unknown_id(client, record, reader):
    entry = record(details={"authenticator": {"type": "phone"}})
    assert client.get(f"/api/v2/logs/{entry['log_id']}", headers=reader).json == entry
    missing = client.get("/api/v2/logs/9000", headers=reader)
    assert missing.status_code == 404 and missing.json["message"] == "Log not found."


@pytest.mark.parametrize("scope", ["read:logs", "read:logs_users"])
def test_either_read_scope_is_enough(client, auth, scope):
    assert client.get("/api/v2/logs", headers=auth(scope)).status_code == 200


def test_other_scopes_are_refused_with_auth0s_text(client, auth):
    refused = client.get("/api/v2/logs", headers=auth("read:hooks"))
    assert refused.status_code == 403
    assert refused.json["message"] == ("Insufficient scope; expected any of: read:logs, "
                                       "read:logs_users.")


@pytest.mark.parametrize("query, expected", [
    ("type:gd_send_sms", ["sms-1", "sms-2"]),
    ('user_id:"auth0|b"', ["voice", "sms-2"]),
    ("type:(gd_send_voice OR gd_send_sms_failure)", ["voice", "fail"]),
    ("type:gd_send_sms AND user_id:auth0|a", ["sms-1"]),
    ("type:gd_send_sms* AND NOT user_id:auth0|a", ["sms-2", "fail"]),
    ("-type:gd_send_sms", ["voice", "fail", "none"]),
    ("sent", ["sms-1", "voice", "sms-2"]),       # a bare term: description, type, ...
    ("description:*failed*", ["fail"]),
    ("", ["sms-1", "voice", "sms-2", "fail", "none"]),
])
def test_search_subset(client, record, reader, query, expected):
    record(user_id="auth0|a", description="sms-1 sent")
    record("gd_send_voice", user_id="auth0|b", description="voice sent")
    record(user_id="auth0|b", description="sms-2 sent")
    record("gd_send_sms_failure", user_id="auth0|c", description="fail: provider failed")
    record("gd_start_enroll", description="none")
    for name in ("q", "search"):
        found = client.get("/api/v2/logs", query_string={name: query, "sort": "date:1"},
                           headers=reader).json
        assert [e["description"].split(" ")[0].rstrip(":") for e in found] == expected


@pytest.mark.parametrize("query, expected", [
    ("description:50%*", ["50% off"]),               # % and _ are LIKE's wildcards, not ours
    ("description:a_*", ["a_b"]),
    ("description:a?b*", ["a?b"]),                   # ? is GLOB's
    ("description:Sent*", ["Sent"]),                 # case-sensitive
    ("description:*off", ["50% off", "50x off"]),
])
def test_only_star_is_a_wildcard_and_matches_are_case_sensitive(client, record, reader, query,
                                                                expected):
    for description in ("50% off", "50x off", "a_b", "axb", "a?b", "acb", "Sent", "sent"):
        record(description=description)
    found = client.get("/api/v2/logs", query_string={"q": query, "sort": "date:1"},
                       headers=reader).json
    assert [e["description"] for e in found] == expected


@pytest.mark.parametrize("query", ["type:", "nope:x", "type:(a OR b", 'user_id:"open',
                                   "date:[a b]"])
def test_bad_queries_are_400s_naming_the_fields(client, reader, query):
    response = client.get("/api/v2/logs", query_string={"q": query}, headers=reader)
    assert response.status_code == 400, response.json
    assert "Invalid search query" in response.json["message"]


@pytest.mark.parametrize("params", [{"per_page": "101"}, {"page": "-1"}, {"sort": "type:1"},
                                    {"take": "0"}, {"from": "abc"}, {"fields": "a;b"},
                                    {"q": "x" * 1001}])
def test_bad_parameters_are_400s(client, reader, params):
    assert client.get("/api/v2/logs", query_string=params, headers=reader).status_code == 400


def test_paging_totals_sort_and_fields(client, record, reader):
    ids = [record(description=str(n))["log_id"] for n in range(5)]
    page = client.get("/api/v2/logs?page=1&per_page=2&include_totals=true",
                      headers=reader).json
    assert (page["start"], page["limit"], page["length"], page["total"]) == (2, 2, 2, 5)
    assert [e["log_id"] for e in page["logs"]] == ids[::-1][2:4]  # newest first
    oldest = client.get("/api/v2/logs?sort=date:1&per_page=2", headers=reader).json
    assert [e["log_id"] for e in oldest] == ids[:2]
    past = client.get("/api/v2/logs?page=3&per_page=2&include_totals=true", headers=reader)
    assert past.json["logs"] == [] and past.json["total"] == 5
    only = client.get("/api/v2/logs?fields=log_id,type", headers=reader).json
    assert set(only[0]) == {"log_id", "type"}
    without = client.get("/api/v2/logs?fields=details,description&include_fields=false",
                         headers=reader).json
    assert "description" not in without[0] and "type" in without[0]


def test_paging_stops_at_the_cap(client, engine, reader):
    for _ in range(SEARCH_CAP + 5):
        engine.logs.record({"type": "gd_send_sms"})
    last = client.get("/api/v2/logs?page=9&per_page=100&include_totals=true", headers=reader)
    assert last.json["length"] == 100 and last.json["total"] == SEARCH_CAP + 5
    beyond = client.get("/api/v2/logs?page=10&per_page=100&include_totals=true",
                        headers=reader)
    assert beyond.json["logs"] == []


def test_checkpoint_paging_follows_the_link(client, record, reader):
    ids = [record()["log_id"] for _ in range(5)]
    response = client.get("/api/v2/logs?from=0&take=2&q=type:nothing", headers=reader)
    assert [e["log_id"] for e in response.json] == ids[:2]  # `from` overrides `q`
    seen = []
    url = "/api/v2/logs?from=0&take=2"
    while True:
        response = client.get(url, headers=reader)
        link = response.headers["Link"]
        assert link.endswith('; rel="next"')
        url = link[1:link.index(">")].replace("http://localhost", "")
        if not response.json:
            break
        seen += [e["log_id"] for e in response.json]
    assert seen == ids
    assert f"from={ids[-1]}" in url  # an empty page links to the same checkpoint
    totals = client.get(f"/api/v2/logs?from={ids[2]}&include_totals=true", headers=reader)
    assert (totals.json["total"], totals.json["length"]) == (2, 2)


@pytest.fixture
def sdk(app, token):
    """Auth0's Python SDK against the app served by waitress on a loopback port."""
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    http = httpx.Client(timeout=10)
    yield Auth0(base_url=f"http://127.0.0.1:{server.effective_port}/api/v2",
                token=token("read:logs"), httpx_client=http, max_retries=0)
    http.close()
    server.close()
    server.task_dispatcher.shutdown()
    thread.join(timeout=10)
    for channel in list(server._map.values()):
        channel.close()


def test_sdk_pages_through_a_search_until_an_empty_page(sdk, record):
    wanted = [record(user_id=f"auth0|{n}")["log_id"] for n in range(7)]
    record("gd_send_voice")
    found = list(sdk.logs.list(search='type:"gd_send_sms"', per_page=3))
    assert sorted(log.log_id for log in found) == sorted(wanted)
    one = sdk.logs.get(wanted[0])
    assert (one.type, one.user_id) == ("gd_send_sms", "auth0|0")
