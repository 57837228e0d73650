"""Settings at start: unknown HOOKENGINE_* variables are named, malformed ones refused."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from hookengine.cli import main
from hookengine.config import load_settings, unknown_variables
from hookengine.errors import ConfigError
from hookengine.sandbox.egress import HOST_NAME
from serverprocess import ServerProcess, free_port

GOOD_EGRESS = ["api.example.com", "*.example.org", "Example-1.co_uk", "localhost",
               "203.0.113.0/24", "203.0.113.7", "2001:db8::/32"]
BAD_EGRESS = ["*", "bad host", "*example.com", "api.*.com", "exa?mple.com", "-lead.com",
              "trail-.com", "example.com.", "a..b", "x" * 64 + ".com", "https://api.x.com"]


def test_unknown_variables_are_named_with_the_closest_setting():
    warnings = unknown_variables(env_file=None, environ={
        "HOOKENGINE_TIMEOUT_SECOND": "5", "HOOKENGINE_ZZZ": "1", "HOOKENGINE_CPU_SECONDS": "3",
        "HOOKENGINE_URL": "http://x", "HOOKENGINE_TOKEN": "t", "OTHER": "1"})
    assert warnings == [
        "HOOKENGINE_TIMEOUT_SECOND in the environment is not a setting (did you mean "
        "HOOKENGINE_TIMEOUT_SECONDS?); it is ignored",
        "HOOKENGINE_ZZZ in the environment is not a setting; it is ignored"]


def test_unknown_variables_in_the_env_file_are_named_too(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("HOOKENGINE_EGRES_ALLOW=api.example.com\n")
    assert unknown_variables(env_file=env_file, environ={}) == [
        f"HOOKENGINE_EGRES_ALLOW in {env_file} is not a setting (did you mean "
        "HOOKENGINE_EGRESS_ALLOW?); it is ignored"]


def test_well_formed_egress_entries_load_as_given():
    settings = load_settings({"EGRESS_ALLOW": ",".join(GOOD_EGRESS)}, env_file=None, environ={})
    assert settings["EGRESS_ALLOW"] == GOOD_EGRESS


@pytest.mark.parametrize("host", [h for h in GOOD_EGRESS if "/" not in h and ":" not in h])
def test_every_egress_host_the_settings_take_is_one_the_guard_can_match(host):
    assert HOST_NAME.fullmatch(host.removeprefix("*."))


def test_malformed_egress_entries_are_a_config_error_naming_each():
    with pytest.raises(ConfigError) as raised:
        load_settings({"EGRESS_ALLOW": ",".join(["ok.example.com", *BAD_EGRESS])},
                      env_file=None, environ={})
    message = raised.value.message
    assert message.startswith("HOOKENGINE_EGRESS_ALLOW entries ")
    assert all(repr(entry) in message for entry in BAD_EGRESS)
    assert "'ok.example.com'" not in message


def test_serve_with_a_malformed_setting_refuses_to_start_in_one_line(tmp_path):
    env = {**os.environ, "HOOKENGINE_DATA_DIR": str(tmp_path / "data"),
           "HOOKENGINE_EGRESS_ALLOW": "api.example.com,bad host"}
    done = subprocess.run([sys.executable, "-m", "hookengine.cli", "serve", "--port",
                           str(free_port())], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "Error: HOOKENGINE_EGRESS_ALLOW entries 'bad host' are not a host name, a *.domain "
        "wildcard or an address/CIDR, e.g. api.example.com,*.example.org,203.0.113.0/24"]
    assert not (tmp_path / "data").exists()  # refused before anything was touched


@pytest.mark.parametrize("args", [["token", "create"], ["token", "list"]])
def test_other_commands_print_a_config_error_in_one_line(tmp_path, args):
    result = CliRunner().invoke(main, args, env={"HOOKENGINE_DATA_DIR": str(tmp_path / "d"),
                                                 "HOOKENGINE_MEMORY_MB": "lots"})
    assert result.exit_code == 1
    assert result.output == ("Error: HOOKENGINE_MEMORY_MB has value 'lots'. "
                             "Not a valid int.\n")


def test_serve_warns_about_unknown_variables_and_starts(tmp_path):
    server = ServerProcess(tmp_path / "data", TIMEOUT_SECOND=5).start()
    try:
        assert ("warning: HOOKENGINE_TIMEOUT_SECOND in the environment is not a setting "
                "(did you mean HOOKENGINE_TIMEOUT_SECONDS?); it is ignored") in server.log()
        assert server.call("GET", "/hooks").status_code == 200
    finally:
        server.terminate()
