"""The editor's defences, in Chromium: another site's page cannot make changes with the
session cookie, and a one-time link signs in once."""

from __future__ import annotations

import subprocess
import sys

import pytest
from loopback import LoopbackServer, QuietHandler


@pytest.fixture
def other_site(signed_in):
    """A page on another origin (another port: the same site, so SameSite=Strict still
    sends the cookie and only the engine's Origin check stands) that posts to the engine."""
    target = f"{signed_in.server.api}/hooks"

    class Attacker(QuietHandler):
        def do_GET(self):
            page = (f'<form id="f" method="post" action="{target}" enctype="text/plain">'
                    '<input name=\'{"name": "planted", "triggerId": "post-user-registration", '
                    '"script": "x", "y": "\' value=\'"}\'></form>').encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page)

    server = LoopbackServer(Attacker)
    yield server.url
    server.close()


def test_another_sites_form_cannot_change_anything(signed_in, other_site):
    signed_in.driver.get(other_site)
    signed_in.script("document.getElementById('f').submit()")
    answer = signed_in.wait_text("body", "cross_site_request")
    assert "Cross-site request refused" in answer.text
    assert signed_in.server.call("GET", "/hooks").json() == []
    signed_in.console()  # the refused POST's 403 is expected here


def test_hookengine_ui_prints_a_link_that_signs_in_once(page):
    link = subprocess.run([sys.executable, "-m", "hookengine.cli", "ui", "--url",
                           page.server.base], env=page.server.env, capture_output=True,
                          text=True, timeout=60, check=True).stdout.strip()
    page.driver.get(link)
    page.find("#hooks")
    page.driver.delete_all_cookies()
    page.driver.get(link)  # used up
    assert "used up or expired" in page.find("p.problem").text
    page.console()  # the used-up link's 401
