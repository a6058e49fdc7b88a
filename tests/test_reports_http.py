"""The report form and its JSON API at ``{prefix}/report``, through the real ASGI stack."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from agegate import AgeGate, AgeGateMiddleware, Keyring, StoreError, StoreUnavailable
from agegate.reports import ReportLimit
from agegate.stores import MemoryStore

pytestmark = pytest.mark.anyio

BASE = "http://shop.test"
GOOD = {
    "account": "kid@example.org",
    "relation": "parent",
    "contact": "mum@example.net",
    "details": "He is 10.",
}
HTML = {"accept": "text/html"}


class SpyStore(MemoryStore):
    """A memory store that records which methods were called after it was opened."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __getattribute__(self, name: str) -> Any:
        found = super().__getattribute__(name)
        if not name.startswith("_") and callable(found) and name not in ("revision",):
            super().__getattribute__("calls").append(name)
        return found


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store() -> SpyStore:
    return SpyStore()


@pytest.fixture
def gate_store(store: SpyStore) -> SpyStore:
    return store


@pytest.fixture
async def client(gate: AgeGate) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=[Route("/", lambda request: PlainTextResponse("home"))])
    wrapped = AgeGateMiddleware(app, gate=gate, secure_cookies=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=wrapped), base_url=BASE) as http:
        yield http


async def stored(gate: AgeGate) -> list[Any]:
    return await gate.reports.all()


async def test_the_form_is_accessible_and_describes_itself(client: httpx.AsyncClient) -> None:
    page = await client.get("/agegate/report", headers=HTML)
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    text = page.text
    for name in ("account", "contact", "details"):
        assert f'<label for="report-{name}">' in text and f'id="report-{name}" name="{name}"' in text
    assert "<legend>Your relation to the child</legend>" in text
    assert text.count('name="relation"') == 3 and 'action="/agegate/report"' in text
    assert "13" not in text  # like the screen, it does not tell a child the cut-off age
    described = (await client.get("/agegate/report")).json()
    assert described == {
        "report": "/agegate/report",
        "fields": ["account", "relation", "contact", "details"],
        "relations": ["parent", "guardian", "other"],
        "account_kinds": ["email", "username", "phone", "url"],
    }
    head = await client.head("/agegate/report", headers=HTML)
    assert head.status_code == 200 and head.content == b""


async def test_json_report_is_202_with_a_reference_and_stored_sealed(
    client: httpx.AsyncClient, gate: AgeGate
) -> None:
    answer = await client.post("/agegate/report", json=GOOD)
    assert answer.status_code == 202
    body = answer.json()
    assert set(body) == {"reference", "answer_by"} and re.fullmatch(r"R(-[0-9A-Z]{4}){3}", body["reference"])
    (report,) = await stored(gate)
    assert report.reference == body["reference"] and report.record.state == "open"
    assert report.fields.account == "kid@example.org" and report.fields.kind == "email"
    assert report.record.due_at - report.record.received_at == gate.reports.deadline
    assert b"kid@example.org" not in report.record.sealed and b"mum@" not in report.record.sealed


async def test_the_form_posts_redirect_to_a_confirmation(client: httpx.AsyncClient, gate: AgeGate) -> None:
    sent = await client.post("/agegate/report", data=GOOD, headers=HTML)
    assert sent.status_code == 303
    location = sent.headers["location"]
    (report,) = await stored(gate)
    assert location == f"/agegate/report?ref={report.reference}"
    page = await client.get(location, headers=HTML)
    assert (
        page.status_code == 200 and f'<strong id="report-reference">{report.reference}</strong>' in page.text
    )
    assert "What happens next" in page.text and "Within 7 days" in page.text
    # A made-up reference shows the form, not a confirmation of something else.
    assert "What happens next" not in (await client.get("/agegate/report?ref=<b>x</b>", headers=HTML)).text


def shape(response: httpx.Response) -> tuple[int, list[str], Any]:
    """Everything about an answer but the reference (random) itself."""
    headers = sorted(k for k in response.headers if k != "content-length")
    if response.headers.get("content-type") == "application/json":
        body: Any = sorted(response.json())
    else:
        body = response.headers.get("location", "").split("=")[0]
    return response.status_code, headers, body


async def test_the_same_answer_for_an_existing_and_an_unknown_account(
    client: httpx.AsyncClient, gate: AgeGate, store: SpyStore
) -> None:
    # An account the gate knows (screened, then purged as a child's: its email blocked) …
    await gate.signup(
        {"birth_date": "1990-01-01"}, subject="kid@example.org", identifiers={"email": "kid@example.org"}
    )
    await gate.record("kid@example.org", "under_age")
    known = dict(GOOD)
    unknown = dict(GOOD, account="nobody-here@example.org")
    store.calls.clear()
    answers = [await client.post("/agegate/report", json=fields) for fields in (known, unknown)]
    assert shape(answers[0]) == shape(answers[1])
    pages = [
        await client.post("/agegate/report", data=dict(f, details="x"), headers=HTML)
        for f in (known, unknown)
    ]
    assert shape(pages[0]) == shape(pages[1])
    # … is never looked up: a report only writes itself.
    assert set(store.calls) == {"create_report"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"account": ""}, "account"),
        ({"account": "two words"}, "account"),
        ({"account": "x" * 300}, "account"),
        ({"account": 42}, "account"),
        ({"relation": "aunt"}, "relation"),
        ({"relation": None}, "relation"),
        ({"contact": "not an address"}, "contact"),
        ({"contact": ""}, "contact"),
        ({"details": "d" * 2001}, "details"),
        ({"details": "nul\x00"}, "details"),
        ({"details": ["a", "list"]}, "details"),
    ],
)
async def test_a_bad_field_is_400_with_its_name(
    client: httpx.AsyncClient, gate: AgeGate, change: dict[str, Any], field: str
) -> None:
    answer = await client.post("/agegate/report", json={**GOOD, **change})
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_report" and answer.json()["field"] == field
    assert await stored(gate) == []


async def test_a_bad_form_field_shows_the_form_again_with_the_error_by_it(client: httpx.AsyncClient) -> None:
    page = await client.post("/agegate/report", data={**GOOD, "contact": 'x"><script>'}, headers=HTML)
    assert page.status_code == 400
    assert 'role="alert"' in page.text and 'name="contact" type="email"' in page.text
    assert re.search(r'id="report-contact"[^>]*aria-invalid="true"', page.text)
    assert "<script>" not in page.text and 'value="kid@example.org"' in page.text
    assert "He is 10.</textarea>" in page.text


async def test_an_app_may_take_fewer_kinds_of_account(client: httpx.AsyncClient, gate: AgeGate) -> None:
    gate.reports.account_kinds = ("email", "username")
    answer = await client.post("/agegate/report", json={**GOOD, "account": "https://shop.test/u/kid"})
    assert answer.status_code == 400 and answer.json()["field"] == "account"
    assert "email address or username" in answer.json()["message"]
    assert (await client.post("/agegate/report", json={**GOOD, "account": "kid_2015"})).status_code == 202


@pytest.mark.parametrize(
    "headers",
    [{"sec-fetch-site": "cross-site"}, {"sec-fetch-site": "same-site"}, {"origin": "http://evil.example"}],
)
async def test_cross_site_posts_are_refused(
    client: httpx.AsyncClient, gate: AgeGate, headers: dict[str, str]
) -> None:
    answer = await client.post("/agegate/report", json=GOOD, headers=headers)
    assert answer.status_code == 403 and answer.json() == {"error": "cross_site_request"}
    page = await client.post("/agegate/report", data=GOOD, headers={**headers, **HTML})
    assert page.status_code == 403 and 'href="/agegate/report"' in page.text
    assert await stored(gate) == []
    same = await client.post("/agegate/report", json=GOOD, headers={"origin": BASE})
    assert same.status_code == 202


@pytest.mark.parametrize(
    ("content", "headers", "status", "error"),
    [
        (b"x" * 40_000, {"content-type": "application/json"}, 413, "request_too_large"),
        (b"{", {"content-type": "application/json"}, 400, "invalid_request"),
        (b"[1, 2]", {"content-type": "application/json"}, 400, "invalid_request"),
        (b"\xff\xfe", {"content-type": "application/x-www-form-urlencoded"}, 400, "invalid_request"),
        (b"a=b", {"content-type": "text/plain"}, 415, "unsupported_media_type"),
        (
            b"a=b",
            {"content-type": "application/x-www-form-urlencoded", "content-length": "1e3"},
            400,
            "invalid_request",
        ),
        (b"[" * 100_000, {"content-type": "application/json"}, 413, "request_too_large"),
    ],
)
async def test_oversized_and_malformed_bodies(
    client: httpx.AsyncClient, content: bytes, headers: dict[str, str], status: int, error: str
) -> None:
    answer = await client.post("/agegate/report", content=content, headers=headers)
    assert answer.status_code == status and answer.json() == {"error": error}


async def test_a_lone_surrogate_is_a_bad_field(client: httpx.AsyncClient) -> None:
    raw = b'{"account": "\\ud800", "relation": "parent", "contact": "mum@example.net"}'
    answer = await client.post("/agegate/report", content=raw, headers={"content-type": "application/json"})
    assert answer.status_code == 400 and answer.json()["field"] == "account"


async def test_a_streamed_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b"details=" + b"x" * 1024

    answer = await client.post(
        "/agegate/report", content=chunks(), headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert answer.status_code == 413


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.dictionaries(st.sampled_from(["account", "relation", "contact", "details", "x"]),
                        st.one_of(st.text(max_size=40), st.integers(), st.none(), st.booleans(),
                                  st.lists(st.text(max_size=3), max_size=2)), max_size=5),
    ),
    json_body=st.booleans(),
)  # fmt: skip
def test_no_body_is_a_500(body: bytes | dict[str, Any], json_body: bool) -> None:
    gate = AgeGate(keys=Keyring.generate("prop"), store=MemoryStore())
    gate.reports.limit = ReportLimit(burst=10_000, per_hour=10_000, per_account=10_000)
    app = AgeGateMiddleware(Starlette(), gate=gate, secure_cookies=False)

    async def post() -> int:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
            if isinstance(body, dict):
                answer = await (
                    http.post("/agegate/report", json=body)
                    if json_body
                    else http.post("/agegate/report", data={k: str(v) for k, v in body.items()})
                )
            else:
                kind = "application/json" if json_body else "application/x-www-form-urlencoded"
                answer = await http.post("/agegate/report", content=body, headers={"content-type": kind})
        return answer.status_code

    assert asyncio.run(post()) in (202, 400)


async def test_the_rate_limit_keeps_no_address_and_answers_429(
    client: httpx.AsyncClient, gate: AgeGate
) -> None:
    clock = FakeClock()
    gate.reports.limit = ReportLimit(burst=3, per_hour=60, per_account=2, clock=clock)
    accounts = [f"kid{n}@example.org" for n in range(4)]
    # One account at most twice an hour …
    assert [
        (await client.post("/agegate/report", json={**GOOD, "account": accounts[0]})).status_code
        for _ in range(3)
    ] == [202, 202, 429]
    # … and everyone together at most the burst, then the refill rate.
    assert (await client.post("/agegate/report", json={**GOOD, "account": accounts[1]})).status_code == 202
    refused = await client.post("/agegate/report", json={**GOOD, "account": accounts[2]})
    assert refused.status_code == 429 and refused.json() == {"error": "rate_limited"}
    assert refused.headers["retry-after"] == "60"
    page = await client.post("/agegate/report", data={**GOOD, "account": accounts[2]}, headers=HTML)
    assert page.status_code == 429 and "try again in a few minutes" in page.text
    clock.now += 60
    assert (await client.post("/agegate/report", json={**GOOD, "account": accounts[2]})).status_code == 202
    assert len(await stored(gate)) == 4
    # What the limit keeps: counts under keyed hashes of accounts; no address, no account.
    kept = repr(vars(gate.reports.limit)) + repr(gate.reports.limit._accounts)
    assert "127.0.0.1" not in kept and "testclient" not in kept and "kid" not in kept


async def test_other_methods_are_405(client: httpx.AsyncClient) -> None:
    answer = await client.put("/agegate/report", json=GOOD)
    assert answer.status_code == 405 and answer.headers["allow"] == "GET, HEAD, POST"


async def test_an_under_age_visitor_can_still_report(client: httpx.AsyncClient) -> None:
    assert (await client.post("/agegate", json={"birth_date": "2020-01-01"})).json() == {
        "outcome": "under_age"
    }
    assert (await client.post("/agegate/report", json=GOOD)).status_code == 202


async def test_logs_name_the_reference_only(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answer = await client.post("/agegate/report", json=GOOD)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert answer.json()["reference"] in logged
    for value in GOOD.values():
        if value != "parent":
            assert value not in logged


@pytest.fixture
def under_root(gate: AgeGate) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(
            app=AgeGateMiddleware(Starlette(), gate=gate, secure_cookies=False), root_path="/shop"
        ),
        base_url=BASE,
    )


async def test_under_a_root_path_the_links_keep_it(under_root: httpx.AsyncClient) -> None:
    async with under_root as http:
        page = await http.get("/agegate/report", headers=HTML)
        assert 'action="/shop/agegate/report"' in page.text
        sent = await http.post("/agegate/report", data=GOOD, headers=HTML)
        assert sent.headers["location"].startswith("/shop/agegate/report?ref=R-")


class BrokenStore(MemoryStore):
    async def create_report(self, report: Any) -> None:
        raise StoreError("the SQLite database 'x' is damaged")


class DownStore(MemoryStore):
    async def create_report(self, report: Any) -> None:
        raise StoreUnavailable()


@pytest.mark.parametrize("store_class", [BrokenStore, DownStore])
async def test_a_store_that_cannot_take_the_report_is_503_never_500(store_class: type[MemoryStore]) -> None:
    gate = AgeGate(keys=Keyring.generate("down"), store=store_class())
    app = AgeGateMiddleware(Starlette(), gate=gate, secure_cookies=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        answer = await http.post("/agegate/report", json=GOOD)
        assert answer.status_code == 503 and answer.json() == {"error": "store_unavailable"}
        assert "retry-after" in answer.headers
        page = await http.post("/agegate/report", data=GOOD, headers=HTML)
        assert page.status_code == 503 and "try again shortly" in page.text
