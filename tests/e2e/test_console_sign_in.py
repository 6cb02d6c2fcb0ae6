"""Sign-in in a real browser: the clinic's mandatory MFA for admins (enrol, then the MFA step on
the next sign-in), the one message for a wrong password or a locked account, sign-out, the
language switch, and returning to the page asked for after signing in."""

from __future__ import annotations

import time

import pyotp
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import CLINICS, Console, sign_in


def test_admin_enrols_mfa_then_signs_in_with_a_code(page: Page, console: Console) -> None:
    email = console.email("admin", CLINICS[1])
    page.goto(console.url("/console/sign-in"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(console.password)
    page.get_by_role("button", name="Sign in").click()
    # The clinic requires MFA for admins: the console asks for enrolment before anything else.
    page.wait_for_url("**/console/mfa/enrol")
    page.goto(console.url("/console/home"))
    page.wait_for_url("**/console/mfa/enrol")
    secret = page.locator("code.secret").inner_text().strip()
    totp = pyotp.TOTP(secret)
    enrol_step = int(time.time()) // 30
    page.get_by_label("Code").fill(totp.at(enrol_step * 30))
    page.get_by_role("button", name="Turn on").click()
    expect(page.locator("ul.codes li")).to_have_count(10)
    page.get_by_role("link", name="Continue").click()
    page.wait_for_url("**/console/home")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/console/sign-in")

    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(console.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/mfa")
    page.get_by_label("Code").fill("000000")
    page.get_by_role("button", name="Verify").click()
    expect(page.locator("#f-code-error")).to_contain_text("not valid")
    # The next step's code: the enrolment's step is spent (each step works once), and one step
    # of clock drift either way is accepted.
    page.get_by_label("Code").fill(totp.at((enrol_step + 1) * 30))
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url("**/console/home")
    expect(page.locator(".brand .org")).not_to_be_empty()


def test_wrong_password_keeps_the_email_and_explains_lockout(page: Page, console: Console) -> None:
    page.goto(console.url("/console/sign-in"))
    page.get_by_label("Email").fill(console.email("nurse"))
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("locked")
    expect(page.get_by_label("Email")).to_have_value(console.email("nurse"))
    expect(page.get_by_label("Password")).to_have_value("")


def test_signed_out_visit_returns_to_the_page_after_sign_in(page: Page, console: Console) -> None:
    page.goto(console.url("/console/organization"))
    page.wait_for_url("**/console/sign-in")
    page.get_by_label("Email").fill(console.email("clinician"))
    page.get_by_label("Password").fill(console.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/organization")


def test_language_switch_translates_the_console(page: Page, console: Console) -> None:
    sign_in(page, console, "clinician")
    page.get_by_label("Language").select_option("es")
    page.get_by_role("button", name="Change").click()
    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.get_by_role("heading", level=1)).to_have_text("Inicio")
    page.get_by_label("Idioma").select_option("pt")
    page.get_by_role("button", name="Cambiar", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Início")
    expect(page.get_by_role("button", name="Sair")).to_be_visible()


def test_browser_preference_chooses_the_language(browser: Browser, console: Console) -> None:
    ctx = browser.new_context(locale="pt-BR")
    try:
        page = ctx.new_page()
        page.goto(console.url("/console/sign-in"))
        expect(page.locator("html")).to_have_attribute("lang", "pt")
        expect(page.get_by_role("heading", level=1)).to_have_text("Entrar")
    finally:
        ctx.close()
