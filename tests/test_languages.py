"""The screen in the visitor's language: choosing the language, the catalogs, the pages in every
shipped language (neutral in each), JSON messages, the app's override, and life without Babel."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from agegate import AgeGate, AgeGateMiddleware, ConfigurationError, Keyring, Pages
from agegate.asgi.pages import DEFAULT_CSP, ScreenForm
from agegate.i18n import CATALOGS, DOMAIN, ENGLISH, LOCALE_DIR, choose, language, preferred_tags
from agegate.stores import MemoryStore

babel = pytest.importorskip("babel", reason="agegate[i18n] (Babel) is not installed")
from babel.messages.extract import extract_from_dir  # noqa: E402
from babel.messages.mofile import read_mo  # noqa: E402
from babel.messages.pofile import read_po  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HTML = {"accept": "text/html"}
#: One tag a visitor might send for each shipped catalog, and the ``lang`` the page then has.
SHIPPED = {
    "en-US": "en",
    "es-ES": "es",
    "fr-FR": "fr",
    "de-DE": "de",
    "it-IT": "it",
    "nl-NL": "nl",
    "pt-BR": "pt-BR",
    "pl-PL": "pl",
    "ja-JP": "ja",
    "ko-KR": "ko",
    "zh-CN": "zh-Hans",
    "ar-EG": "ar",
    "he-IL": "he",
}


def app(**options: Any) -> AgeGateMiddleware:
    async def checkout(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    gate = AgeGate(keys=Keyring.generate("lang"), store=MemoryStore())
    inner = Starlette(routes=[Route("/checkout", checkout, methods=["GET", "POST"])])
    return AgeGateMiddleware(inner, gate=gate, secure_cookies=False, **options)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app())
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.example") as c:
        yield c


class _Text(HTMLParser):
    """The text a person sees (no style, no attributes) and the <html> attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.root: dict[str, str | None] = {}
        self._skip = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "html":
            self.root = dict(attrs)
        self._skip = tag in ("style", "title")

    def handle_endtag(self, tag: str) -> None:
        self._skip = False

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)


def read_page(html: str) -> _Text:
    parser = _Text()
    parser.feed(html)
    return parser


# -- choosing the language ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "tag", "order", "rtl"),
    [
        ("de-CH,de;q=0.9,en;q=0.5", "de", "DMY", False),
        ("ja", "ja", "YMD", False),
        ("ar-EG", "ar", "DMY", True),
        ("he", "he", "DMY", True),
        ("zh-TW,fr;q=0.5", "fr", "DMY", False),  # no traditional-script catalog: the next choice
        ("zh-Hans-CN", "zh-Hans", "YMD", False),
        ("pt-PT", "pt-BR", "DMY", False),
        ("en-GB", "en", "DMY", False),  # English words, British field order
        ("en", "en", None, False),  # the gate's own date_order
        ("fr;q=0, de;q=0.1", "de", "DMY", False),
        ("xx-YY, *", "en", None, False),
        ("", "en", None, False),
        ("de;q=abc, es", "es", "DMY", False),  # a weight nobody can read drops that range only
    ],
)
def test_the_language_follows_accept_language(header: str, tag: str, order: str | None, rtl: bool) -> None:
    chosen = choose(header)
    assert (chosen.tag, chosen.order, chosen.rtl) == (tag, order, rtl)


def test_the_apps_choice_comes_first() -> None:
    assert choose("de", override="ja").tag == "ja"
    assert choose("de", override="tlh").tag == "de"  # a language not shipped: the visitor's
    assert choose("de", override="'><x").tag == "de"


@given(st.text(max_size=2000))
def test_any_header_gives_a_known_language(header: str) -> None:
    assert choose(header).tag in set(SHIPPED.values())
    assert len(preferred_tags(header)) <= 16


@settings(max_examples=40)  # each new region is a CLDR lookup
@given(st.from_regex(r"(de|ja|ar|en|zh|pt|he)(-[A-Za-z0-9]{1,8}){0,4}", fullmatch=True))
def test_any_regional_tag_of_a_shipped_language_is_served(tag: str) -> None:
    chosen = choose(tag)
    assert chosen.tag in set(SHIPPED.values()) and chosen.order in (None, "DMY", "MDY", "YMD")


def test_weights_order_the_ranges_and_ties_keep_their_order() -> None:
    assert preferred_tags("fr;q=0.5, de, ja;q=0.9, es") == ["de", "es", "ja", "fr"]


# -- the catalogs --------------------------------------------------------------------------------


def test_every_catalog_is_compiled_from_its_po_file() -> None:
    """The shipped .mo files are what `pybabel compile` makes of the .po files (CI installs with
    `pip install -e`, so the compiled catalogs are committed)."""
    for catalog in CATALOGS:
        folder = LOCALE_DIR / catalog / "LC_MESSAGES"
        with (folder / f"{DOMAIN}.po").open("rb") as po, (folder / f"{DOMAIN}.mo").open("rb") as mo:
            source, compiled = read_po(po), read_mo(mo)
        wanted = {m.id: m.string for m in source if m.id and m.string and not m.fuzzy}
        shipped = {m.id: m.string for m in compiled if m.id}
        assert shipped == wanted, f"{catalog}: run pybabel compile -d agegate/locale -D agegate"


def test_every_message_in_the_code_is_in_the_template_and_translated_everywhere() -> None:
    method_map = [("agegate/**.py", "python")]
    found = {
        message
        for _, _, message, _, _ in extract_from_dir(
            str(ROOT), method_map, keywords={"_": None, "N_": None}, comment_tags=()
        )
        if isinstance(message, str)
    }
    with (LOCALE_DIR / f"{DOMAIN}.pot").open("rb") as pot:
        template = {m.id for m in read_po(pot) if m.id}
    assert template == found, "run pybabel extract (docs/regions-and-languages.md, Languages)"
    for catalog in CATALOGS:
        with (LOCALE_DIR / catalog / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as po:
            source = read_po(po)
        strings = {m.id: m.string for m in source if m.id}
        assert set(strings) == template, f"{catalog}: run pybabel update"
        for message_id, text in strings.items():
            assert text and not source[message_id].fuzzy, f"{catalog}: {message_id!r} is not translated"
            # Placeholders survive; no translation adds a number the English does not have.
            assert re.findall(r"\{\w*\}", text) == re.findall(r"\{\w*\}", message_id), catalog
            assert set(re.findall(r"\d+", text)) <= set(re.findall(r"\d+", message_id)) | {"4"}, catalog


# -- the pages in every language ---------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(("header", "tag"), SHIPPED.items())
async def test_the_screen_speaks_each_language_and_stays_neutral(
    client: httpx.AsyncClient, header: str, tag: str
) -> None:
    response = await client.get("/agegate?next=/checkout", headers={**HTML, "accept-language": header})
    assert response.status_code == 200
    assert "accept-language" in response.headers["vary"].lower()
    page = read_page(response.text)
    assert page.root == {"lang": tag, "dir": "rtl" if tag in ("ar", "he") else "ltr"}
    words = language(tag.replace("-", "_") if tag != "en" else "en")
    text = " ".join(page.text)
    for message in ("Continue", "Your date of birth", "Year", "Month", "Day"):
        assert words.gettext(message) in text
    for month in words.months:
        assert f">{month}</option>" in response.text
    # Neutral: no number a threshold could be (month names in CJK carry 1-12), nothing chosen,
    # no bound on the year, and no word for "age" in any shipped language.
    assert all(int(n) <= 12 for n in re.findall(r"\d+", text)), text
    assert " selected" not in response.text and not re.search(r"\b(min|max)=", response.text)
    assert 'value="' not in response.text.replace('value=""', "").replace('value="/checkout"', "").replace(
        'option value="', ""
    )
    assert "13" not in response.text


@pytest.mark.anyio
@pytest.mark.parametrize(("header", "tag"), SHIPPED.items())
async def test_the_refusal_speaks_each_language_with_one_message(
    client: httpx.AsyncClient, header: str, tag: str
) -> None:
    child = {"birth_year": "2020", "birth_month": "1", "birth_day": "1"}
    headers = {**HTML, "accept-language": header}
    answered = await client.post("/agegate", data=child, headers=headers)
    assert answered.status_code == 303 and answered.headers["location"] == "/agegate"
    shown = await client.get("/agegate", headers=headers)
    blocked = await client.post("/checkout", headers=headers)
    for response in (shown, blocked):
        page = read_page(response.text)
        assert page.root["lang"] == tag
        words = choose(header).gettext
        assert words("You can keep looking around") in " ".join(page.text)
        assert "birth_year" not in response.text and not re.search(r"1[3-9]|2[01]", " ".join(page.text))


@pytest.mark.anyio
async def test_the_screen_required_page_and_the_field_order_follow_the_language(
    client: httpx.AsyncClient,
) -> None:
    required = await client.post("/checkout", headers={**HTML, "accept-language": "ko"})
    assert required.status_code == 428 and '<html lang="ko"' in required.text
    assert "accept-language" in required.headers["vary"].lower()
    for header, names in (("ja", "year|month|day"), ("de", "day|month|year"), ("en-US", "month|day|year")):
        page = (await client.get("/agegate", headers={**HTML, "accept-language": header})).text
        order = re.findall(r'name="birth_(year|month|day)"', page)
        assert "|".join(order) == names, header


@pytest.mark.anyio
async def test_a_bad_date_is_explained_in_the_visitors_language(client: httpx.AsyncClient) -> None:
    headers = {"accept-language": "de-DE"}
    answer = await client.post("/agegate", json={"birth_date": "2013-02-30"}, headers=headers)
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "invalid_birth_date",
        "code": "impossible",
        "message": "Diesen Tag gibt es in diesem Monat nicht. Bitte prüfen Sie das Geburtsdatum.",
    }
    assert "accept-language" in answer.headers["vary"].lower()
    typed = {"birth_year": "2013", "birth_month": "2", "birth_day": "30"}
    headers = {**HTML, "accept-language": "ja"}
    shown = await client.post("/agegate", data=typed, headers=headers, follow_redirects=True)
    assert "その月にその日は存在しません" in shown.text
    # The example in the message is in the gate's own date_order, wherever the visitor is.
    wrong = await client.post("/agegate", json={"birth_date": "1/2"}, headers={"accept-language": "fr"})
    example = "Veuillez saisir votre date de naissance complète, par exemple 04/23/1990."
    assert wrong.json()["message"] == example


@pytest.mark.anyio
async def test_typed_dates_in_the_visitors_language_are_read(client: httpx.AsyncClient) -> None:
    for typed in ("1. Juni 1990", "1 juin 1990", "1 de junio de 1990", "1990年6月1日", "1 يونيو 1990"):
        answer = await client.post("/agegate", json={"birth_date": typed})
        assert answer.json() == {"outcome": "allowed"}, typed


@pytest.mark.anyio
@pytest.mark.parametrize("asynchronous", [False, True])
async def test_the_app_can_choose_the_language(asynchronous: bool) -> None:
    seen: list[str] = []

    def plain(scope: Any) -> str | None:
        seen.append(scope["path"])
        return dict(scope["headers"]).get(b"x-lang", b"").decode() or None

    async def later(scope: Any) -> str | None:
        return plain(scope)

    transport = httpx.ASGITransport(app=app(locale=later if asynchronous else plain))
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.example") as c:
        chosen = await c.get("/agegate", headers={**HTML, "x-lang": "he", "accept-language": "de"})
        assert '<html lang="he" dir="rtl"' in chosen.text
        fallback = await c.get("/agegate", headers={**HTML, "accept-language": "de"})
        assert '<html lang="de"' in fallback.text
        # Answers that render nothing never ask: the pass and block paths stay as they were.
        seen.clear()
        await c.post("/checkout", headers={"accept-language": "de"})  # 428 JSON
        await c.get("/checkout", headers={**HTML, "accept-language": "de"})
        await c.post("/agegate", json={"birth_date": "1990-01-01"})
        assert seen == []
        c.cookies.clear()
        await c.post("/checkout", headers={**HTML, "x-lang": "ja"})  # the 428 page
        assert seen == ["/checkout"]


def _locale_raises(scope: Any) -> str | None:
    raise LookupError("the user's profile is gone")


@pytest.mark.parametrize("locale", [lambda scope: 42, _locale_raises], ids=["not a tag", "raises"])
@pytest.mark.anyio
async def test_a_locale_function_at_fault_falls_back_to_the_visitors_language(
    locale: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Which language a page speaks is no reason to refuse it: the page is served by
    # Accept-Language, and the operator told which function is wrong.
    with pytest.raises(ConfigurationError):
        app(locale="de")
    transport = httpx.ASGITransport(app=app(locale=locale), raise_app_exceptions=True)
    with caplog.at_level(logging.ERROR, logger="agegate.asgi"):
        async with httpx.AsyncClient(transport=transport, base_url="http://shop.example") as c:
            page = await c.get("/agegate", headers={**HTML, "accept-language": "de"})
    assert page.status_code == 200 and '<html lang="de"' in page.text
    assert "locale function" in caplog.text and "profile" not in caplog.text


# -- the app's look without a template ---------------------------------------------------------


def test_the_app_gives_its_name_logo_colours_and_privacy_link() -> None:
    pages = Pages(
        site_name="Trail Shop",
        logo_url="https://cdn.example/logo.svg",
        colors={"accent": "#0b6e4f", "bg": "rgb(250, 250, 245)"},
        privacy_url="/privacy",
    )
    page = pages.screen(ScreenForm("/agegate", language=choose("fr")))
    assert "<title>Avant de continuer – Trail Shop</title>" in page
    assert '<img src="https://cdn.example/logo.svg" alt="">' in page and "<span>Trail Shop</span>" in page
    assert ":root{--accent:#0b6e4f;--bg:rgb(250, 250, 245)}" in page
    assert '<a href="/privacy">Politique de confidentialité</a>' in page
    assert "img-src 'self' data: https://cdn.example;" in pages.csp
    assert Pages(logo_url="/logo.png").csp == DEFAULT_CSP


@pytest.mark.parametrize(
    "options",
    [
        {"colors": {"accent": "red;background:url(x)"}},
        {"colors": {"accent": "</style>"}},
        {"colors": {"shadow": "#000"}},
        {"logo_url": "javascript:alert(1)"},
        {"logo_url": "http://cdn.example/logo.png"},
        {"logo_url": '/logo.png" onerror="x'},
        {"privacy_url": "//evil.example/"},
        {"site_name": ""},
    ],
)
def test_bad_look_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        Pages(**options)


# -- without Babel -------------------------------------------------------------------------------

_WITHOUT_BABEL = """
import sys
sys.modules["babel"] = None  # as if agegate[i18n] were not installed
import asyncio, httpx
from agegate import AgeGate, AgeGateMiddleware, InvalidBirthDate, Keyring
from agegate.birthdate import read_birth_input
from agegate.i18n import available, choose
from agegate.stores import MemoryStore

assert available() == ("en",) and choose("de").tag == "en"
assert read_birth_input({"birth_date": "June 1, 2013"}).latest.isoformat() == "2013-06-01"
try:
    read_birth_input({"birth_date": "1. Juni 2013"})
    raise SystemExit("a German month name was read without Babel")
except InvalidBirthDate:
    pass

async def main():
    async def inner(scope, receive, send):
        raise SystemExit("the app was called")
    gate = AgeGate(keys=Keyring.generate("t"), store=MemoryStore())
    app = AgeGateMiddleware(inner, gate=gate, secure_cookies=False, locale=lambda scope: "ja")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as c:
        page = await c.get("/agegate", headers={"accept": "text/html", "accept-language": "de"})
        assert '<html lang="en" dir="ltr">' in page.text and ">January</option>" in page.text
        assert page.headers["vary"] == "Cookie, Accept", page.headers["vary"]
        json = await c.post("/agegate", json={"birth_date": "2013-02-30"}, headers={"accept-language": "de"})
        assert json.json()["message"].startswith("That day does not exist"), json.text
asyncio.run(main())
print("english")
"""


def test_without_babel_the_pages_stay_english_and_nothing_else_changes() -> None:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_WITHOUT_BABEL)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0 and result.stdout.strip() == "english", result.stderr


def test_english_is_the_default_language() -> None:
    assert ENGLISH.tag == "en" and ENGLISH.dir == "ltr" and ENGLISH.order is None
    assert Pages().screen(ScreenForm("/agegate")).startswith('<!doctype html>\n<html lang="en" dir="ltr">')


# -- docs/regions-and-languages.md, "Languages", run as written -----------------------------------------


def _languages_section() -> str:
    text = (ROOT / "docs" / "regions-and-languages.md").read_text(encoding="utf-8")
    return text.split("## Languages", 1)[1].split("\n## ", 1)[0]


@pytest.mark.anyio
async def test_the_readme_example_runs() -> None:
    block = re.findall(r"```python\n(.*?)```", _languages_section(), re.DOTALL)[0]
    namespace: dict[str, Any] = {}
    exec(compile(block, "docs/regions-and-languages.md (Languages)", "exec"), namespace)
    transport = httpx.ASGITransport(app=namespace["app"])
    async with httpx.AsyncClient(transport=transport, base_url="http://x") as c:
        page = await c.get("/agegate", headers={**HTML, "accept-language": "nl"})
    assert '<html lang="nl"' in page.text and "Je geboortedatum" in page.text


def test_the_readme_catalog_commands_reproduce_the_shipped_catalogs(tmp_path: Path) -> None:
    import shutil

    lines = [
        line.split("#", 1)[0].strip()
        for line in re.findall(r"```sh\n(.*?)```", _languages_section(), re.DOTALL)[0].splitlines()
    ]
    commands = [line for line in lines if line.startswith("pybabel") and " init " not in line]
    assert [c.split()[1] for c in commands] == ["extract", "update", "compile"]
    work = tmp_path / "repo"
    shutil.copytree(ROOT / "agegate", work / "agegate", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "babel.cfg", work / "babel.cfg")
    pybabel = Path(sys.executable).with_name("pybabel")
    for command in commands:
        args = [str(pybabel), *command.split()[1:]]
        subprocess.run(args, cwd=work, check=True, capture_output=True, timeout=120)
    for catalog in CATALOGS:
        relative = Path("agegate/locale") / catalog / "LC_MESSAGES" / f"{DOMAIN}.mo"
        with (ROOT / relative).open("rb") as shipped, (work / relative).open("rb") as rebuilt:
            messages = ({m.id: m.string for m in read_mo(f) if m.id} for f in (shipped, rebuilt))
            assert next(messages) == next(messages), catalog
