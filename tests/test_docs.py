"""The README documents every setting, and its two opening commands are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hookengine.config import PREFIX, SETTINGS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_every_setting_is_in_the_readme_table(setting):
    row = re.search(rf"^\| `{PREFIX}{setting.name}` \| ([^|]*) \|", README, re.M)
    assert row, f"README settings table has no row for {PREFIX}{setting.name}"
    default = str(setting.default).lower() if not isinstance(setting.default, float) \
        else f"{setting.default:g}"
    assert default in row.group(1).lower() or (setting.default == "" and "empty" in row.group(1))


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"```sh\n(.*?)\n```", README, re.S)
    assert "hookengine serve" in commands[0]
    assert "pytest" in commands[1]
    assert commands[1] in (ROOT / ".ci" / "run").read_text()
