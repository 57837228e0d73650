"""The `hookengine` command: tokens, keys, local runs, push and logs against a live server."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet

from hookengine.cli import main
from hookengine.engine import Engine
from hookengine.config import load_settings
from serverprocess import ServerProcess

HOOK = '''# /// script
# [tool.hookengine]
# trigger = "send-phone-message"
# secrets = ["SENDER", "API_KEY"]
# ///
def send_phone_message(recipient, text, context):
    print("from", context.webtask.secrets.SENDER, "key", context.webtask.secrets.API_KEY)
    return {"MessageID": "local-" + context.code}
'''


@pytest.fixture
def cli(tmp_path):
    """cli(*args) -> click Result, with the data directory in tmp_path."""
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, [*args], env={"HOOKENGINE_DATA_DIR": str(tmp_path / "d")},
                             catch_exceptions=False)
    return invoke


def test_token_create_prints_the_token_and_nothing_else(cli, tmp_path):
    result = cli("token", "create", "--scope", "read:hooks")
    assert result.exit_code == 0
    token = result.output.strip()
    assert result.output == token + "\n" and token.startswith("he_")
    engine = Engine(load_settings({"DATA_DIR": str(tmp_path / "d")}, env_file=None))
    assert engine.tokens.scopes_of(token) == {"read:hooks"}
    assert token not in (tmp_path / "d" / "hookengine.sqlite3").read_bytes().decode("latin1")


def test_token_create_without_scope_grants_every_scope(cli, tmp_path):
    token = cli("token", "create").output.strip()
    engine = Engine(load_settings({"DATA_DIR": str(tmp_path / "d")}, env_file=None))
    assert len(engine.tokens.scopes_of(token)) == 5


def test_token_list_and_revoke(cli, tmp_path):
    token = cli("token", "create", "--description", "ci").output.strip()
    [line] = cli("token", "list").output.splitlines()
    token_id = line.split()[0]
    assert "active" in line and "ci" in line
    assert cli("token", "revoke", token_id).exit_code == 0
    assert "revoked" in cli("token", "list").output
    engine = Engine(load_settings({"DATA_DIR": str(tmp_path / "d")}, env_file=None))
    assert engine.tokens.scopes_of(token) is None
    assert cli("token", "revoke", token_id).exit_code == 1


def test_token_create_with_an_unknown_scope_is_a_usage_error(cli):
    result = CliRunner().invoke(main, ["token", "create", "--scope", "root"])
    assert result.exit_code == 2 and "not one of" in result.output


def test_key_generate_prints_a_fernet_key(cli):
    Fernet(cli("key", "generate").output.strip().encode())


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "hookengine.cli", *args],
                          capture_output=True, text=True, timeout=120, env=env)


def test_run_file_locally_in_the_sandbox(tmp_path):
    (tmp_path / "hook.py").write_text(HOOK)
    (tmp_path / "secrets.env").write_text("SENDER=acme\nAPI_KEY=sk-local-1\n")
    done = run_cli("run", str(tmp_path / "hook.py"), "--secrets", str(tmp_path / "secrets.env"),
                   "--payload", json.dumps({"recipient": "+15550001111", "text": "t",
                                            "context": {"message_type": "sms",
                                                        "action": "enrollment",
                                                        "language": "en", "code": "42",
                                                        "ip": "::1", "user_agent": "cli",
                                                        "user": {}}}))
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "success" and record["result"] == {"MessageID": "local-42"}
    assert record["logs"][0]["message"] == "from [secret:SENDER] key [secret:API_KEY]"
    assert "sk-local-1" not in done.stdout


def test_run_file_without_its_secrets_names_them(tmp_path):
    (tmp_path / "hook.py").write_text(HOOK)
    done = run_cli("run", str(tmp_path / "hook.py"))
    assert done.returncode == 1
    assert "SENDER, API_KEY" in done.stderr


def test_push_logs_and_run_by_id_against_a_live_server(tmp_path):
    server = ServerProcess(tmp_path / "data").start()
    try:
        hooks = tmp_path / "hooks"
        hooks.mkdir()
        (hooks / "my_sender.py").write_text(HOOK)
        (tmp_path / "one.env").write_text("SENDER=acme\n")
        env = {**server.env, "HOOKENGINE_URL": server.base, "HOOKENGINE_TOKEN": server.token}
        first = run_cli("push", str(hooks), "--secrets", str(tmp_path / "one.env"), env=env)
        assert first.returncode == 0, first.stderr
        assert "created my-sender" in first.stdout and "still missing: API_KEY" in first.stdout
        (tmp_path / "two.env").write_text("API_KEY=sk-2\n")
        second = run_cli("push", str(hooks), "--secrets", str(tmp_path / "two.env"), env=env)
        assert "updated my-sender" in second.stdout and "still missing" not in second.stdout
        [hook] = server.call("GET", "/hooks").json()
        # SENDER was not in the second env file and was kept, not clobbered:
        assert server.call("GET", f"/hooks/{hook['id']}/secrets").json() == {
            "API_KEY": "_VALUE_NOT_SHOWN_", "SENDER": "_VALUE_NOT_SHOWN_"}
        ran = run_cli("run", hook["id"], env=env)
        assert ran.returncode == 0, ran.stderr
        assert json.loads(ran.stdout)["result"] == {"MessageID": "local-999111"}
        logs = run_cli("logs", hook["id"], env=env)
        assert "stdout: from [secret:SENDER] key [secret:API_KEY]" in logs.stdout
        refused = run_cli("run", "01UNKNOWN", env=env)
        assert refused.returncode == 1 and "404 Hook not found." in refused.stderr
    finally:
        server.terminate()
