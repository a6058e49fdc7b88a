"""The screen in a real browser: Debian's Chromium driven by Playwright, against ``agegate demo``.

Screenshots of the pages are saved under ``test-artifacts/``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHILD_YEAR = str(time.gmtime().tm_year - 7)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed at /usr/bin/chromium"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``agegate demo`` on a free port, as a user would start it."""
    port = free_port()
    data = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if k != "AGEGATE_SECRET_KEYS"}
    command = [sys.executable, "-m", "agegate", "demo", "--port", str(port), "--data-dir", str(data)]
    with subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        try:
            while True:
                try:
                    httpx.get(url, timeout=1)
                    break
                except httpx.TransportError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        pytest.fail("agegate demo did not start")
                    time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 900, "height": 700})
    try:
        yield context.new_page()
    finally:
        context.close()


def shoot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def enter_birth_date(page: Any, year: str, month: str, day: str) -> None:
    page.get_by_label("Year").fill(year)
    page.get_by_label("Month").select_option(month)
    page.get_by_label("Day").fill(day)
    page.get_by_role("button", name="Continue").click()


REFUSED = "You can keep looking around"


def test_child_is_refused_and_back_does_not_help(server: str, page: Any) -> None:
    page.goto(f"{server}/agegate?next=/checkout")
    shoot(page, "screen")
    enter_birth_date(page, CHILD_YEAR, "4", "12")
    sync_api.expect(page.get_by_role("heading", name=REFUSED)).to_be_visible()
    assert "try again" not in page.content().lower() and "sorry" not in page.content().lower()
    shoot(page, "under-age")

    # Back shows the refusal again (the cookie decides), never the form to answer anew.
    page.go_back()
    sync_api.expect(page.get_by_role("heading", name=REFUSED)).to_be_visible()
    assert page.get_by_label("Year").count() == 0
    page.goto(f"{server}/agegate?next=/checkout")
    sync_api.expect(page.get_by_role("heading", name=REFUSED)).to_be_visible()
    assert page.url == f"{server}/agegate?next=/checkout"  # not let through to /checkout

    # The shop's own forms are refused too, and reading stays open.
    page.goto(f"{server}/checkout")
    page.get_by_role("button", name="Place order").click()
    sync_api.expect(page.get_by_role("heading", name=REFUSED)).to_be_visible()
    page.goto(f"{server}/signup")
    page.get_by_label("Username").fill("kiddo")
    page.get_by_label("Email").fill("kiddo@example.org")
    page.get_by_label("Year").fill("1980")
    page.get_by_role("button", name="Create account").click()
    sync_api.expect(page.get_by_role("heading", name=REFUSED)).to_be_visible()


def test_adult_passes_to_next_signs_up_and_checks_out(server: str, page: Any) -> None:
    page.goto(f"{server}/checkout")
    page.get_by_role("button", name="Place order").click()
    sync_api.expect(page.get_by_role("heading", name="One step first")).to_be_visible()
    shoot(page, "screen-required")
    page.get_by_role("link", name="Continue").click()
    assert page.url.endswith("/agegate?next=/checkout")

    page.goto(f"{server}/agegate?next=/signup")
    enter_birth_date(page, "1979", "11", "3")
    page.wait_for_url(f"{server}/signup")

    page.get_by_label("Username").fill("grown-up")
    page.get_by_label("Email").fill("grown@example.org")
    page.get_by_label("Month").select_option("11")
    page.get_by_label("Day").fill("3")
    page.get_by_label("Year").fill("1979")
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(f"{server}/profile")

    page.get_by_label("Display name").fill("Grown Up")
    page.get_by_label("City").fill("Lisbon")
    page.get_by_role("button", name="Save profile").click()
    sync_api.expect(page.get_by_text("Profile saved.")).to_be_visible()

    page.goto(f"{server}/checkout")
    page.get_by_label("Product").select_option("tent")
    page.get_by_role("button", name="Place order").click()
    sync_api.expect(page.get_by_text("Thank you for your order!")).to_be_visible()
    sync_api.expect(page.get_by_role("listitem").filter(has_text="A two-person tent")).to_be_visible()


def test_screen_is_keyboard_usable_and_labelled(server: str, page: Any) -> None:
    page.goto(f"{server}/agegate?next=/checkout")
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                  .filter(el => el.labels.length === 0).map(el => el.name)"""
    )
    assert unlabelled == []
    assert page.locator("fieldset > legend").count() == 1

    focused = []
    page.keyboard.press("Tab")
    focused.append(page.evaluate("document.activeElement.id"))
    page.keyboard.type("Mar")  # a focused select picks the option typed
    page.keyboard.press("Tab")
    focused.append(page.evaluate("document.activeElement.id"))
    page.keyboard.type("14")
    page.keyboard.press("Tab")
    focused.append(page.evaluate("document.activeElement.id"))
    page.keyboard.type("1970")
    page.keyboard.press("Tab")
    focused.append(page.evaluate("document.activeElement.textContent"))
    assert focused == ["agegate-month", "agegate-day", "agegate-year", "Continue"]
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/checkout")


def test_bad_date_is_explained(server: str, page: Any) -> None:
    page.goto(f"{server}/agegate")
    enter_birth_date(page, "2011", "2", "30")
    error = page.get_by_role("alert")
    sync_api.expect(error).to_be_visible()
    # Post/redirect/get: the page is a GET that names the message, not what was typed.
    assert "2011" not in page.url and "30" not in page.url.split("?", 1)[1]
    sync_api.expect(page.get_by_label("Day")).to_have_value("")
    described = page.get_by_label("Year").get_attribute("aria-describedby")
    assert described and page.locator(f"#{described}").inner_text() == error.inner_text()
    shoot(page, "screen-error")


def test_back_and_reload_after_a_bad_date_and_a_refusal_resend_nothing(server: str, page: Any) -> None:
    """Chromium showed "Confirm Form Resubmission" (ERR_CACHE_MISS) on Back after a bad date and
    a refusal: every form post is now answered with a redirect to a GET."""
    page.goto(f"{server}/agegate?next=/checkout")
    enter_birth_date(page, "2011", "2", "30")
    sync_api.expect(page.get_by_role("alert")).to_be_visible()
    enter_birth_date(page, CHILD_YEAR, "4", "12")
    sync_api.expect(page.get_by_role("heading", name=REFUSED)).to_be_visible()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.method))
    for move in (page.go_back, page.reload, page.go_forward, page.reload):
        response = move()
        assert response is not None and response.status == 200, move
        assert "ERR_CACHE_MISS" not in page.content()
        sync_api.expect(page.get_by_role("heading", name=REFUSED)).to_be_visible()
    assert set(requests) == {"GET"}  # nothing was posted again
