"""Admin pages in a real browser, as El Alto's admin (who enrols MFA once, at the first
sign-in of this module): create a user who then signs in, unlock an account locked by five
failed sign-ins, reset the MFA of a user who lost their device, toggle a feature flag, and read
which rule pack version decision support uses.

The server is shared by every e2e test, so each test creates its own users (unique emails) and
puts a flag back the way it found it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pyotp
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.conftest import CLINICS, Console

STRONG = "Granite-Meadow-Falcon-73"
CLINIC = CLINICS[0]  # el-alto: the sign-in tests enrol santa-cruz's admin


@pytest.fixture(scope="module")
def admin_context(browser: Browser, console: Console) -> Iterator[BrowserContext]:
    """El Alto's admin, signed in once with MFA enrolled (each TOTP step works only once, so
    the module keeps this one session rather than signing in again per test)."""
    ctx = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(15_000)
    page = ctx.new_page()
    page.goto(console.url("/console/sign-in"))
    page.get_by_label("Email").fill(console.email("admin", CLINIC))
    page.get_by_label("Password").fill(console.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/mfa/enrol")
    secret = page.locator("code.secret").inner_text().strip()
    page.get_by_label("Code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on").click()
    expect(page.locator("ul.codes li")).to_have_count(10)
    page.close()
    yield ctx
    ctx.close()


@pytest.fixture
def admin(admin_context: BrowserContext) -> Iterator[Page]:
    page = admin_context.new_page()
    yield page
    page.close()


def sign_in_as(page: Page, console: Console, email: str, password: str = STRONG) -> None:
    page.goto(console.url("/console/sign-in"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def users_count(admin: Page) -> int:
    caption = admin.locator("table caption").inner_text()
    found = re.match(r"(\d+) users? in this clinic", caption)
    assert found, caption
    return int(found.group(1))


def create_user(admin: Page, console: Console, role_label: str, name: str) -> str:
    """Create a user through the form; returns the email. Leaves the admin on its page."""
    email = f"{name.lower().replace(' ', '.')}.{uuid.uuid4().hex[:8]}@{CLINIC}.example.com"
    admin.goto(console.url("/console/admin/users/new"))
    admin.get_by_label("Email").fill(email)
    admin.get_by_label("Display name").fill(name)
    admin.get_by_label(role_label, exact=True).check()
    admin.get_by_label("Initial password").fill(STRONG)
    admin.get_by_role("button", name="Create user").click()
    expect(admin.get_by_role("status")).to_contain_text("User created")
    return email


def test_admin_creates_a_user_who_then_signs_in(
    admin: Page, browser: Browser, console: Console
) -> None:
    admin.goto(console.url("/console/home"))
    admin.get_by_role("navigation", name="Main").get_by_role("link", name="Admin").click()
    admin.get_by_role("link", name="Users and roles").first.click()
    expect(admin.get_by_role("heading", level=1)).to_have_text("Users and roles")
    before = users_count(admin)
    admin.get_by_role("link", name="New user").click()
    email = f"farmacia.{uuid.uuid4().hex[:8]}@{CLINIC}.example.com"
    admin.get_by_label("Email").fill(email)
    admin.get_by_label("Display name").fill("Rosa Mamani")
    admin.get_by_label("Pharmacist", exact=True).check()
    # A weak password is refused beside its field; what was typed (but the password) is kept.
    admin.get_by_label("Initial password").fill("password")
    admin.get_by_role("button", name="Create user").click()
    expect(admin.locator("#f-password-error")).to_contain_text("commonly used")
    expect(admin.get_by_label("Email")).to_have_value(email)
    expect(admin.get_by_label("Pharmacist", exact=True)).to_be_checked()
    expect(admin.get_by_label("Initial password")).to_have_value("")
    admin.get_by_label("Initial password").fill(STRONG)
    admin.get_by_role("button", name="Create user").click()
    expect(admin.get_by_role("status")).to_contain_text("User created")
    expect(admin.get_by_role("heading", level=1)).to_have_text("Rosa Mamani")
    expect(admin.locator("main ul li").filter(has_text="Pharmacist")).to_have_count(1)
    admin.goto(console.url("/console/admin/users"))
    assert users_count(admin) == before + 1
    row = admin.get_by_role("row").filter(has_text=email)
    expect(row).to_contain_text("Pharmacist")
    expect(row).to_contain_text("Active")
    expect(row).to_contain_text("MFA off")
    # The same email twice is refused beside the email field.
    admin.goto(console.url("/console/admin/users/new"))
    admin.get_by_label("Email").fill(email)
    admin.get_by_label("Display name").fill("Otra Rosa")
    admin.get_by_label("Nurse", exact=True).check()
    admin.get_by_label("Initial password").fill(STRONG)
    admin.get_by_role("button", name="Create user").click()
    expect(admin.locator("#f-email-error")).to_contain_text("already exists")

    ctx = browser.new_context(locale="en-US")
    try:
        user = ctx.new_page()
        sign_in_as(user, console, email)
        user.wait_for_url("**/console/home")
        expect(user.get_by_role("heading", level=1)).to_have_text("Start")
        nav = user.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link", name="Sign-off queue")).to_be_visible()  # pharmacist
    finally:
        ctx.close()


def test_admin_unlocks_an_account_locked_by_failed_sign_ins(
    admin: Page, context: BrowserContext, console: Console
) -> None:
    email = create_user(admin, console, "Nurse", "Lucia Quispe")
    user = context.new_page()
    for _ in range(5):
        sign_in_as(user, console, email, "Not-The-Password-1")
        expect(user.get_by_role("alert")).to_contain_text("locked")
    sign_in_as(user, console, email)  # the right password: still refused while locked
    expect(user.get_by_role("alert")).to_contain_text("locked")
    assert "/console/home" not in user.url

    admin.goto(console.url("/console/admin/users"))
    row = admin.get_by_role("row").filter(has_text=email)
    expect(row).to_contain_text("Locked until")
    row.get_by_role("link", name="Lucia Quispe").click()
    admin.get_by_role("button", name="Unlock account").click()
    expect(admin.get_by_role("status")).to_contain_text("Account unlocked")
    expect(admin.locator("main")).not_to_contain_text("Locked until")

    sign_in_as(user, console, email)
    user.wait_for_url("**/console/home")


def test_admin_resets_the_mfa_of_a_user_who_lost_their_device(
    admin: Page, context: BrowserContext, console: Console
) -> None:
    email = create_user(admin, console, "Clinician", "Mario Condori")
    user_url = admin.url.split("?")[0]
    # The user turns on two-step verification of their own accord.
    user = context.new_page()
    sign_in_as(user, console, email)
    user.wait_for_url("**/console/home")
    user.goto(console.url("/console/mfa/enrol"))
    secret = user.locator("code.secret").inner_text().strip()
    user.get_by_label("Code").fill(pyotp.TOTP(secret).now())
    user.get_by_role("button", name="Turn on").click()
    expect(user.locator("ul.codes li")).to_have_count(10)

    admin.goto(user_url)
    expect(admin.locator(".facts")).to_contain_text("MFA on")
    admin.get_by_role("button", name="Reset two-step verification").click()
    expect(admin.get_by_role("status")).to_contain_text("Two-step verification was reset")
    expect(admin.locator(".facts")).to_contain_text("MFA off")
    expect(admin.get_by_role("button", name="Reset two-step verification")).to_have_count(0)

    # The session that had the lost device is over; the next sign-in needs no code.
    user.goto(console.url("/console/home"))
    user.wait_for_url("**/console/sign-in**")
    sign_in_as(user, console, email)
    user.wait_for_url("**/console/home")


def test_admin_toggles_a_feature_flag_and_sees_the_new_state(admin: Page, console: Console) -> None:
    key = "rlhf.assurance.capture.enabled"
    admin.goto(console.url("/console/admin"))
    admin.get_by_role("link", name="Feature flags").first.click()
    expect(admin.get_by_role("heading", level=1)).to_have_text("Feature flags")
    row = admin.get_by_role("row").filter(has_text=key)
    was_on = row.get_by_role("button", name="Turn off").count() == 1
    first, second = ("Turn off", "Turn on") if was_on else ("Turn on", "Turn off")
    new_state, old_state = ("Off", "On") if was_on else ("On", "Off")

    row.get_by_role("button", name=first).click()
    expect(admin.get_by_role("status")).to_have_text(f"{key} is now {new_state.lower()}.")
    row = admin.get_by_role("row").filter(has_text=key)
    expect(row.locator("td").first).to_have_text(new_state)
    expect(row).to_contain_text("Demo admin (el-alto)")  # who changed it

    # Put it back as it was: the server is shared with other tests.
    row.get_by_role("button", name=second).click()
    expect(admin.get_by_role("status")).to_have_text(f"{key} is now {old_state.lower()}.")
    row = admin.get_by_role("row").filter(has_text=key)
    expect(row.locator("td").first).to_have_text(old_state)


def test_rule_pack_page_shows_the_active_version(admin: Page, console: Console) -> None:
    admin.goto(console.url("/console/admin"))
    admin.get_by_role("link", name="Rule pack").first.click()
    expect(admin.get_by_role("heading", level=1)).to_have_text("Rule pack")
    facts = admin.locator(".facts")
    expect(facts).to_contain_text("DOAC order check")
    expect(facts.locator("dt", has_text="Version in use").locator("+ dd")).to_have_text("1.0.0")
    expect(facts).to_contain_text("Local overlay")
    installed = admin.get_by_role("row").filter(has_text="1.0.0")
    expect(installed.first).to_contain_text("Yes")
    installed.first.get_by_role("link").click()
    expect(admin.get_by_role("heading", level=1)).to_contain_text("1.0.0")
    expect(admin.get_by_role("row").filter(has_text="active_bleeding")).to_contain_text("BLOCK")
    # In the clinic's language too.
    admin.goto(console.url("/console/admin/rule-packs"))
    admin.get_by_label("Language").select_option("es")
    admin.get_by_role("button", name="Change").click()
    try:
        expect(admin.get_by_role("heading", level=1)).to_have_text("Paquete de reglas")
        expect(admin.locator(".facts")).to_contain_text("Versión en uso")
    finally:
        admin.get_by_label("Idioma").select_option("en")
        admin.get_by_role("button", name="Cambiar", exact=True).click()
        expect(admin.get_by_role("heading", level=1)).to_have_text("Rule pack")
