"""The `hookengine` command: tokens, keys, local runs, and push, logs and hook management
against a live server. Every error a user can cause is one line on stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet

from hookengine.auth import SCOPES
from hookengine.cli import main
from hookengine.engine import Engine
from hookengine.config import load_settings
from serverprocess import ServerProcess, free_port, hookengine

ROOT = Path(__file__).resolve().parent.parent

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
    token = result.stdout.strip()
    assert result.stdout == token + "\n" and token.startswith("he_")
    engine = Engine(load_settings({"DATA_DIR": str(tmp_path / "d")}, env_file=None))
    assert engine.tokens.scopes_of(token) == {"read:hooks"}
    assert token not in (tmp_path / "d" / "hookengine.sqlite3").read_bytes().decode("latin1")


def test_token_create_names_its_data_directory_and_warns_when_it_made_it(cli, tmp_path):
    first = cli("token", "create")
    directory = (tmp_path / "d").resolve()
    assert first.stderr.splitlines()[-2:] == [
        f"token stored in {directory}",
        f"warning: {directory} did not exist and was just created; a server with another data "
        "directory will refuse this token"]
    second = cli("token", "create")
    assert second.stderr == f"token stored in {directory}\n"


def test_version_comes_from_the_package_metadata(cli):
    from importlib.metadata import version

    assert cli("--version").stdout == f"hookengine, version {version('hookengine')}\n"


def test_token_create_without_scope_grants_every_scope(cli, tmp_path):
    token = cli("token", "create").stdout.strip()
    engine = Engine(load_settings({"DATA_DIR": str(tmp_path / "d")}, env_file=None))
    assert engine.tokens.scopes_of(token) == set(SCOPES)


def test_token_list_and_revoke(cli, tmp_path):
    token = cli("token", "create", "--description", "ci").stdout.strip()
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


def one_line_error(done: subprocess.CompletedProcess) -> str:
    """The error a failed command printed, asserted to be one line and the only one."""
    assert done.returncode != 0, done.stdout
    assert done.stderr.startswith("Error: ") and done.stderr.count("\n") == 1, done.stderr
    return done.stderr


def test_run_file_without_a_block_takes_the_trigger_of_its_entry_function(tmp_path):
    (tmp_path / "welcome.py").write_text("def post_user_registration(user, context):\n"
                                         "    print('welcome', user['email'])\n")
    done = run_cli("run", str(tmp_path / "welcome.py"))
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["trigger_id"] == "post-user-registration" and record["status"] == "success"


def test_run_file_with_several_entry_functions_takes_trigger(tmp_path):
    (tmp_path / "two.py").write_text(
        "def post_user_registration(user, context):\n    return None\n"
        "def send_phone_message(recipient, text, context):\n    return {'MessageID': 'x'}\n")
    assert "choose one with --trigger" in one_line_error(run_cli("run", str(tmp_path / "two.py")))
    done = run_cli("run", str(tmp_path / "two.py"), "--trigger", "send-phone-message")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"] == {"MessageID": "x"}


@pytest.fixture
def server(tmp_path):
    server = ServerProcess(tmp_path / "data").start()
    yield server
    server.terminate()


@pytest.fixture
def env(server):
    """The environment of a CLI command talking to `server`."""
    return {**server.env, "HOOKENGINE_URL": server.base, "HOOKENGINE_TOKEN": server.token}


@pytest.fixture
def hooks_dir(tmp_path):
    (tmp_path / "hooks").mkdir()
    return tmp_path / "hooks"


def test_each_cli_error_is_one_line_on_stderr(tmp_path, env):
    (tmp_path / "hook.py").write_text(HOOK)
    (tmp_path / "nothing.py").write_text("def main():\n    pass\n")
    reader = hookengine("token", "create", "--scope", "read:hooks", env=env).strip()
    gone = {**env, "HOOKENGINE_URL": f"http://127.0.0.1:{free_port()}"}
    cases = {
        "missing payload file": (["run", str(tmp_path / "hook.py"), "--payload", "@nope.json"],
                                 env, "cannot read nope.json: No such file or directory"),
        "payload not JSON": (["run", "x", "--payload", "{"], env, "not JSON"),
        "bad setting": (["token", "list"], {**env, "HOOKENGINE_TIMEOUT_SECONDS": "soon"},
                        "HOOKENGINE_TIMEOUT_SECONDS has value 'soon'. Not a valid number."),
        "server gone": (["list"], gone, f"cannot reach the engine at {gone['HOOKENGINE_URL']}; "
                        "is `hookengine serve` running?"),
        "no token": (["list"], {**env, "HOOKENGINE_TOKEN": ""}, "an API token is needed"),
        "bad token": (["list"], {**env, "HOOKENGINE_TOKEN": "he_wrong"},
                      "Check --token or HOOKENGINE_TOKEN"),
        "unknown hook": (["run", "01UNKNOWN"], env, "no hook has the id or name '01UNKNOWN'; "
                         "`hookengine list` shows them"),
        "unknown hook to show": (["show", "nope"], env, "no hook has the id or name 'nope'"),
        "API refusal": (["push", str(tmp_path / "hook.py")],
                        {**env, "HOOKENGINE_TOKEN": reader}, "1 of the files could not be pushed"),
        "mistyped hook file": (["run", "hooks/twillio_sms.py"], env,
                               "hooks/twillio_sms.py: no such hook file"),
        "secrets of a stored hook": (["run", "some-hook", "--secrets", "x.env"], env,
                                     "--secrets is for hook files"),
        "no entry function": (["run", str(tmp_path / "nothing.py")], env,
                              "defines no entry function at top level; a hook defines one of "
                              "send_phone_message, credentials_exchange"),
        "missing secrets": (["run", str(tmp_path / "hook.py")], env, "SENDER, API_KEY"),
        "missing env file": (["push", str(tmp_path / "hook.py"), "--secrets", "nope.env"], env,
                             "nope.env: no such env file"),
        "missing path to push": (["push", "nope/"], env, "'nope/' does not exist"),
        "missing argument": (["run"], env, "Missing argument 'TARGET'. (see 'hookengine run "
                             "--help')"),
        "unknown command": (["lsit"], env, "No such command 'lsit'"),
        "empty secret value": (["secrets", "set", "x", "A="], env, "A has no value"),
    }
    for case, (args, case_env, expected) in cases.items():
        done = run_cli(*args, env=case_env)
        assert expected in one_line_error(done), case


def test_run_hook_by_name_and_logs_by_name(hooks_dir, tmp_path, env):
    (hooks_dir / "my_sender.py").write_text(HOOK)
    (tmp_path / "all.env").write_text("SENDER=acme\nAPI_KEY=sk-2\n")
    assert run_cli("push", str(hooks_dir), "--secrets", str(tmp_path / "all.env"),
                   env=env).returncode == 0
    ran = run_cli("run", "my-sender", env=env)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["result"] == {"MessageID": "local-999111"}
    logs = run_cli("logs", "my-sender", env=env)
    assert "stdout: from [secret:SENDER] key [secret:API_KEY]" in logs.stdout


def test_push_reports_created_updated_unchanged_and_failed(hooks_dir, tmp_path, env, server):
    (hooks_dir / "my_sender.py").write_text(HOOK)
    (hooks_dir / "broken.py").write_text(HOOK.replace("return {", "return {{"))
    (tmp_path / "one.env").write_text("SENDER=acme\nAPI_KEY=\n")
    first = run_cli("push", str(hooks_dir), "--secrets", str(tmp_path / "one.env"), env=env)
    assert first.stdout.splitlines()[0].startswith("failed broken (")
    assert "SyntaxError" in first.stdout.splitlines()[0]
    assert first.stdout.splitlines()[1].startswith("created my-sender (")
    assert first.stdout.splitlines()[2] == (
        f"  secrets set: SENDER; not set: API_KEY (empty in {tmp_path / 'one.env'}); "
        "still missing: API_KEY")
    assert "1 of the files could not be pushed" in one_line_error(first)

    (tmp_path / "two.env").write_text("API_KEY=sk-2\n")
    second = run_cli("push", str(hooks_dir / "my_sender.py"), "--secrets",
                     str(tmp_path / "two.env"), env=env)
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[:2] == [
        f"unchanged my-sender ({hook_id(server, 'my-sender')})", "  secrets set: API_KEY"]
    # SENDER was not in the second env file and was kept, not clobbered:
    assert server.call("GET", f"/hooks/{hook_id(server, 'my-sender')}/secrets").json() == {
        "API_KEY": "_VALUE_NOT_SHOWN_", "SENDER": "_VALUE_NOT_SHOWN_"}

    (hooks_dir / "my_sender.py").write_text(HOOK + "# changed\n")
    third = run_cli("push", str(hooks_dir / "my_sender.py"), env=env)
    assert third.stdout.splitlines()[0] == f"updated my-sender ({hook_id(server, 'my-sender')})"


def hook_id(server, name: str) -> str:
    [hook] = [h for h in server.call("GET", "/hooks").json() if h["name"] == name]
    return hook["id"]


def enabled_hooks(server) -> dict[str, str]:
    return {h["triggerId"]: h["name"] for h in server.call("GET", "/hooks?enabled=true").json()}


def test_push_of_the_samples_enables_twilio_sms(env, server):
    done = run_cli("push", str(ROOT / "hooks"), env=env)
    assert done.returncode == 0, done.stderr
    assert "send-phone-message: enabled hook is twilio-sms" in done.stdout.splitlines()
    assert enabled_hooks(server)["send-phone-message"] == "twilio-sms"


def sender(name: str, enabled: str | None = None) -> str:
    line = f"# enabled = {enabled}\n" if enabled else ""
    return (f'# /// script\n# [tool.hookengine]\n# trigger = "send-phone-message"\n{line}# ///\n'
            f"def send_phone_message(recipient, text, context):\n    return {{'n': '{name}'}}\n")


def test_push_changes_the_enabled_hook_only_where_a_file_says_so(hooks_dir, env, server):
    (hooks_dir / "a.py").write_text(sender("a"))
    (hooks_dir / "b.py").write_text(sender("b"))
    first = run_cli("push", str(hooks_dir), env=env)
    # The server enabled the first hook of the trigger; nothing asked for another.
    assert "created a (" in first.stdout and "enabled as the first hook" in first.stdout
    assert enabled_hooks(server) == {"send-phone-message": "a"}

    assert run_cli("enable", "b", env=env).stdout == \
        "enabled b for send-phone-message; a is disabled now\n"
    (hooks_dir / "c.py").write_text(sender("c"))
    (hooks_dir / "a.py").write_text(sender("a") + "# changed\n")
    run_cli("push", str(hooks_dir), env=env)
    assert enabled_hooks(server) == {"send-phone-message": "b"}  # an operator's choice stays

    (hooks_dir / "c.py").write_text(sender("c", "true"))
    third = run_cli("push", str(hooks_dir), env=env)
    assert "enabled c (enabled = true in c.py)" in third.stdout
    assert third.stdout.splitlines()[-1] == "send-phone-message: enabled hook is c"

    (hooks_dir / "c.py").write_text(sender("c", "false"))
    fourth = run_cli("push", str(hooks_dir / "c.py"), env=env)
    assert fourth.stdout.splitlines()[-2:] == [
        "disabled c (enabled = false in c.py)",
        "send-phone-message: enabled hook is none (enable one with `hookengine enable`)"]


def test_a_new_hook_saying_enabled_false_is_never_enabled(hooks_dir, env, server):
    (hooks_dir / "quiet.py").write_text(sender("quiet", "false"))
    done = run_cli("push", str(hooks_dir / "quiet.py"), env=env)
    assert done.returncode == 0 and "enabled as the first" not in done.stdout
    assert enabled_hooks(server) == {}


def test_two_files_enabling_one_trigger_enable_neither(hooks_dir, env, server):
    (hooks_dir / "a.py").write_text(sender("a"))
    run_cli("push", str(hooks_dir / "a.py"), env=env)
    (hooks_dir / "b.py").write_text(sender("b", "true"))
    (hooks_dir / "c.py").write_text(sender("c", "true"))
    done = run_cli("push", str(hooks_dir / "b.py"), str(hooks_dir / "c.py"), env=env)
    assert f"{hooks_dir / 'b.py'}, {hooks_dir / 'c.py'} each say enabled = true" in done.stdout
    assert done.returncode == 1
    assert enabled_hooks(server) == {"send-phone-message": "a"}


def test_manage_hooks_and_their_secrets(hooks_dir, tmp_path, env, server):
    (hooks_dir / "my_sender.py").write_text(HOOK)
    run_cli("push", str(hooks_dir), env=env)
    my_id = hook_id(server, "my-sender")

    listed = run_cli("list", env=env).stdout
    assert listed.split() == [my_id, "enabled", "send-phone-message", "my-sender"]
    shown = run_cli("show", my_id, env=env).stdout
    assert "name:         my-sender\n" in shown and shown.endswith(HOOK)

    (tmp_path / "s.env").write_text("SENDER=acme\nAPI_KEY=\n")
    done = run_cli("secrets", "set", "my-sender", "--from", str(tmp_path / "s.env"), "EXTRA=1",
                   env=env)
    assert done.stdout == (f"set on my-sender: EXTRA, SENDER; not set: API_KEY (empty in "
                           f"{tmp_path / 's.env'}); the script does not declare EXTRA\n")
    run_cli("secrets", "set", "my-sender", "SENDER=other", "API_KEY=sk-3", env=env)
    assert run_cli("secrets", "list", "my-sender", env=env).stdout == "API_KEY\nEXTRA\nSENDER\n"
    assert run_cli("secrets", "delete", "my-sender", "EXTRA", env=env).returncode == 0
    assert run_cli("secrets", "list", my_id, env=env).stdout == "API_KEY\nSENDER\n"
    ran = json.loads(run_cli("run", "my-sender", env=env).stdout)
    assert ran["logs"][0]["message"] == "from [secret:SENDER] key [secret:API_KEY]"

    assert run_cli("disable", "my-sender", env=env).stdout == (
        "disabled my-sender; no hook is enabled for send-phone-message now\n")
    assert run_cli("enable", "my-sender", env=env).stdout == (
        "enabled my-sender for send-phone-message\n")
    refused = subprocess.run([sys.executable, "-m", "hookengine.cli", "delete", "my-sender"],
                             input="n\n", capture_output=True, text=True, env=env, timeout=60)
    assert refused.returncode == 1 and hook_id(server, "my-sender") == my_id
    assert run_cli("delete", "my-sender", "--yes", env=env).stdout == \
        f"deleted my-sender ({my_id})\n"
    assert server.call("GET", "/hooks").json() == []
