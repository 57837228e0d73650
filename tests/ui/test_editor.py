"""The Hook editor in Chromium: code, problems on their line, draft runs, secrets, the live
tail, drafts that survive a reload, stale saves refused."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

SCRIPT = '''def post_user_registration(user, context):
    print("hello " + user["email"])
    return {"greeted": user["email"]}
'''


@pytest.fixture
def hook(signed_in):
    """A saved hook, and the editor open on it."""
    response = signed_in.server.call("POST", "/hooks", json={
        "name": f"greeter-{id(signed_in)}", "script": SCRIPT,
        "triggerId": "post-user-registration"})
    assert response.status_code == 201, response.text
    hook = response.json()
    signed_in.open(f"/ui/hooks/{hook['id']}")
    signed_in.find('#code[data-ready="true"]')
    return hook


def code_text(page, where: str = "#code") -> str:
    """The editor's text, line by line as CodeMirror shows it (short scripts are shown
    whole)."""
    return page.script(f"return [...document.querySelectorAll('{where} .cm-line')]"
                       ".map(line => line.textContent).join('\\n')") + "\n"


def test_the_editor_shows_the_saved_code(hook, signed_in):
    assert code_text(signed_in) == SCRIPT
    assert signed_in.find("#draft-state").text == "Saved"
