"""The report page at ``{prefix}/report`` in the visitor's language, like the screen: the form,
its confirmation, its error pages and its field messages; the JSON API stays as it was."""

from __future__ import annotations

from collections.abc import AsyncIterator
from html.parser import HTMLParser

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from agegate import AgeGate, AgeGateMiddleware, Keyring
from agegate.i18n import ENGLISH, choose
from agegate.stores import MemoryStore

pytest.importorskip("babel")
pytestmark = pytest.mark.anyio

BASE = "http://shop.test"
GOOD = {"account": "kid@example.org", "relation": "guardian", "contact": "mum@example.net"}
#: Accept-Language header, the page's lang, and words the page must show in that language.
LANGUAGES = {
    "de-DE,de;q=0.9": ("de", "ltr", "Ihre Beziehung zum Kind", "Ich bin ein Elternteil des Kindes"),
    "ja": ("ja", "ltr", "お子さまとのご関係", "子どもの親です"),
    "ar-EG": ("ar", "rtl", "صلتك بالطفل", "أنا والد الطفل أو والدته"),
}


class _Page(HTMLParser):
    """The root element's attributes, the radio labels and the field messages of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.root: dict[str, str | None] = {}
        self.labels: dict[str, str] = {}
        self._label: str | None = None
        self.alerts: list[str] = []
        self._alert = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "html":
            self.root = found
        elif tag == "label":
            self._label = found.get("for")
        elif tag == "p" and found.get("role") == "alert":
            self._alert = True

    def handle_endtag(self, tag: str) -> None:
        self._label = None if tag == "label" else self._label
        self._alert = False if tag == "p" else self._alert

    def handle_data(self, data: str) -> None:
        if self._label:
            self.labels[self._label] = self.labels.get(self._label, "") + data
        if self._alert:
            self.alerts.append(data)


def read(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    gate = AgeGate(keys=Keyring.generate("http"), store=MemoryStore())
    app = AgeGateMiddleware(
        Starlette(routes=[Route("/", lambda request: PlainTextResponse("home"))]),
        gate=gate,
        secure_cookies=False,
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        yield http
    await gate.aclose()


@pytest.mark.parametrize("header", LANGUAGES)
async def test_the_report_form_speaks_the_visitors_language(client: httpx.AsyncClient, header: str) -> None:
    tag, direction, legend, parent = LANGUAGES[header]
    page = await client.get("/agegate/report", headers={"accept": "text/html", "accept-language": header})
    assert page.status_code == 200 and "accept-language" in page.headers["vary"].lower()
    seen = read(page.text)
    assert seen.root == {"lang": tag, "dir": direction}
    assert f"<legend>{legend}</legend>" in page.text
    # Translated labels over the fixed values the store and the JSON API know.
    assert seen.labels["report-relation-parent"] == parent
    for value in ("parent", "guardian", "other"):
        assert f'name="relation" value="{value}"' in page.text
    words = choose(header).gettext
    assert seen.labels["report-relation-other"] == words("Other") != "Other"
    for english in ("Your relation to the child", "Send report", "Report a child's account", "The account"):
        assert english not in page.text
    assert "13" not in page.text  # neutral in every language


@pytest.mark.parametrize("header", LANGUAGES)
async def test_the_confirmation_errors_and_field_messages_follow_the_language(
    client: httpx.AsyncClient, header: str
) -> None:
    headers = {"accept": "text/html", "accept-language": header}
    words = choose(header).gettext
    sent = await client.post("/agegate/report", data=GOOD, headers=headers)
    assert sent.status_code == 303
    confirmed = await client.get(sent.headers["location"], headers=headers)
    assert read(confirmed.text).root["lang"] == LANGUAGES[header][0]
    assert words("What happens next") in confirmed.text and "What happens next" not in confirmed.text
    within = words(
        "Within {days} days we answer you at the address you gave, with a signed "
        "deletion receipt if we deleted the account."
    )
    assert within.format(days=7) in confirmed.text
    # A field error: the message by the field, in the visitor's language.
    wrong = await client.post("/agegate/report", data={**GOOD, "contact": "nobody"}, headers=headers)
    assert wrong.status_code == 400
    assert read(wrong.text).alerts == [words("Please give an email address we can answer you at.")]
    long = await client.post("/agegate/report", data={**GOOD, "account": "x" * 300}, headers=headers)
    assert read(long.text).alerts == [words("Please keep this to {limit} characters.").format(limit=256)]
    # The error page of a refused request.
    refused = await client.put("/agegate/report", headers=headers)
    assert refused.status_code == 405 and read(refused.text).root["lang"] == LANGUAGES[header][0]
    assert words("This form could not be read. Please fill it in again.") in refused.text
    assert words("Back to the form") in refused.text and "Back to the form" not in refused.text


async def test_the_account_kinds_are_listed_in_the_visitors_language() -> None:
    gate = AgeGate(keys=Keyring.generate("http"), store=MemoryStore())
    gate.reports.account_kinds = ("email", "username")
    app = AgeGateMiddleware(Starlette(), gate=gate, secure_cookies=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        german = await http.get("/agegate/report", headers={"accept": "text/html", "accept-language": "de"})
        english = await http.get("/agegate/report", headers={"accept": "text/html"})
        wrong = await http.post(
            "/agegate/report",
            data={**GOOD, "account": "+1 555 010 0000"},
            headers={"accept": "text/html", "accept-language": "de"},
        )
    await gate.aclose()
    assert "E-Mail-Adresse oder Benutzername des Kontos." in german.text
    assert "Its email address or username." in english.text and read(english.text).root["lang"] == "en"
    assert read(wrong.text).alerts == ["Bitte geben Sie E-Mail-Adresse oder Benutzername des Kontos an."]


@pytest.mark.parametrize("header", LANGUAGES)
async def test_the_json_api_is_the_same_in_every_language(client: httpx.AsyncClient, header: str) -> None:
    asked = {"accept-language": header}
    described = await client.get("/agegate/report", headers=asked)
    assert described.json() == (await client.get("/agegate/report")).json()
    assert described.json()["relations"] == ["parent", "guardian", "other"]
    wrong = await client.post("/agegate/report", json={**GOOD, "contact": "nobody"}, headers=asked)
    assert wrong.status_code == 400
    assert wrong.json() == {
        "error": "invalid_report",
        "field": "contact",
        "message": "Please give an email address we can answer you at.",
    }
    refused = await client.put("/agegate/report", headers=asked)
    assert refused.status_code == 405 and refused.json() == {"error": "method_not_allowed"}
    sent = await client.post("/agegate/report", json=GOOD, headers=asked)
    assert sent.status_code == 202 and set(sent.json()) == {"reference", "answer_by"}


async def test_english_stays_the_default(client: httpx.AsyncClient) -> None:
    page = await client.get("/agegate/report", headers={"accept": "text/html"})
    assert read(page.text).root == {"lang": "en", "dir": "ltr"} and ENGLISH.tag == "en"
    assert "<legend>Your relation to the child</legend>" in page.text
    assert read(page.text).labels["report-relation-guardian"] == "I am the child's guardian"
