"""A hook file's declarations: optional secrets, `enabled`, and the trigger a file is for."""

from __future__ import annotations

import pytest

from hookengine.errors import BadRequest, ValidationError
from hookengine.scripts import missing_secrets, parse_metadata, trigger_of

SMS = "def send_phone_message(recipient, text, context):\n    return {}\n"
LOGIN = "def post_user_registration(user, context):\n    return None\n"


def block(*lines: str) -> str:
    return "# /// script\n# [tool.hookengine]\n" + "".join(f"# {l}\n" for l in lines) + "# ///\n"


def test_optional_secrets_and_enabled_are_read_from_the_block():
    metadata, problems = parse_metadata(block('secrets = ["A"]', 'optional_secrets = ["B", "C"]',
                                              "enabled = true") + SMS)
    assert problems == []
    assert (metadata.secrets, metadata.optional_secrets) == (["A"], ["B", "C"])
    assert metadata.all_secrets() == ["A", "B", "C"] and metadata.enabled is True


def test_enabled_is_none_when_the_file_does_not_say():
    assert parse_metadata(block('trigger = "send-phone-message"') + SMS)[0].enabled is None


@pytest.mark.parametrize("line, problem", [
    ('enabled = "yes"', "enabled must be true or false"),
    ("optional_secrets = 'B'", "optional_secrets must be a list of names"),
    ('secrets = ["B"]\n# optional_secrets = ["B"]', "declares 'B' in both"),
    ("enable = true", "unknown key 'enable'"),
])
def test_bad_declarations_are_problems(line, problem):
    _, problems = parse_metadata(block(line) + SMS)
    assert len(problems) == 1 and problem in problems[0]


def test_optional_secrets_are_never_missing():
    script = block('secrets = ["A"]', 'optional_secrets = ["B"]') + SMS
    assert missing_secrets(script, {}) == ["A"]
    assert missing_secrets(script, {"A": "x"}) == []


def test_an_optional_secret_name_is_checked_like_a_secret_name(engine):
    with pytest.raises(ValidationError, match="'1B', which is not a valid secret name"):
        engine.hooks.validate_script(block('optional_secrets = ["1B"]') + SMS,
                                     "send-phone-message")


@pytest.mark.parametrize("script, expected", [
    (SMS, "send-phone-message"),
    (LOGIN, "post-user-registration"),
    # Only top-level definitions count: a nested or a method of that name is not an entry point.
    ("class A:\n    def send_phone_message(self): pass\n" + LOGIN, "post-user-registration"),
])
def test_the_trigger_follows_from_the_entry_function(script, expected):
    assert trigger_of(script, parse_metadata(script)[0]) == expected


def test_the_block_wins_over_the_entry_function_and_the_choice_over_both():
    script = block('trigger = "send-phone-message"') + SMS + LOGIN
    assert trigger_of(script, parse_metadata(script)[0]) == "send-phone-message"
    assert trigger_of(SMS + LOGIN, parse_metadata(SMS)[0], "post-user-registration") == \
        "post-user-registration"


def test_several_entry_functions_ask_for_a_choice():
    with pytest.raises(BadRequest, match="send_phone_message: send-phone-message, "
                       "post_user_registration: post-user-registration.*--trigger"):
        trigger_of(SMS + LOGIN, parse_metadata(SMS)[0])


def test_no_entry_function_lists_them_all():
    with pytest.raises(BadRequest) as raised:
        trigger_of("def main():\n    pass\n", parse_metadata("")[0])
    assert "defines no entry function" in raised.value.message
    assert "send_phone_message, credentials_exchange, pre_user_registration" in raised.value.message


def test_an_unknown_trigger_is_refused_with_the_list():
    with pytest.raises(BadRequest, match="unknown trigger 'sms'; triggers: send-phone-message"):
        trigger_of(SMS, parse_metadata(block('trigger = "sms"'))[0])


def test_an_unset_optional_secret_is_absent_from_the_hooks_secrets(client, auth, make_hook):
    script = block('secrets = ["A"]', 'optional_secrets = ["B", "C"]') + (
        "def send_phone_message(recipient, text, context):\n"
        "    return {'names': sorted(context.webtask.secrets),\n"
        "            'b': context.webtask.secrets.get('B', 'absent')}\n")
    hook = make_hook(script=script)
    headers = auth()
    assert client.post(f"/api/v2/hooks/{hook['id']}/secrets", json={"A": "1", "C": "3"},
                       headers=headers).status_code == 201
    record = client.post(f"/api/v2/hooks/{hook['id']}/run", json={}, headers=headers).json
    assert record["status"] == "success", record
    assert record["result"] == {"names": ["A", "C"], "b": "absent"}
