"""``AgeGateMiddleware(..., mode="all")``: the whole service behind the screen (issue 13, part 1).

Reads of protected paths need a screen result too; exempt paths, ``OPTIONS`` and the screen stay
open; the path rules read every reading of a path, as for writes.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from test_middleware import HTML, Probe, http_scope, sealed

from agegate import AgeGate, AgeGateMiddleware, ConfigurationError, Keyring, StoreUnavailable
from agegate.asgi.cookie import cookie_name
from agegate.decisions import SCOPE_KEY

pytestmark = pytest.mark.anyio

KEYS = Keyring.generate("all")
COOKIE = cookie_name(KEYS)
JSON = {"accept": "application/json"}
ADULT = {"birth_year": "1990", "birth_month": "3", "birth_day": "4"}
CHILD = {"birth_year": str(time.gmtime().tm_year - 8), "birth_month": "1", "birth_day": "1"}
#: docs/integration.md's exempt list for a whole-service gate.
EXEMPT = ["/static/*", "/favicon.ico", "/robots.txt", "/healthz", "/privacy", "/terms"]
PROTECTED = ["/", "/products", "/products/kite", "/account", "/api/orders"]
OPEN_PATHS = [
    "/static/site.css",
    "/favicon.ico",
    "/robots.txt",
    "/healthz",
    "/privacy",
    "/terms",
]
#: Served by the gate itself (the report form): open to everyone, the app is not called.
GATE_PAGES = ["/agegate/report"]


@pytest.fixture
def keyring() -> Keyring:
    return KEYS  # COOKIE is named after these keys


class Site:
    """Records what reached the app, and the decision it was handed."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.decisions: list[Any] = []

    async def endpoint(self, request: Request) -> Response:
        self.calls.append((request.method, request.url.path))
        self.decisions.append(request.scope.get(SCOPE_KEY))
        return PlainTextResponse(f"page {request.url.path}")


def site_app(gate: AgeGate, site: Site, **options: Any) -> Starlette:
    methods = ["GET", "HEAD", "OPTIONS", "POST"]
    app = Starlette(routes=[Route("/{path:path}", site.endpoint, methods=methods)])
    options = {"mode": "all", "exempt": EXEMPT, "signup_paths": ["/signup"], **options}
    app.add_middleware(AgeGateMiddleware, gate=gate, **options)
    return app


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://shop.example")


def with_cookie(gate: AgeGate, outcome: str, headers: dict[str, str], policy: str = "") -> dict[str, str]:
    return {**headers, "cookie": f"{COOKIE}={sealed(gate, outcome, policy=policy)}"}


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["everything", "ALL", "Writes", "", None, 1, ("all",)])
async def test_a_bad_mode_is_a_configuration_error(gate: AgeGate, mode: Any) -> None:
    with pytest.raises(ConfigurationError, match="mode"):
        AgeGateMiddleware(Probe().app, gate=gate, mode=mode)


@pytest.mark.parametrize("options", [{}, {"mode": "writes"}])
async def test_writes_is_the_default_and_leaves_reading_open(gate: AgeGate, options: dict[str, Any]) -> None:
    site = Site()
    app = Starlette(routes=[Route("/{path:path}", site.endpoint)])
    app.add_middleware(AgeGateMiddleware, gate=gate, exempt=EXEMPT, **options)
    async with client_for(app) as c:
        for headers in (HTML, JSON, with_cookie(gate, "under_age", HTML)):
            assert (await c.get("/products", headers=headers)).status_code == 200
    assert AgeGateMiddleware(app, gate=gate, **options).mode == "writes"


# -- no result yet ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", PROTECTED)
async def test_a_first_visit_from_a_browser_is_sent_to_the_screen(gate: AgeGate, path: str) -> None:
    site = Site()
    async with client_for(site_app(gate, site)) as c:
        response = await c.get(path, headers=HTML)
    assert response.status_code == 303
    assert response.headers["location"] == ("/agegate" if path == "/" else f"/agegate?next={path}")
    assert response.headers["cache-control"] == "no-store" and "Cookie" in response.headers["vary"]
    assert site.calls == []


async def test_an_adult_lands_back_on_the_page_with_its_query(gate: AgeGate) -> None:
    site = Site()
    async with client_for(site_app(gate, site)) as c:
        first = await c.get("/products/kite?colour=red&size=2", headers=HTML)
        assert first.status_code == 303
        screen = await c.get(first.headers["location"], headers=HTML)
        assert 'name="next" value="/products/kite?colour=red&amp;size=2"' in screen.text
        answered = await c.post(
            "/agegate", data={**ADULT, "next": "/products/kite?colour=red&size=2"}, headers=HTML
        )
        assert (
            answered.status_code == 303 and answered.headers["location"] == "/products/kite?colour=red&size=2"
        )
        page = await c.get(answered.headers["location"], headers=HTML)
    assert page.status_code == 200 and page.text == "page /products/kite"
    assert site.decisions[-1].outcome == "allowed"


@pytest.mark.parametrize("path", PROTECTED)
async def test_other_clients_get_428(gate: AgeGate, path: str) -> None:
    site = Site()
    async with client_for(site_app(gate, site)) as c:
        got = await c.get(path, headers=JSON)
        head = await c.head(path, headers=JSON)
        bare = await c.get(path)  # no Accept at all
    assert got.status_code == 428 and got.json() == {"error": "age_screen_required", "screen": "/agegate"}
    assert head.status_code == 428 and head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"]
    assert bare.status_code == 428
    assert site.calls == []


async def test_a_browser_head_request_is_redirected_without_a_body(gate: AgeGate) -> None:
    site = Site()
    async with client_for(site_app(gate, site)) as c:
        response = await c.head("/products", headers=HTML)
    assert response.status_code == 303 and response.headers["location"] == "/agegate?next=/products"
    assert site.calls == []


@pytest.mark.parametrize(
    ("raw", "query", "location"),
    [
        (b"//evil.example/x", b"", "/agegate"),  # never an address on another site
        (b"/\\evil.example", b"", "/agegate"),
        (b"/products", b"q=%0d%0aSet-Cookie:%20x=1", "/agegate?next=/products"),  # a bad query is dropped
        (b"/products", b"q=\xff", "/agegate?next=/products"),
        (b"/products", b"q=%2F%2Fevil", "/agegate?next=/products%3Fq%3D%252F%252Fevil"),
        (b"/caf%C3%A9", b"", "/agegate?next=/caf%25C3%25A9"),  # the address as sent, still encoded
    ],
)
async def test_next_is_the_address_as_sent_and_same_site_only(
    gate: AgeGate, raw: bytes, query: bytes, location: str
) -> None:
    probe = Probe()
    middleware = AgeGateMiddleware(probe.app, gate=gate, mode="all")
    scope = http_scope("GET", raw.decode("latin-1"), [(b"accept", b"text/html")])
    scope.update(raw_path=raw, query_string=query)
    await middleware(scope, probe.receive, probe.send)
    assert probe.status == 303 and not probe.app_called
    headers = dict(probe.sent[0]["headers"])
    assert headers[b"location"].decode("ascii") == location


async def test_under_a_root_path_the_screen_and_next_carry_it(gate: AgeGate) -> None:
    site = Site()
    outer = Starlette(routes=[Mount("/shop", app=site_app(gate, site))])
    async with client_for(outer) as c:
        response = await c.get("/shop/products", headers=HTML)
        api = await c.get("/shop/products", headers=JSON)
    assert response.status_code == 303 and response.headers["location"] == "/shop/agegate?next=/shop/products"
    assert api.status_code == 428 and api.json()["screen"] == "/shop/agegate"


# -- a visitor the screen turned away ----------------------------------------------------------


async def test_a_refused_visitor_gets_the_neutral_403_on_every_protected_page(gate: AgeGate) -> None:
    site = Site()
    async with client_for(site_app(gate, site)) as c:
        posted = await c.post("/agegate", data=CHILD, headers=HTML)
        assert posted.status_code == 303 and posted.headers["location"] == "/agegate"  # post/redirect/get
        refused = await c.get("/agegate", headers=HTML)
        assert refused.status_code == 200 and "isn&#x27;t available to you" in refused.text
        assert "looking around" not in refused.text and "<a " not in refused.text.split("<body")[-1]
        for path in [*PROTECTED, "/signup"]:
            page = await c.get(path, headers=HTML)
            assert page.status_code == 403 and page.text == refused.text
            api = await c.get(path, headers=JSON)
            assert api.status_code == 403 and api.json() == {"error": "age_restricted"}
            head = await c.head(path, headers=HTML)
            assert head.status_code == 403 and head.content == b""
            assert int(head.headers["content-length"]) == len(page.content)
            assert (await c.post(path, headers=HTML)).status_code == 403
        assert site.calls == []
        # The exempt pages stay open, and an answer at the screen is still refused.
        for path in [*OPEN_PATHS, *GATE_PAGES]:
            assert (await c.get(path, headers=HTML)).status_code == 200, path
        report = {"account": "kid@example.org", "relation": "other", "contact": "me@example.org"}
        assert (await c.post("/agegate/report", json=report)).status_code == 202
        again = await c.post("/agegate", data=ADULT, headers=HTML)
        assert again.status_code == 303 and again.headers["location"] == "/agegate"
        assert (await c.get("/agegate", headers=HTML)).text == refused.text
        assert (await c.get("/products", headers=HTML)).status_code == 403


async def test_a_refused_account_is_blocked_on_reads_whatever_its_cookie_says(gate: AgeGate) -> None:
    await gate.record("acct-7", "under_age")
    site = Site()
    app = site_app(gate, site, subject=lambda scope: "acct-7")
    async with client_for(app) as c:
        response = await c.get("/products", headers=with_cookie(gate, "allowed", HTML))
    assert response.status_code == 403 and site.calls == []


async def test_a_logged_in_read_during_a_store_outage_is_refused_not_let_through(
    gate: AgeGate, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unavailable(subject: str, **_: object) -> str:
        raise StoreUnavailable()

    monkeypatch.setattr(gate, "cached_status", unavailable)
    site = Site()
    app = site_app(gate, site, subject=lambda scope: "acct-8")
    async with client_for(app) as c:
        read = await c.get("/products", headers=with_cookie(gate, "allowed", JSON))
        assert read.status_code == 503 and read.json() == {"error": "store_unavailable"}
        assert "retry-after" in read.headers
        # The screen and the exempt pages need no store.
        assert (await c.get("/privacy", headers=HTML)).status_code == 200
        assert (await c.post("/agegate", json={"birth_date": "1980-01-01"})).status_code == 200
    assert site.calls == [("GET", "/privacy")]


# -- what stays open ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", OPEN_PATHS)
async def test_exempt_paths_stay_open_without_a_result(gate: AgeGate, path: str) -> None:
    site = Site()
    async with client_for(site_app(gate, site)) as c:
        assert (await c.get(path, headers=HTML)).status_code == 200
        assert (await c.head(path, headers=JSON)).status_code == 200
    assert site.decisions == [None, None]


async def test_options_and_the_screen_stay_open(gate: AgeGate) -> None:
    site = Site()
    preflight = {"origin": "https://app.example", "access-control-request-method": "POST"}
    async with client_for(site_app(gate, site)) as c:
        for headers in (preflight, with_cookie(gate, "under_age", preflight)):
            assert (await c.options("/api/orders", headers=headers)).status_code == 200
        screen = await c.get("/agegate?next=/products", headers=HTML)
        assert screen.status_code == 200 and 'name="birth_year"' in screen.text
        assert (await c.get("/agegate", headers=JSON)).json()["outcome"] is None
    assert site.calls == [("OPTIONS", "/api/orders")] * 2


async def test_a_signup_form_can_be_read_before_the_screen(gate: AgeGate) -> None:
    site = Site()
    async with client_for(site_app(gate, site)) as c:
        assert (await c.get("/signup", headers=HTML)).status_code == 200
        assert (await c.get("/signup", headers=with_cookie(gate, "allowed", HTML))).status_code == 200
        # Another site may link to the signup page: reading it is no cross-site write.
        cross = {**HTML, "sec-fetch-site": "cross-site"}
        assert (await c.get("/signup", headers=cross)).status_code == 200
    assert site.decisions[0] is None and site.decisions[1].outcome == "allowed"


async def test_an_adults_cookie_opens_every_page_with_the_decision(gate: AgeGate) -> None:
    site = Site()
    async with client_for(site_app(gate, site)) as c:
        for path in PROTECTED:
            response = await c.get(path, headers=with_cookie(gate, "allowed", HTML))
            assert response.status_code == 200
        # An allowed answer under another policy is no answer here.
        other = await c.get("/products", headers=with_cookie(gate, "allowed", HTML, policy="other"))
        assert other.status_code == 303
    assert [d.outcome for d in site.decisions] == ["allowed"] * len(PROTECTED)


# -- odd paths: every reading counts, as for writes --------------------------------------------


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/static/../products", b"/static/../products"),
        ("/static/../products", b"/static/%2e%2e/products"),
        ("/static/../products", b"/static/.%2E/products"),
        ("/privacy/..", b"/privacy/.."),
        ("/privacy/../", b"/privacy/%2E%2E/"),
        ("//products", b"//products"),
        ("/static/x/../../account", b"/static/x/../../account"),
        ("/robots.txt;/../account", b"/robots.txt;/../account"),
        ("/static\\..\\account", b"/static\\..\\account"),
        ("/agegate/../products", b"/agegate/../products"),
        ("/agegate/report/../../account", b"/agegate/report/%2e%2e/%2e%2e/account"),
        ("/healthz/../products", b"/healthz/%2e%2e/products"),
        ("/static/../products", b"/static%2f..%2fproducts"),
    ],
)
async def test_odd_paths_cannot_read_a_protected_page(gate: AgeGate, path: str, raw: bytes) -> None:
    for accept, status in ((b"application/json", 428), (b"text/html", 303)):
        probe = Probe()
        middleware = AgeGateMiddleware(probe.app, gate=gate, mode="all", exempt=EXEMPT)
        scope = http_scope("GET", path, [(b"accept", accept)])
        scope["raw_path"] = raw
        await middleware(scope, probe.receive, probe.send)
        assert probe.status == status and not probe.app_called, (raw, accept)
    under = f"{COOKIE}={sealed(gate, 'under_age')}".encode()
    probe = Probe()
    scope = http_scope("GET", path, [(b"cookie", under)])
    scope["raw_path"] = raw
    await AgeGateMiddleware(probe.app, gate=gate, mode="all", exempt=EXEMPT)(scope, probe.receive, probe.send)
    assert probe.status == 403 and not probe.app_called
    assert json.loads(probe.body) == {"error": "age_restricted"}


@pytest.mark.parametrize(
    "raw",
    [
        b"/static/./site.css",
        b"/static//site.css",
        b"/robots.txt/",
        b"/static/a/../site.css",
        b"/agegate/help",
    ],
)
async def test_odd_spellings_of_an_exempt_path_stay_open(gate: AgeGate, raw: bytes) -> None:
    probe = Probe()
    middleware = AgeGateMiddleware(probe.app, gate=gate, mode="all", exempt=EXEMPT)
    scope = http_scope("GET", raw.decode(), [(b"accept", b"text/html")])
    await middleware(scope, probe.receive, probe.send)
    assert probe.app_called


async def test_protect_limits_what_reads_are_gated(gate: AgeGate) -> None:
    site = Site()
    async with client_for(site_app(gate, site, protect=["/account/*"], exempt=[])) as c:
        assert (await c.get("/products", headers=HTML)).status_code == 200
        assert (await c.get("/account/orders", headers=HTML)).status_code == 303
        assert (await c.get("/account", headers=JSON)).status_code == 428


# -- websockets: as in mode "writes" -----------------------------------------------------------


@pytest.mark.parametrize(("cookie", "code"), [(None, 1008), ("under_age", 1008), ("allowed", None)])
async def test_websockets_are_gated_as_before(gate: AgeGate, cookie: str | None, code: int | None) -> None:
    sent: list[dict[str, Any]] = []
    called: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append(True)

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [] if cookie is None else [(b"cookie", f"{COOKIE}={sealed(gate, cookie)}".encode())]
    scope = {**http_scope("GET", "/ws/chat", headers), "type": "websocket"}
    await AgeGateMiddleware(app, gate=gate, mode="all")(scope, receive, send)
    if code is None:
        assert called and sent == []
    else:
        assert not called and sent[-1]["type"] == "websocket.close" and sent[-1]["code"] == code


# -- docs/integration.md's section, run as written -----------------------------------------------


def readme_example() -> str:
    text = (Path(__file__).resolve().parent.parent / "docs" / "integration.md").read_text(encoding="utf-8")
    section = text.split("## Gating the whole service", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    return block


async def test_the_readme_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGEGATE_SECRET_KEYS", Keyring.generate("readme").to_string())
    namespace: dict[str, Any] = {}
    exec(compile(readme_example(), "docs/integration.md (Gating the whole service)", "exec"), namespace)
    app, gate = namespace["app"], namespace["gate"]
    async with gate, client_for(app) as c:
        assert (await c.get("/products", headers=HTML)).headers["location"] == "/agegate?next=/products"
        assert (await c.get("/products", headers=JSON)).status_code == 428
        for path in EXEMPT:
            assert (await c.get(path.replace("*", "site.css"), headers=HTML)).status_code == 200
        assert (await c.get("/signup", headers=HTML)).status_code == 200
        await c.post("/agegate", json={"birth_date": "1980-05-05"})
        assert (await c.get("/products", headers=HTML)).text == "page /products"
        await c.post("/agegate", data=CHILD)
        assert (await c.get("/products", headers=HTML)).status_code == 403
        assert (await c.get("/privacy", headers=HTML)).status_code == 200
