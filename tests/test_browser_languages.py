"""The screen in German, Japanese and Arabic in a real Chromium, at desktop width and at 390 px:
the language, direction and field order, the card's margins, an axe-core accessibility check and
screenshots under ``test-artifacts/``.

axe-core comes from the ``axe-playwright-python`` test dependency, which bundles a released
``axe.min.js`` (so CI needs no npm); it runs in the page with the CSP bypassed for that script.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from test_browser import CHILD_YEAR, browser, server, shoot, sync_api  # noqa: F401 (fixtures)

pytest.importorskip("babel", reason="agegate[i18n] (Babel) is not installed")
axe_sync = pytest.importorskip(
    "axe_playwright_python.sync_playwright", reason="axe-playwright-python is not installed"
)

pytestmark = [pytest.mark.browser]

#: Chromium's locale (its Accept-Language), the page's lang and dir, the labels of the year,
#: month and day fields in the order the page shows them, the Continue button and the refusal.
LANGUAGES = {
    "de-DE": ("de", "ltr", ["Tag", "Monat", "Jahr"], "Weiter", "Sie können sich gern weiter umsehen"),
    "ja-JP": ("ja", "ltr", ["年", "月", "日"], "続ける", "引き続きサイトをご覧いただけます"),
    "ar-EG": ("ar", "rtl", ["اليوم", "الشهر", "السنة"], "متابعة", "يمكنك مواصلة التصفح"),
}
WIDTHS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


@pytest.fixture
def localised(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:  # noqa: F811
    locale, width = request.param
    context = browser.new_context(
        viewport=WIDTHS[width],
        locale=locale,
        bypass_csp=True,  # lets the axe-core script run in the page
        is_mobile=width == "phone",
        has_touch=width == "phone",
    )
    try:
        yield context.new_page()
    finally:
        context.close()


def check_accessibility(page: Any, name: str) -> None:
    results = axe_sync.Axe().run(page)
    assert results.violations_count == 0, f"{name}:\n{results.generate_report()}"


def check_card_fits(page: Any, width: int) -> None:
    box = page.locator("main").bounding_box()
    assert box is not None
    # The card keeps a margin on both sides, and nothing scrolls sideways.
    assert box["x"] >= 12 and width - (box["x"] + box["width"]) >= 12, box
    assert page.evaluate("document.documentElement.scrollWidth") <= width


CASES = [(locale, width) for locale in LANGUAGES for width in WIDTHS]


@pytest.mark.parametrize("localised", CASES, indirect=True, ids=[f"{loc}-{w}" for loc, w in CASES])
def test_the_screen_in_the_visitors_language(server: str, localised: Any) -> None:  # noqa: F811
    page = localised
    locale = page.evaluate("navigator.language")
    lang, direction, labels, button, refused = LANGUAGES[locale]
    name = f"{lang}-{page.viewport_size['width']}"
    page.goto(f"{server}/agegate?next=/checkout")
    root = page.locator("html")
    assert (root.get_attribute("lang"), root.get_attribute("dir")) == (lang, direction)
    shown = page.locator(".part label").all_inner_texts()
    assert shown == labels
    # Neutral before answering: no number that could be a threshold, nothing chosen.
    assert all(int(n) <= 12 for n in re.findall(r"\d+", page.inner_text("body")))
    assert page.locator("option:checked").get_attribute("value") == ""
    check_card_fits(page, page.viewport_size["width"])
    check_accessibility(page, f"screen {name}")
    shoot(page, f"screen-{name}")

    # A date the screen cannot use is explained in the same language, then a refusal.
    fields = {label: page.get_by_label(label, exact=True) for label in labels}
    by_name = {f.get_attribute("name"): f for f in fields.values()}
    by_name["birth_year"].fill("2011")
    by_name["birth_month"].select_option("2")
    by_name["birth_day"].fill("30")
    page.get_by_role("button", name=button).click()
    sync_api.expect(page.get_by_role("alert")).to_be_visible()
    check_accessibility(page, f"error {name}")
    shoot(page, f"screen-error-{name}")

    by_name = {n: page.locator(f'[name="{n}"]') for n in ("birth_year", "birth_month", "birth_day")}
    by_name["birth_year"].fill(CHILD_YEAR)
    by_name["birth_month"].select_option("4")
    by_name["birth_day"].fill("12")
    page.get_by_role("button", name=button).click()
    sync_api.expect(page.get_by_role("heading", name=refused)).to_be_visible()
    assert page.locator("html").get_attribute("lang") == lang
    check_card_fits(page, page.viewport_size["width"])
    check_accessibility(page, f"refusal {name}")
    shoot(page, f"under-age-{name}")


@pytest.mark.parametrize("localised", [("de-DE", "phone")], indirect=True, ids=["de-phone"])
def test_the_accessibility_check_finds_what_it_should(localised: Any) -> None:
    localised.set_content('<!doctype html><html><body><main><input name="x"></main></body></html>')
    assert axe_sync.Axe().run(localised).violations_count > 0  # a missing lang and label
