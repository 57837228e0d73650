"""Signing in and out of the web editor, in Chromium."""

from selenium.webdriver.common.by import By


def test_sign_in_shows_the_hooks_and_sign_out_ends_the_session(page):
    page.open("/ui/")
    assert "/ui/sign-in" in page.driver.current_url  # no session: the sign-in page
    page.sign_in(page.server.token)
    page.find("#hooks")
    cookie = page.driver.get_cookie("hookengine_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert "hookengine_session" not in page.script("return document.cookie")
    page.button("Sign out").click()
    page.wait_text("p.problem", "Signed out")
    page.open("/ui/")
    assert "/ui/sign-in" in page.driver.current_url


def test_a_wrong_token_is_refused_with_a_reason(page):
    page.open("/ui/sign-in")
    page.field("API token").send_keys("he_not-a-token")
    page.button("Sign in").click()
    assert "unknown or revoked" in page.find("p.problem").text
    assert not page.driver.find_elements(By.CSS_SELECTOR, "#hooks")
    page.console()  # the refused sign-in's 401 is the one error this page should log
