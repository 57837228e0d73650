"""Schema-driven fuzzing of /api/v2 with schemathesis, plus a regression test per bug it found.

The fuzz test loads /api/v2/openapi.json from an in-process app (WSGI: no server, no sockets)
and, for every documented operation, sends generated requests (valid and invalid) with a token
holding every scope. It asserts that no request gets a 5xx, that every 4xx body is the Error
schema of the document ({statusCode, error, message, errorCode}), and that statuses, content
types and bodies conform to what the document declares. Path parameters are drawn from
existing hooks, executions and triggers as well as from random strings, so operations are
exercised past their 404. A stateful test then chains calls along the links schemathesis
infers from the document (create a hook, then read, run, delete it...).

For a longer hunt: FUZZ_EXAMPLES=300 pytest tests/test_fuzz.py
"""

from __future__ import annotations

import json
import os
import re

import hypothesis.strategies as st
import pytest
import schemathesis
from hypothesis import settings
from jsonschema import Draft202012Validator

from hookengine import create_app
# Importing the blueprints registers their operations: the document is complete at import.
from hookengine.api import (branding, health, hooks, openapi, runs,  # noqa: F401
                            schemas, secrets, triggers)
from hookengine.api.routes import MAX_BODY_DEPTH, MAX_PAGE
from hookengine.triggers import TRIGGERS

# Generated cases per operation (fuzzing phase) and stateful scenarios (of up to 10 calls).
# Runs really execute hooks in the sandbox, so these bound the module's time as much as the
# generation does: about 25 s on 2 cores.
MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", 30))
STATEFUL_EXAMPLES = MAX_EXAMPLES * 2 // 3
SEEDED_PER_TRIGGER = 2
HOOKS = "/api/v2/hooks"

ERROR_VALIDATOR = Draft202012Validator({**schemas.ERROR,
                                        "required": ["statusCode", "error", "message",
                                                     "errorCode"]})


def _script(trigger_id: str) -> str:
    return f"def {TRIGGERS[trigger_id].signature()}:\n    return None\n"


class Seeds:
    """Existing resources for path parameters; re-created when a fuzzed DELETE removed them."""

    def __init__(self, engine):
        self.engine = engine
        self.counter = 0
        self.execution_ids: list[str] = []

    def hook_ids(self) -> list[str]:
        _, hooks = self.engine.hooks.list(0, 100)
        while len(hooks) < SEEDED_PER_TRIGGER * len(TRIGGERS):
            trigger_id = list(TRIGGERS)[len(hooks) % len(TRIGGERS)]
            self.counter += 1
            hooks.append(self.engine.hooks.create({
                "name": f"seeded {self.counter}", "script": _script(trigger_id),
                "triggerId": trigger_id}))
        return [hook["id"] for hook in hooks]

    def reset(self) -> None:
        """Back to the seeded state: the same hooks, one execution, nothing else stored (no
        secrets, lines, phone settings, providers, templates, logs, streams or buckets) but
        the tokens, and every AUTOINCREMENT counter back at its start."""
        with self.engine.store.transaction() as db:
            tables = [row[0] for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN "
                "('tokens', 'sqlite_sequence')")]
            for table in tables:
                db.execute(f"DELETE FROM {table}")
            db.execute("DELETE FROM sqlite_sequence")
        self.execution_ids.clear()
        self.run_once()

    def run_once(self) -> None:
        hook = self.engine.hooks.get(self.hook_ids()[0])
        record = self.engine.runner.run(hook, TRIGGERS[hook["triggerId"]].sample_payload)
        self.execution_ids.append(record["id"])


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory, sandbox):
    # No package index: answers must not depend on the network (hypothesis replays them).
    app = create_app({"DATA_DIR": str(tmp_path_factory.mktemp("fuzz") / "data"),
                      "TIMEOUT_SECONDS": 5, "CPU_SECONDS": 2, "INDEX_URL": "none"},
                     env_file=None, sandbox=sandbox)
    yield app
    app.extensions["hookengine"].close()


# The document the app serves at /api/v2/openapi.json (test_served_document_is_the_fuzzed_one
# checks they are the same). It is loaded at import, as schemathesis' `parametrize()` needs; its
# lazy `from_fixture` loader does not work under pytest 9.2 (it sets Node._nodeid, now gone).
schema = schemathesis.openapi.from_dict(openapi.document(), config=schemathesis.Config.from_dict({
    # The token goes in as a header of each call (see `fuzz`): the generator leaves
    # Authorization alone, and the ignored_auth check still tries each operation without it.
    "generation": {"max-examples": MAX_EXAMPLES, "database": "none",
                   "with-security-parameters": False},
    # A ?follow=true log stream never ends: it is read for this long (see also `fuzz`).
    "request-timeout": 0.5,
    "operations": [{
        # Rules a JSON Schema cannot say: a script must compile and define the trigger's entry
        # function, dependencies must be installed, a payload must fit its trigger, a hook has
        # at most MAX_SECRETS secrets, secret names have a pattern and values a size (checked by
        # the secret store, whose messages say more than a JSON Schema pattern would). A
        # schema-valid body may break them: 400 is correct there. So may a phone provider (what
        # twilio and custom each need) and a phone template (its body must be Liquid). A hook's
        # PATCH with an If-Match that names no current version is 412, whatever the body.
        "include-operation-id": ["post_hooks", "patch_hooks_by_id", "post_hooks_by_id_run",
                                 "post_triggers_by_trigger_id_execute",
                                 "post_hooks_by_id_secrets", "patch_hooks_by_id_secrets",
                                 "post_branding_phone_providers",
                                 "patch_branding_phone_providers_by_id",
                                 "post_branding_phone_templates",
                                 "patch_branding_phone_templates_by_id"],
        "checks": {"positive_data_acceptance": {
            "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "412"]}},
    }, {
        # Test sends deliver through the configured provider: a fuzzed Twilio provider would
        # send to Twilio itself. tests/test_branding.py covers them against stand-ins.
        "include-operation-id": ["post_branding_phone_providers_by_id_try",
                                 "post_branding_phone_templates_by_id_try"],
        "enabled": False,
    }],
}))
SEEDS: list[Seeds] = []  # the module's app's seeds, set by the `fuzz` fixture


class CurrentApp:
    """The WSGI app schemathesis calls: the `fuzz` fixture's, which exists only once tests run."""

    app = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


schema.app = CurrentApp()


@pytest.fixture(scope="module")
def fuzz(fuzz_app):
    """Headers with a token holding every scope; routes schemathesis' requests to `fuzz_app`."""
    engine = fuzz_app.extensions["hookengine"]
    seeds = Seeds(engine)
    seeds.run_once()
    SEEDS[:] = [seeds]
    schema.app.app = fuzz_app
    with pytest.MonkeyPatch.context() as patch:
        # Schemathesis stops reading an event stream at the first event past its timeout;
        # a quick heartbeat makes that ~1 s instead of 15.
        patch.setattr(runs, "HEARTBEAT_SECONDS", 0.2)
        yield {"Authorization": f"Bearer {engine.tokens.create([])}"}
    schema.app.app = None
    SEEDS.clear()


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """Half the time, point the path at something that exists (else nearly every case 404s)."""
    if not path_parameters or not SEEDS:
        return st.just(path_parameters)
    # As many choices every time (hooks the fuzzer creates are not offered): hypothesis
    # replays a case by its draws, and a list that grew between runs made it "flaky".
    existing = {"id": SEEDS[0].hook_ids()[:SEEDED_PER_TRIGGER * len(TRIGGERS)],
                "execution_id": SEEDS[0].execution_ids[:1], "trigger_id": list(TRIGGERS)}
    chosen = {name: st.sampled_from(existing[name]) for name in path_parameters
              if existing.get(name)}
    return st.one_of(st.just(path_parameters), st.fixed_dictionaries(
        {**{name: st.just(value) for name, value in path_parameters.items()}, **chosen}))


def error_body_conforms(ctx, response, case):
    """Every 4xx/5xx body is {statusCode, error, message, errorCode}, statusCode matching."""
    if response.status_code < 400:
        return None
    body = response.json()
    problems = [error.message for error in ERROR_VALIDATOR.iter_errors(body)]
    assert not problems, f"error body {body!r} does not match the Error schema: {problems}"
    assert body["statusCode"] == response.status_code, body
    return True


# The one-value parametrize gives each operation its own test id: pytest 9.2 builds an item's
# id from its `originalname`, which schemathesis 4.32.5 sets to the bare test name (so all 17
# items would share one id) unless the test also has a pytest parametrization.
@pytest.mark.parametrize("token", ["all-scopes"])
@schema.parametrize()
def test_api_conforms_to_its_document(case, fuzz, token):
    case.call_and_validate(headers=fuzz, additional_checks=[error_body_conforms])


def test_served_document_is_the_fuzzed_one(client):
    assert client.get("/api/v2/openapi.json").json == openapi.document()


def test_api_workflows(fuzz):
    """Stateful: sequences of calls along the links inferred from the document."""
    class Workflow(schema.as_state_machine()):
        def setup(self):
            # Each scenario starts from the same state, so that Hypothesis, replaying a
            # scenario, sees the same responses (else: FlakyStrategyDefinition).
            SEEDS[0].reset()

        def get_call_kwargs(self, case):
            return {"headers": fuzz}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            # headers=: the checks must know the token was sent explicitly (else ignored_auth
            # takes the generated Authorization header for the one that was accepted).
            case.validate_response(response, headers=fuzz, transport_kwargs=kwargs,
                                   additional_checks=[error_body_conforms])

    Workflow.run(settings=settings(max_examples=STATEFUL_EXAMPLES, stateful_step_count=10,
                                   deadline=None, database=None))


# --- Regression tests: one for each bug the fuzzer found. ---------------------------------------


@pytest.fixture
def doc(client):
    return client.get("/api/v2/openapi.json").json


@pytest.fixture
def headers(auth):
    return auth()


def assert_query_error(response, named: str) -> None:
    assert response.status_code == 400, response.json
    assert response.json["errorCode"] == "invalid_query_string"
    assert named in response.json["message"]


@pytest.mark.parametrize("page", ["17644862743478399926272", str(MAX_PAGE + 1), "9" * 5000])
def test_huge_page_is_400_not_a_database_overflow(client, headers, make_hook, page):
    # Was: 500 "Python int too large to convert to SQLite INTEGER".
    hook = make_hook()
    for url in (f"{HOOKS}?page={page}", f"{HOOKS}/{hook['id']}/executions?page={page}"):
        response = client.get(url, headers=headers)
        assert_query_error(response, f"page must be at least 0 and at most {MAX_PAGE}")
    assert client.get(f"{HOOKS}?page={MAX_PAGE}", headers=headers).json == []


@pytest.mark.parametrize("value", ["1_0", " 5", "5 ", "\u0663", "5.0", "0x5", "+", ""])
def test_integer_query_parameters_take_ascii_digits_only(client, headers, value):
    # Was: int() took "1_0", " 5" and Arabic-Indic digits; "" meant "not sent".
    assert_query_error(client.get(HOOKS, query_string={"per_page": value}, headers=headers),
                       "per_page must be an integer")


def test_include_fields_is_checked_even_without_fields(client, headers, make_hook):
    # Was: ignored (so any value was accepted) unless `fields` was sent too.
    hook = make_hook()
    for url in (f"{HOOKS}?include_fields=null", f"{HOOKS}/{hook['id']}?include_fields=maybe"):
        assert_query_error(client.get(url, headers=headers), "include_fields")


@pytest.mark.parametrize("query, named", [
    ("per_pgae=5", "'per_pgae'; this route accepts page, per_page"),
    ("include_fields=true&include_fields=null", "include_fields sent more than once"),
    ("page=0&page=1", "page sent more than once"),
])
def test_unknown_or_repeated_query_parameters_are_400(client, headers, query, named):
    # Was: an unknown parameter (a typo) was ignored, a repeated one read from its first value.
    assert_query_error(client.get(f"{HOOKS}?{query}", headers=headers), named)


def test_routes_without_query_parameters_refuse_them_too(client, headers, make_hook):
    hook = make_hook()
    for url in ("/api/v2/triggers?x=1", "/api/v2/openapi.json?x=1"):
        assert_query_error(client.get(url, headers=headers), "accepts no query parameters")
    response = client.delete(f"{HOOKS}/{hook['id']}?force=true", headers=headers)
    assert_query_error(response, "'force'")
    assert client.get(f"{HOOKS}/{hook['id']}", headers=headers).status_code == 200


@pytest.mark.parametrize("name", ["triggerId", "enabled", "include_totals", "page"])
def test_empty_query_values_are_400_not_ignored(client, headers, name):
    # Was: ?triggerId= (and the others) meant "not sent", though "" is none of the values.
    assert_query_error(client.get(f"{HOOKS}?{name}=", headers=headers), name)


def test_fields_take_spaces_around_names_and_the_document_says_which(client, headers, make_hook,
                                                                     doc):
    # Was: documented as any string, so the fuzzer's valid values got 400.
    hook = make_hook()
    url = f"{HOOKS}/{hook['id']}"
    pattern = doc["paths"]["/api/v2/hooks/{id}"]["get"]["parameters"][1]["schema"]["pattern"]
    for fields, status in [("id, name", 200), (" id,,name ", 200), ("", 200),
                           ("id,\tname", 400), ("id,secret", 400), ("ID", 400)]:
        response = client.get(url, query_string={"fields": fields}, headers=headers)
        assert response.status_code == status, (fields, response.json)
        assert bool(re.fullmatch(pattern, fields)) == (status == 200), fields
    assert client.get(url, query_string={"fields": "id, name"}, headers=headers).json == {
        "id": hook["id"], "name": hook["name"]}


def test_run_and_execute_document_415_and_413(client, headers, make_hook, doc):
    # Was: 415 (body not JSON) and 413 (too large) happened but were not documented.
    hook = make_hook()
    paths = doc["paths"]
    for path in ("/api/v2/hooks/{id}/run", "/api/v2/triggers/{trigger_id}/execute"):
        assert {"413", "415"} <= set(paths[path]["post"]["responses"])
    for url in (f"{HOOKS}/{hook['id']}/run", "/api/v2/triggers/send-phone-message/execute"):
        response = client.post(url, headers=headers)
        assert response.status_code == 415
        assert not list(ERROR_VALIDATOR.iter_errors(response.json))
    assert client.get("/api/v2/hooks/" + hook["id"] + "/executions", headers=headers).json == []


def test_execution_list_is_documented_in_both_shapes(client, headers, make_hook, doc):
    # Was: documented as an array only; include_totals=true returns {total, start, ...}.
    hook = make_hook()
    documented = doc["paths"]["/api/v2/hooks/{id}/executions"]["get"]["responses"]["200"]
    validator = Draft202012Validator(documented["content"]["application/json"]["schema"])
    for query in ("", "?include_totals=true"):
        response = client.get(f"{HOOKS}/{hook['id']}/executions{query}", headers=headers)
        assert response.status_code == 200
        assert not list(validator.iter_errors(response.json)), response.json


def test_log_stream_is_documented(doc):
    # Was: ?follow=true answered text/event-stream, documented as application/json only, and
    # its `after` parameter was not documented.
    logs = doc["paths"]["/api/v2/hooks/{id}/logs"]["get"]
    assert set(logs["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    assert {p["name"] for p in logs["parameters"]} == {"id", "follow", "after"}


def nested(depth: int, leaf: str = "1") -> str:
    return '{"a":' * depth + leaf + "}" * depth


def test_deeply_nested_bodies_are_400_and_change_nothing(client, headers, make_hook, engine,
                                                         sample_payload):
    # Was: 500. Past ~990 levels the JSON parser overflows Python's stack; from ~500 levels,
    # secret redaction of the payload does (after the body passed validation).
    hook = make_hook()
    client.post(f"{HOOKS}/{hook['id']}/secrets", json={"TOKEN": "s3cr3t"}, headers=headers)
    payload = sample_payload("send-phone-message")
    payload["context"]["user"] = "PLACEHOLDER"
    deep_payload = '{"payload": ' + json.dumps(payload).replace(
        '"PLACEHOLDER"', nested(600, '"s3cr3t"')) + "}"
    for url, method, body in [
        (HOOKS, "POST", "[" * 2000 + "]" * 2000),
        (f"{HOOKS}/{hook['id']}", "PATCH", nested(1500)),
        (f"{HOOKS}/{hook['id']}/run", "POST", deep_payload),
        ("/api/v2/triggers/send-phone-message/execute", "POST", nested(MAX_BODY_DEPTH + 1)),
    ]:
        response = client.open(url, method=method, data=body, headers=headers,
                               content_type="application/json")
        assert response.status_code == 400, (url, response.json)
        assert f"nested more than {MAX_BODY_DEPTH} levels" in response.json["message"]
    assert client.get(f"{HOOKS}/{hook['id']}", headers=headers).json == hook
    assert engine.executions.list({"hook_id": hook["id"]}, 0, 10) == (0, [])


def test_a_body_at_the_depth_limit_is_read(client, headers, make_hook):
    hook = make_hook()
    body = '{"TOKEN": ' + "[" * (MAX_BODY_DEPTH - 1) + "]" * (MAX_BODY_DEPTH - 1) + "}"
    response = client.post(f"{HOOKS}/{hook['id']}/secrets", data=body, headers=headers,
                           content_type="application/json")
    assert response.status_code == 400  # read and validated: a secret value is a string
    assert "is not of type 'string'" in response.json["message"]


def test_deeply_nested_hook_result_is_recorded(client, headers, make_hook, sample_payload):
    script = ("def send_phone_message(recipient, text, context):\n"
              "    result = 'x'\n"
              "    for _ in range(600):\n"
              "        result = [result]\n"
              "    return result\n")
    hook = make_hook(script=script)
    client.post(f"{HOOKS}/{hook['id']}/secrets", json={"TOKEN": "s3cr3t"}, headers=headers)
    response = client.post(f"{HOOKS}/{hook['id']}/run",
                           json={"payload": sample_payload("send-phone-message")},
                           headers=headers)
    executions = client.get(f"{HOOKS}/{hook['id']}/executions", headers=headers).json
    assert response.status_code == 200, response.json
    assert response.json["status"] == "error"
    assert "nests more than 64 levels" in response.json["error"]["message"]
    assert [e["status"] for e in executions] == ["error"]
