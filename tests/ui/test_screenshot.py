"""The README's picture of the editor, taken here: a hook with a mistake marked on its line
and a draft's run answered. `HOOKENGINE_SCREENSHOT=docs/editor.png pytest tests/ui -k
screenshot` writes it; otherwise it goes to the test's temporary directory."""

from __future__ import annotations

import os
from pathlib import Path

from test_editor import set_code

HOOKS = Path(__file__).resolve().parents[2] / "hooks"


def test_screenshot_of_the_editor(signed_in, tmp_path):
    script = (HOOKS / "post_user_registration.py").read_text()
    hook = signed_in.server.call("POST", "/hooks", json={
        "name": "welcome", "script": script, "triggerId": "post-user-registration"}).json()
    signed_in.open(f"/ui/hooks/{hook['id']}")
    signed_in.find('#code[data-ready="true"]')
    signed_in.button("Run").click()
    signed_in.wait_text("#answer-status", "success")
    set_code(signed_in, script.replace('    return {"notified": True}',
                                       '    return {"notified": True, "by": _helper}'))
    signed_in.wait_text("#problems-count", "1 problem")
    target = Path(os.environ.get("HOOKENGINE_SCREENSHOT") or tmp_path / "editor.png")
    signed_in.driver.set_window_size(1280, 900)
    assert signed_in.driver.save_screenshot(str(target))
    assert target.stat().st_size > 20_000  # a page, not a blank
