"""POST /api/v2/hooks/check: a save's rules applied to a script without saving it, each problem
with its line, columns and the check that found it."""

from __future__ import annotations

import pytest

# The store's own behaviour: the same on SQLite and on PostgreSQL.
pytestmark = pytest.mark.backends

CHECK = "/api/v2/hooks/check"
HOOKS = "/api/v2/hooks"
SMS = "def send_phone_message(recipient, text, context):\n    return {}\n"


def block(*lines: str) -> str:
    return "# /// script\n" + "".join(f"# {line}\n" for line in lines) + "# ///\n"


@pytest.fixture
def headers(auth):
    return auth()


def check(client, headers, **body) -> dict:
    response = client.post(CHECK, json=body, headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def test_a_script_that_would_save_has_no_problems(client, headers):
    assert check(client, headers, script=SMS, triggerId="send-phone-message") == {
        "problems": [], "triggerId": "send-phone-message",
        "declared": {"secrets": [], "optional_secrets": [], "dependencies": {}}}


def test_the_check_says_what_the_block_declares(client, headers):
    block = ('# /// script\n# dependencies = ["twilio==9.13.0"]\n# [tool.hookengine]\n'
             '# secrets = ["SID"]\n# optional_secrets = ["FROM"]\n# ///\n')
    assert check(client, headers, script=block + SMS)["declared"] == {
        "secrets": ["SID"], "optional_secrets": ["FROM"], "dependencies": {"twilio": "==9.13.0"}}


def test_a_nul_byte_is_refused_without_a_line_of_none(client, headers):
    script = "def send_phone_message(recipient, text, context):\n    return '\x00'\n"
    assert check(client, headers, script=script, triggerId="send-phone-message")["problems"] == [
        {"line": 1, "column": None, "end_column": None, "source": "compile",
         "message": "SyntaxError: source code string cannot contain null bytes"}]


def test_a_syntax_error_has_its_line_and_column(client, headers):
    script = "def send_phone_message(recipient, text, context):\n    return g(x\n"
    assert check(client, headers, script=script, triggerId="send-phone-message")["problems"] == [
        {"line": 2, "column": 13, "end_column": None, "source": "compile",
         "message": "Line 2: SyntaxError: '(' was never closed"}]


def test_a_forbidden_name_is_marked_where_it_is_written(client, headers):
    script = ("def send_phone_message(recipient, text, context):\n"
              "    _secret = context.webtask.secrets\n"
              "    return recipient.__class__, _secret\n")
    problems = check(client, headers, script=script)["problems"]
    assert [(p["line"], p["column"], p["end_column"]) for p in problems] == [
        (2, 5, 12), (3, 22, 31), (3, 33, 40)]
    assert problems[0] == {
        "line": 2, "column": 5, "end_column": 12, "source": "compile",
        "message": 'Line 2: "_secret" is an invalid variable name because it starts with "_"'}


def test_a_missing_entry_function_is_line_1(client, headers):
    script = "def other(recipient, text, context):\n    return {}\n"
    assert check(client, headers, script=script, triggerId="send-phone-message")["problems"] == [
        {"line": 1, "column": None, "end_column": None, "source": "compile",
         "message": "Line 1: the script must define a top-level function "
                    "send_phone_message(...)."}]


def test_without_a_trigger_the_script_says_which_or_why_not(client, headers):
    assert check(client, headers, script=SMS)["triggerId"] == "send-phone-message"
    result = check(client, headers, script="def other():\n    pass\n")
    assert result["triggerId"] is None
    assert [(p["line"], p["source"]) for p in result["problems"]] == [(1, "trigger")]
    assert result["problems"][0]["message"].startswith("defines no entry function at top level")
    several = check(client, headers, script=SMS + "def post_change_password(user, context):\n"
                                                  "    pass\n")
    assert several["problems"][0]["message"].endswith("; choose one with triggerId")


def test_a_script_that_does_not_parse_says_so_once(client, headers):
    """Without a triggerId the trigger cannot be told either; the syntax error is the one
    problem, as the compile reports it."""
    problems = check(client, headers, script="def f(:\n    pass\n")["problems"]
    assert [(p["line"], p["column"], p["source"]) for p in problems] == [(1, 7, "compile")]


def test_a_dependency_not_allowed_is_on_the_line_that_declares_it(client, headers):
    script = block("dependencies = [", '  "twilio>=9,<10",', '  "Left_Pad==1.0",', "]") + SMS
    assert check(client, headers, script=script)["problems"] == [
        {"line": 4, "column": None, "end_column": None, "source": "dependencies",
         "message": "package 'left-pad' is not allowed; hooks may use requests, twilio, vonage "
                    "(HOOKENGINE_ALLOWED_PACKAGES)"}]
    sent = check(client, headers, script=script, dependencies={"left-pad": "1.0"})["problems"]
    assert [(p["line"], p["source"]) for p in sent] == [(1, "dependencies")]


def test_a_trigger_mismatch_is_on_the_blocks_trigger_line(client, headers):
    script = block("[tool.hookengine]", 'trigger = "post-change-password"') + SMS
    result = check(client, headers, script=script, triggerId="send-phone-message")
    assert result["problems"] == [
        {"line": 3, "column": None, "end_column": None, "source": "trigger",
         "message": "the '# /// script' block declares trigger 'post-change-password' but the "
                    "hook's triggerId is 'send-phone-message'"}]
    # Without a triggerId the block's is taken, and the script lacks its entry function.
    result = check(client, headers, script=script)
    assert result["triggerId"] == "post-change-password"
    assert [(p["line"], p["source"]) for p in result["problems"]] == [(1, "compile")]


def test_block_problems_are_on_the_blocks_lines(client, headers):
    secrets = block("[tool.hookengine]", "secrets = [", '  "GOOD",', '  "bad name",', "]")
    script = "# a hook\n" + secrets + SMS
    problems = check(client, headers, script=script)["problems"]
    assert [(p["line"], p["source"]) for p in problems] == [(6, "metadata")]
    # A problem whose text names a line (the block's first) is on that line.
    broken = "# a hook\n" + block("dependencies = [") + SMS
    (problem,) = check(client, headers, script=broken)["problems"]
    assert (problem["line"], problem["source"]) == (2, "metadata")
    assert problem["message"].startswith("Line 2: the '# /// script' block is not valid TOML")


def test_an_unknown_trigger_in_the_block_is_a_problem(client, headers):
    script = block("[tool.hookengine]", 'trigger = "sms"') + SMS
    result = check(client, headers, script=script)
    assert result["triggerId"] is None
    assert [(p["line"], p["source"]) for p in result["problems"]] == [(3, "trigger")]
    assert result["problems"][0]["message"].startswith("unknown trigger 'sms'; triggers: ")


def test_a_script_over_the_size_limit_is_a_problem_not_a_413(client, headers, engine):
    limit = engine.settings["MAX_SCRIPT_BYTES"]
    script = SMS + "#" * limit + "\n"
    assert check(client, headers, script=script)["problems"] == [
        {"line": 1, "column": None, "end_column": None, "source": "compile",
         "message": f"The script is {len(script)} bytes; the limit is {limit}."}]
    too_big = {"script": "#" * engine.settings["MAX_BODY_BYTES"]}
    assert client.post(CHECK, json=too_big, headers=headers).status_code == 413


def test_an_unknown_trigger_id_is_refused_as_create_refuses_it(client, headers):
    checked = client.post(CHECK, json={"script": SMS, "triggerId": "post-login"},
                          headers=headers)
    created = client.post(HOOKS, json={"name": "x", "script": SMS, "triggerId": "post-login"},
                          headers=headers)
    assert checked.status_code == created.status_code == 400
    assert checked.json == created.json


@pytest.mark.parametrize("body", [{}, {"script": 1}, {"script": SMS, "name": "x"},
                                  {"script": SMS, "dependencies": ["twilio"]}])
def test_a_body_of_the_wrong_shape_is_400(client, headers, body):
    response = client.post(CHECK, json=body, headers=headers)
    assert response.status_code == 400
    assert response.json["errorCode"] == "invalid_body"


def test_checking_saves_nothing(client, headers, engine):
    check(client, headers, script=SMS, triggerId="send-phone-message")
    check(client, headers, script=block('dependencies = ["twilio"]') + SMS)
    check(client, headers, script="def f(:\n")
    assert client.get(HOOKS, headers=headers).json == []
    assert engine.store.query("SELECT COUNT(*) FROM hooks")[0][0] == 0


BAD_SCRIPTS = {
    "syntax error": "def send_phone_message(recipient, text context):\n    pass\n",
    "forbidden names": ("def send_phone_message(recipient, text, context):\n"
                        "    exec('print(1)')\n"
                        "    _private = 1\n"
                        "    return recipient.__class__\n"),
    "no entry function": "def other(recipient, text, context):\n    pass\n",
    "nested too deep": SMS + "x = " + "[" * 120 + "]" * 120 + "\n",
    "bad block": "# /// script\n# dependencies = [\n# ///\n" + SMS,
    "block of another trigger": block("[tool.hookengine]", 'trigger = "post-change-password"',
                                      'secrets = ["GOOD", "bad name"]') + SMS,
    "package not allowed": block('dependencies = ["left-pad", "twilio>=nine"]') + SMS,
    "everything": block('dependencies = ["left-pad"]', "[tool.hookengine]", "colour = 'red'")
    + "def other():\n    _x = 1\n",
}


@pytest.mark.parametrize("script", BAD_SCRIPTS.values(), ids=BAD_SCRIPTS.keys())
def test_problems_are_the_errors_a_create_lists(client, headers, script):
    """The check applies the save's rules: the same problems, in the same words."""
    created = client.post(HOOKS, json={"name": "x", "script": script,
                                       "triggerId": "send-phone-message"}, headers=headers)
    checked = check(client, headers, script=script, triggerId="send-phone-message")
    assert created.status_code == 400
    assert [p["message"] for p in checked["problems"]] == created.json["errors"]


def test_create_or_update_scope_is_enough(client, auth):
    body = {"script": SMS}
    assert client.post(CHECK, json=body).status_code == 401
    refused = client.post(CHECK, json=body, headers=auth("read:hooks", "execute:hooks"))
    assert refused.status_code == 403
    assert refused.json["message"] == \
        "Insufficient scope; expected any of: create:hooks, update:hooks."
    for scope in ("create:hooks", "update:hooks"):
        assert client.post(CHECK, json=body, headers=auth(scope)).status_code == 200


def test_other_methods_on_the_check_path_are_405(client, headers):
    """/hooks/check is not a hook's id: it answers POST alone."""
    response = client.get(CHECK, headers=headers)
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}
