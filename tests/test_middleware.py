"""The HTTP contract of AgeGateMiddleware, through the real ASGI stack (Starlette + httpx)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from raw_asgi import http_scope
from servers import uvicorn_thread, websocket_events
from starlette.applications import Starlette
from starlette.requests import Request, cookie_parser
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from agegate import AgeGate, AgeGateMiddleware, AgePolicy, ConfigurationError, Keyring, UnderAgeError
from agegate.asgi.cookie import cookie_name, read_cookie
from agegate.asgi.forms import MAX_SCREEN_BODY
from agegate.asgi.paths import safe_next
from agegate.decisions import NOTES_KEY, SCOPE_KEY, Decision
from agegate.signup import read_form
from agegate.stores import MemoryStore

HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
ADULT = {"birth_year": "1990", "birth_month": "3", "birth_day": "4"}
CHILD = {"birth_year": str(time.gmtime().tm_year - 8), "birth_month": "1", "birth_day": "1"}
#: The keys of the ``gate`` fixture, and so the name of its cookie.
KEYS = Keyring.generate("t1")
COOKIE = cookie_name(KEYS)


class Shop:
    """A small app that records every call, so tests can prove it was (not) called."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.scopes: list[Any] = []

    async def endpoint(self, request: Request) -> Response:
        self.calls.append((request.method, request.url.path))
        self.scopes.append(request.scope)
        body = await request.body()
        return PlainTextResponse(f"{request.method} {len(body)}")

    async def signup(self, request: Request) -> Response:
        self.calls.append((request.method, request.url.path))
        form = await read_form(request)  # no python-multipart: the library must not need it
        gate: AgeGate = request.app.state.gate
        try:
            await gate.signup(form, subject=form["account"], scope=request)
        except UnderAgeError:
            return PlainTextResponse("refused", headers={"cache-control": "max-age=60"})
        return PlainTextResponse("welcome")

    async def socket(self, websocket: WebSocket) -> None:
        self.calls.append(("WS", websocket.url.path))
        await websocket.accept()
        await websocket.send_text("hello")
        await websocket.close()


def build(gate: AgeGate, shop: Shop, **options: Any) -> Starlette:
    methods = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]
    app = Starlette(
        routes=[
            Route("/signup", shop.signup, methods=["POST"]),
            Route("/{path:path}", shop.endpoint, methods=methods),
            WebSocketRoute("/ws/{name}", shop.socket),
        ]
    )
    app.state.gate = gate
    app.add_middleware(AgeGateMiddleware, gate=gate, **options)
    return app


@pytest.fixture
def keyring() -> Keyring:
    return KEYS  # COOKIE is named after these keys


@pytest.fixture
def shop() -> Shop:
    return Shop()


def client_for(app: Any, **kw: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://shop.example", **kw)


@pytest.fixture
async def client(gate: AgeGate, shop: Shop) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(build(gate, shop, signup_paths=["/signup"])) as c:
        yield c


def sealed(
    gate: AgeGate, outcome: str, *, ttl: int = 3600, issued: int | None = None, policy: str = ""
) -> str:
    now = int(time.time()) if issued is None else issued
    return gate.sealer.seal(
        outcome,  # type: ignore[arg-type]
        policy or gate.policy.name,
        issued_at=now,
        expires_at=now + ttl,
    )


def jar(value: str, name: str = COOKIE) -> dict[str, str]:
    return {"cookie": f"{name}={value}"}


def attributes(set_cookie: str) -> dict[str, str]:
    parts = [p.strip() for p in set_cookie.split(";")]
    return {p.split("=", 1)[0].lower(): (p.split("=", 1)[1] if "=" in p else "") for p in parts[1:]}


def assert_private(response: httpx.Response) -> None:
    assert response.headers["cache-control"] == "no-store"
    assert "cookie" in response.headers["vary"].lower()


# -- GET /agegate ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_screen_form_is_neutral_and_accessible(client: httpx.AsyncClient) -> None:
    response = await client.get("/agegate?next=/checkout", headers=HTML)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert_private(response)
    page = response.text
    for name in ("birth_year", "birth_month", "birth_day"):
        assert f'name="{name}"' in page
    # Nothing pre-selected or pre-filled, and the cut-off age appears nowhere.
    assert "selected" not in page
    assert re.findall(r'<input[^>]*value="([^"]*)"', page) == ["/checkout"]  # only the hidden next
    assert not re.search(r"\b13\b", page)
    assert "min=" not in page and "max=" not in page
    # A fieldset with a legend; every control has a label.
    assert "<fieldset>" in page and "<legend>" in page
    for control in re.findall(r"<(?:input|select)[^>]*>", page):
        if 'type="hidden"' in control:
            continue
        ident = re.search(r'id="([^"]+)"', control)
        assert ident, control
        assert f'<label for="{ident.group(1)}">' in page
    assert "<script" not in page
    assert 'method="post"' in page and 'action="/agegate"' in page


@pytest.mark.anyio
async def test_screen_never_names_another_policys_cut_off(shop: Shop) -> None:
    gate = AgeGate(keys=Keyring.generate(), store=MemoryStore(), policy=AgePolicy(min_age=16))
    async with client_for(build(gate, shop)) as c:
        page = (await c.get("/agegate", headers=HTML)).text
    assert not re.search(r"\b16\b", page)


@pytest.mark.anyio
async def test_screen_orders_fields_as_the_gate_reads_dates(shop: Shop) -> None:
    gate = AgeGate(keys=Keyring.generate(), store=MemoryStore(), date_order="DMY")
    async with client_for(build(gate, shop)) as c:
        page = (await c.get("/agegate", headers=HTML)).text
    assert page.index('name="birth_day"') < page.index('name="birth_month"') < page.index('name="birth_year"')


@pytest.mark.anyio
async def test_screen_json_and_head_and_other_methods(client: httpx.AsyncClient) -> None:
    response = await client.get("/agegate")
    assert response.json() == {
        "screen": "/agegate",
        "fields": ["birth_year", "birth_month", "birth_day"],
        "outcome": None,
    }
    assert_private(response)
    head = await client.head("/agegate", headers=HTML)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) > 0
    put = await client.put("/agegate", content=b"x")
    assert put.status_code == 405 and put.headers["allow"] == "GET, HEAD, POST"
    assert put.json() == {"error": "method_not_allowed"}
    browser = await client.delete("/agegate", headers=HTML)
    assert browser.status_code == 405 and browser.headers["allow"] == "GET, HEAD, POST"
    assert browser.headers["content-type"].startswith("text/html") and "<h1>" in browser.text


@pytest.mark.anyio
async def test_options_on_the_screen_pass_to_the_app(client: httpx.AsyncClient, shop: Shop) -> None:
    # Like every OPTIONS request (CORS preflights): the app, or a CORS middleware, answers it.
    response = await client.options("/agegate", headers={"access-control-request-method": "POST"})
    assert response.status_code == 200 and response.text == "OPTIONS 0"
    assert shop.calls == [("OPTIONS", "/agegate")]


@pytest.mark.anyio
async def test_pages_allow_the_apps_own_styles_fonts_and_images(gate: AgeGate, shop: Shop) -> None:
    from agegate.asgi.pages import Pages

    async with client_for(build(gate, shop)) as c:
        csp = (await c.get("/agegate", headers=HTML)).headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert "'self'" in directives["style-src"] and "'unsafe-inline'" in directives["style-src"]
    assert directives["font-src"] == "'self'" and "'self'" in directives["img-src"]
    assert directives["frame-ancestors"] == "'none'" and directives["form-action"] == "'self'"
    assert "script-src" not in directives

    custom = "default-src 'none'; style-src https://cdn.example; frame-ancestors 'none'"
    async with client_for(build(gate, Shop(), pages=Pages(csp=custom))) as c:
        for response in (
            await c.get("/agegate", headers=HTML),
            await c.post("/checkout", headers={**HTML, **jar(sealed(gate, "under_age"))}),
            await c.post("/checkout", headers=HTML),
        ):
            assert response.headers["content-security-policy"] == custom
    for bad in ("", "default-src 'none'\r\nSet-Cookie: x=1", "img-src ü.example", 3):
        with pytest.raises(ConfigurationError):
            Pages(csp=bad)  # type: ignore[arg-type]


# -- POST /agegate -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_allowed_form_redirects_to_next_and_sets_sealed_cookie(client: httpx.AsyncClient) -> None:
    response = await client.post("/agegate", data={**ADULT, "next": "/checkout?item=3"}, headers=HTML)
    assert response.status_code == 303
    assert response.headers["location"] == "/checkout?item=3"
    assert_private(response)
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith(f"{COOKIE}=")
    attrs = attributes(set_cookie)
    assert attrs["max-age"] == str(365 * 24 * 3600)
    assert attrs["path"] == "/" and attrs["samesite"] == "Lax"
    assert "httponly" in attrs and "secure" in attrs and "domain" not in attrs
    token = set_cookie.split(";")[0].split("=", 1)[1]
    assert "1990" not in token and "allowed" not in token  # opaque


@pytest.mark.anyio
async def test_under_age_form_gets_kind_page_and_sticky_cookie(
    client: httpx.AsyncClient, gate: AgeGate
) -> None:
    # Post/redirect/get: the refusal is a 303 to the screen's own address, which carries
    # nothing of the outcome; the cookie makes the screen show the refusal there.
    response = await client.post("/agegate", data={**CHILD, "next": "/checkout"}, headers=HTML)
    assert response.status_code == 303 and response.headers["location"] == "/agegate"
    assert_private(response)
    attrs = attributes(response.headers["set-cookie"])
    assert attrs["max-age"] == str(30 * 24 * 3600)
    shown = await client.get("/agegate", headers=HTML)
    assert shown.status_code == 200
    page = shown.text.lower()
    assert "try again" not in page and 'href="/agegate' not in page and 'name="birth_' not in page
    assert not re.search(r"\b13\b", page)
    assert "thank you" not in page and "sorry" not in page  # one neutral message
    # Sticky: an adult date now changes nothing, in HTML or JSON, and sets no new cookie.
    again = await client.post("/agegate", data={**ADULT, "next": "/checkout"}, headers=HTML)
    assert again.status_code == 303 and again.headers["location"] == "/agegate"
    assert "set-cookie" not in again.headers
    assert 'name="birth_' not in (await client.get("/agegate", headers=HTML)).text
    as_json = await client.post("/agegate", json={"birth_date": "1970-01-01"})
    assert as_json.json() == {"outcome": "under_age"} and "set-cookie" not in as_json.headers
    assert (await client.get("/agegate")).json()["outcome"] == "under_age"
    # Without the cookie, the same address is the same neutral form as for everyone.
    client.cookies.clear()
    assert 'name="birth_year"' in (await client.get("/agegate", headers=HTML)).text


@pytest.mark.anyio
async def test_sticky_period_ends_with_the_cookie(gate: AgeGate, shop: Shop) -> None:
    # A cookie issued 31 days ago with the 30-day lifetime has expired: a new answer counts.
    old = sealed(gate, "under_age", issued=int(time.time()) - 31 * 86400, ttl=30 * 86400)
    async with client_for(build(gate, shop)) as c:
        response = await c.post("/agegate", json={"birth_date": "1990-03-04"}, headers=jar(old))
    assert response.json() == {"outcome": "allowed"}


@pytest.mark.anyio
async def test_allowed_can_still_become_under_age(client: httpx.AsyncClient) -> None:
    assert (await client.post("/agegate", json={"birth_date": "1990-03-04"})).json() == {"outcome": "allowed"}
    assert (await client.post("/agegate", json={"birth_date": "2020-01-01"})).json() == {
        "outcome": "under_age"
    }
    assert (await client.post("/checkout")).status_code == 403


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "outcome"),
    [
        ({"birth_date": "1990-03-04"}, "allowed"),
        ({"birth_date": "June 1, 2020"}, "under_age"),
        ({"birth_year": 1990, "birth_month": 3, "birth_day": 4}, "allowed"),
        ({"age": 40}, "allowed"),
    ],
)
async def test_json_screen(client: httpx.AsyncClient, body: dict[str, Any], outcome: str) -> None:
    response = await client.post("/agegate", json=body)
    assert response.status_code == 200
    assert response.json() == {"outcome": outcome}
    assert response.headers["content-type"] == "application/json"
    assert_private(response)
    assert "set-cookie" in response.headers


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("birth_date", "code"),
    [
        ("", "empty"),
        ("next tuesday", "malformed"),
        ("2011-02-30", "impossible"),
        ("2999-01-01", "future"),
        ("1850-01-01", "implausible"),
        ("1" * 65, "too_long"),
    ],
)
async def test_bad_input_json(client: httpx.AsyncClient, birth_date: str, code: str) -> None:
    response = await client.post("/agegate", json={"birth_date": birth_date})
    assert response.status_code == 400
    data = response.json()
    assert data["error"] == "invalid_birth_date" and data["code"] == code and data["message"]
    assert "set-cookie" not in response.headers


@pytest.mark.anyio
async def test_bad_input_form_names_the_error_not_what_was_typed(client: httpx.AsyncClient) -> None:
    # Post/redirect/get (Back and Reload never resend the form): the address names the message
    # and the fields it is about, never what was typed (it would sit in history and logs).
    typed = {"birth_year": '19"><b>9', "birth_month": "2", "birth_day": "30", "next": "/profile"}
    response = await client.post("/agegate", data=typed, headers=HTML)
    assert response.status_code == 303 and "set-cookie" not in response.headers
    assert_private(response)
    location = response.headers["location"]
    assert location == "/agegate?next=/profile&error=year_digits&fields=birth_year"
    shown = await client.get(location, headers=HTML)
    assert shown.status_code == 200
    page = shown.text.split("</style>", 1)[1]
    assert "<b>" not in page and "&lt;b" not in page and 'value="30"' not in page  # nothing typed
    assert "four digits" in page and 'value="/profile"' in page and " selected" not in page
    error_id = re.search(r'<p class="error" id="([^"]+)"', page)
    assert error_id
    controls = [c for c in re.findall(r"<(?:input|select)[^>]*>", page) if "hidden" not in c]
    assert len(controls) == 3
    # Every control points at the message; only the field that is wrong is marked invalid.
    assert all(f'aria-describedby="{error_id.group(1)}"' in c for c in controls)
    invalid = [c for c in controls if 'aria-invalid="true"' in c]
    assert len(invalid) == 1 and 'name="birth_year"' in invalid[0]
    assert "<fieldset>" in page


@pytest.mark.anyio
async def test_a_date_wrong_as_a_whole_marks_the_group(client: httpx.AsyncClient) -> None:
    typed = {"birth_year": "1990", "birth_month": "02", "birth_day": "30"}
    page = (await client.post("/agegate", data=typed, headers=HTML, follow_redirects=True)).text
    assert '<fieldset aria-invalid="true" aria-describedby="agegate-error">' in page
    assert '<select id="agegate-month" name="birth_month" autocomplete="bday-month" aria-describedby=' in page
    assert page.count('aria-invalid="true"') == 1
    assert "That day does not exist in that month" in page


def test_the_form_shows_values_it_is_given_escaped() -> None:
    from agegate.asgi.pages import Pages, ScreenForm

    values = {"birth_year": '19"><b>9', "birth_month": "02", "birth_day": "30"}
    page = Pages().screen(ScreenForm("/agegate", values=values, error="Please check."))
    assert "<b>" not in page and "19&quot;&gt;&lt;b&gt;9" in page
    assert '<option value="2" selected>' in page and 'value="30"' in page  # "02" is February


@pytest.mark.anyio
async def test_an_error_in_the_address_shows_only_known_messages(client: httpx.AsyncClient) -> None:
    forged = await client.get("/agegate?error=<script>&fields=birth_year", headers=HTML)
    assert "<script>" not in forged.text and 'class="error"' not in forged.text
    assert 'aria-invalid="true"' not in forged.text
    allowed = await client.get("/agegate?error=allowed&outcome=allowed", headers=HTML)
    assert 'class="error"' not in allowed.text and "set-cookie" not in allowed.headers


def test_only_the_year_is_required_in_the_markup() -> None:
    from agegate.asgi.pages import Pages, ScreenForm

    page = Pages().screen(ScreenForm("/agegate"))
    required = [c for c in re.findall(r"<(?:input|select)[^>]*>", page) if " required" in c]
    assert len(required) == 1 and 'name="birth_year"' in required[0]


@pytest.mark.anyio
async def test_year_alone_is_a_partial_date_not_an_error(client: httpx.AsyncClient) -> None:
    response = await client.post("/agegate", data={"birth_year": "1990", "birth_month": "", "birth_day": ""})
    assert response.json() == {"outcome": "allowed"}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("content", "content_type", "status", "error"),
    [
        (b"x" * (MAX_SCREEN_BODY + 1), "application/x-www-form-urlencoded", 413, "request_too_large"),
        (b"{nope", "application/json", 400, "invalid_request"),
        (b"[1, 2]", "application/json", 400, "invalid_request"),
        (b'{"birth_date": ["1990"]}', "application/json", 400, "invalid_request"),
        (b"[" * 5000, "application/json", 400, "invalid_request"),
        (b"\xff\xfe", "application/x-www-form-urlencoded", 400, "invalid_request"),
        (b"--b\r\n", "multipart/form-data; boundary=b", 415, "unsupported_media_type"),
        (b"a=1&" * 100, "application/x-www-form-urlencoded", 400, "invalid_request"),
    ],
)
async def test_unreadable_bodies_are_refused_not_500(
    client: httpx.AsyncClient, content: bytes, content_type: str, status: int, error: str
) -> None:
    response = await client.post("/agegate", content=content, headers={"content-type": content_type})
    assert response.status_code == status
    assert response.json() == {"error": error}
    html = await client.post("/agegate", content=content, headers={"content-type": content_type, **HTML})
    assert html.status_code == status and html.headers["content-type"].startswith("text/html")


@pytest.mark.anyio
async def test_cross_site_screen_post_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/agegate", json={"birth_date": "2020-01-01"}, headers={"sec-fetch-site": "cross-site"}
    )
    assert response.status_code == 403 and "set-cookie" not in response.headers


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers",
    [
        {"sec-fetch-site": "same-site"},  # a sibling subdomain
        {"origin": "https://evil.example"},
        {"origin": "https://blog.shop.example"},
        {"origin": "http://shop.example"},  # another scheme is another origin
        {"origin": "https://shop.example:8443"},
        {"origin": "null"},
    ],
)
async def test_another_origin_cannot_mark_a_visitor_under_age(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.post("/agegate", json={"birth_date": "2020-01-01"}, headers=headers)
    assert response.status_code == 403 and "set-cookie" not in response.headers
    assert response.json() == {"error": "cross_site_request"}


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"sec-fetch-site": "same-origin"},
        {"sec-fetch-site": "none"},
        {"origin": "https://shop.example"},
        {"origin": "https://shop.example", "host": "shop.example:443"},
        {"origin": "https://shop.example", "sec-fetch-site": "same-origin"},
    ],
)
async def test_same_origin_screen_posts_work(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.post("/agegate", json={"birth_date": "1990-01-01"}, headers=headers)
    assert response.status_code == 200 and response.json() == {"outcome": "allowed"}


@pytest.mark.anyio
async def test_origin_is_compared_with_the_server_without_a_host_header(gate: AgeGate) -> None:
    middleware = AgeGateMiddleware(Probe().app, gate=gate)
    for origin, status in [(b"https://shop.example", 200), (b"https://evil.example", 403)]:
        probe = Probe()
        headers = [(b"origin", origin), (b"content-type", b"application/json")]

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b'{"birth_date": "1990-01-01"}'}

        await middleware(http_scope("POST", "/agegate", headers), receive, probe.send)
        assert probe.status == status


@pytest.mark.anyio
async def test_screen_body_over_the_limit_without_content_length_is_refused(gate: AgeGate) -> None:
    probe = Probe()
    middleware = AgeGateMiddleware(probe.app, gate=gate)
    chunks = [b"birth_year=1990&x=" + b"a" * 4000, b"b" * 4000, b"c" * 4000, b"never read"]
    read = 0

    async def receive() -> dict[str, Any]:
        nonlocal read
        read += 1
        return {"type": "http.request", "body": chunks[read - 1], "more_body": read < len(chunks)}

    scope = http_scope("POST", "/agegate", [(b"content-type", b"application/x-www-form-urlencoded")])
    await middleware(scope, receive, probe.send)
    assert probe.status == 413 and json.loads(probe.body) == {"error": "request_too_large"}
    assert read == 3  # stopped as soon as the limit was passed


@pytest.mark.anyio
async def test_screen_stores_nothing(gate: AgeGate, client: httpx.AsyncClient) -> None:
    await client.post("/agegate", data=ADULT)
    await client.post("/agegate", data=CHILD)
    store = await gate.store()
    assert isinstance(store, MemoryStore)
    # Only the keys' check values (about the keyring, not about anyone screened) may be there.
    kept = {
        name: value for name, value in vars(store).items() if isinstance(value, dict | list | set) and value
    }
    assert set(kept) <= {"_key_checks"}


# -- next ----------------------------------------------------------------------------------------

EVIL = [
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "https://evil.example",
    "http:/evil.example",
    "javascript:alert(1)",
    "/%2Fevil.example",
    "/%2fevil.example",
    "/%5Cevil.example",
    "/%252F%252Fevil.example",
    "%2F%2Fevil.example",
    "/\tevil",
    "/\r\nLocation: https://evil.example",
    "/%0d%0aSet-Cookie:x=1",
    " /x",
    "/ü",
    "",
    "evil.example",
    "/%ff",  # not UTF-8 once decoded: refused, never a 500
    "/%25ff",
    "/%C0%AF",
]


@pytest.mark.anyio
@pytest.mark.parametrize("target", EVIL)
async def test_open_redirects_stay_on_site(client: httpx.AsyncClient, target: str) -> None:
    response = await client.post("/agegate", data={**ADULT, "next": target}, headers=HTML)
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    form = await client.get("/agegate", params={"next": target}, headers=HTML)
    assert 'name="next" value="/"' in form.text


@pytest.mark.parametrize("target", ["/", "/checkout", "/a/b?c=d&e=%20f#top", "/search?q=%2F"])
def test_same_site_paths_are_kept(target: str) -> None:
    assert safe_next(target) == target


@pytest.mark.anyio
async def test_428_on_a_path_that_is_not_utf8_once_decoded(gate: AgeGate) -> None:
    probe = Probe()
    middleware = AgeGateMiddleware(probe.app, gate=gate)
    scope = http_scope("POST", "/x%ff", [(b"accept", b"text/html")])  # the request was /x%25ff
    scope["raw_path"] = b"/x%25ff"
    await middleware(scope, probe.receive, probe.send)
    assert probe.status == 428 and not probe.app_called
    scope = http_scope("POST", "/x%ff", [(b"accept", b"text/html")])
    del scope["raw_path"]  # optional in ASGI: the decoded path is used, and refused
    probe = Probe()
    await middleware(scope, probe.receive, probe.send)
    assert probe.status == 428 and b'href="/agegate"' in probe.body


@pytest.mark.anyio
async def test_428_comes_back_to_the_address_as_sent(gate: AgeGate, shop: Shop) -> None:
    async with client_for(build(gate, shop)) as c:
        response = await c.post("/a%3Fb", headers=HTML)
        assert response.status_code == 428
        link = re.search(r'href="([^"]+)"', response.text)
        assert link is not None
        form = await c.get(link.group(1).replace("&amp;", "&"), headers=HTML)
        assert 'name="next" value="/a%3Fb"' in form.text  # not "/a?b", another address


# -- unsafe methods on protected paths -------------------------------------------------------


class Probe:
    """A raw ASGI call that records whether the app ran and whether ``receive`` was awaited."""

    def __init__(self, shop_app: Any = None) -> None:
        self.app_called = False
        self.received = 0
        self.sent: list[dict[str, Any]] = []
        self.shop_app = shop_app

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        self.app_called = True
        if self.shop_app is not None:
            await self.shop_app(scope, receive, send)

    async def receive(self) -> dict[str, Any]:
        self.received += 1
        return {"type": "http.request", "body": b"secret=1", "more_body": False}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent[1:])


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_under_age_is_blocked_before_body_and_app(gate: AgeGate, method: str) -> None:
    probe = Probe()
    middleware = AgeGateMiddleware(probe.app, gate=gate)
    cookie = f"other=1; {COOKIE}={sealed(gate, 'under_age')}".encode()
    await middleware(http_scope(method, "/checkout", [(b"cookie", cookie)]), probe.receive, probe.send)
    assert probe.status == 403
    assert not probe.app_called and probe.received == 0
    assert json.loads(probe.body) == {"error": "age_restricted"}
    headers = dict(probe.sent[0]["headers"])
    assert headers[b"cache-control"] == b"no-store" and b"Cookie" in headers[b"vary"]


@pytest.mark.anyio
async def test_blocked_browser_gets_the_kind_page(gate: AgeGate, shop: Shop) -> None:
    async with client_for(build(gate, shop)) as c:
        response = await c.post("/checkout", headers={**HTML, **jar(sealed(gate, "under_age"))})
    assert response.status_code == 403
    assert "text/html" in response.headers["content-type"] and "keep looking around" in response.text
    assert_private(response)
    assert shop.calls == []


@pytest.mark.anyio
async def test_no_result_gets_428_before_body_and_app(gate: AgeGate) -> None:
    probe = Probe()
    middleware = AgeGateMiddleware(probe.app, gate=gate)
    await middleware(http_scope("POST", "/checkout"), probe.receive, probe.send)
    assert probe.status == 428
    assert json.loads(probe.body) == {"error": "age_screen_required", "screen": "/agegate"}
    assert not probe.app_called and probe.received == 0


@pytest.mark.anyio
async def test_428_for_browsers_links_to_the_screen(gate: AgeGate, shop: Shop) -> None:
    async with client_for(build(gate, shop, prefix="/age-check")) as c:
        response = await c.post("/checkout/pay", headers=HTML)
        assert response.status_code == 428
        assert 'href="/age-check?next=/checkout/pay"' in response.text
        assert (await c.post("/checkout/pay")).json()["screen"] == "/age-check"


@pytest.mark.anyio
async def test_allowed_passes_untouched_with_decision(gate: AgeGate, shop: Shop) -> None:
    async with client_for(build(gate, shop)) as c:
        response = await c.put("/profile", content=b"name=Ann", headers=jar(sealed(gate, "allowed")))
    assert response.status_code == 200 and response.text == "PUT 8"
    assert "set-cookie" not in response.headers
    assert shop.scopes[0][SCOPE_KEY] == Decision.of("allowed", gate.policy.name)


@pytest.mark.anyio
async def test_allowed_cookie_of_another_policy_does_not_count(gate: AgeGate, shop: Shop) -> None:
    async with client_for(build(gate, shop)) as c:
        old = sealed(gate, "allowed", policy="min-age-12")
        assert (await c.post("/checkout", headers=jar(old))).status_code == 428
        child = sealed(gate, "under_age", policy="min-age-12")
        assert (await c.post("/checkout", headers=jar(child))).status_code == 403


@pytest.mark.anyio
async def test_large_upload_streams_through_unbuffered(gate: AgeGate) -> None:
    chunk_size, total = 64 * 1024, 10 * 1024 * 1024
    payload = bytes(range(256)) * (total // 256)
    events: list[str] = []
    received = bytearray()
    chunks_seen = 0

    async def receive() -> dict[str, Any]:
        offset = len(events) and sum(1 for e in events if e == "receive") * chunk_size
        events.append("receive")
        piece = payload[offset : offset + chunk_size]
        return {"type": "http.request", "body": piece, "more_body": offset + chunk_size < total}

    async def app(scope: Any, app_receive: Any, send: Any) -> None:
        nonlocal chunks_seen
        assert app_receive is receive  # the original receive: nothing in between
        assert scope[SCOPE_KEY].allowed
        more = True
        while more:
            message = await app_receive()
            received.extend(message["body"])
            chunks_seen += 1
            events.append("app")
            more = message["more_body"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def send(message: dict[str, Any]) -> None:
        pass

    middleware = AgeGateMiddleware(app, gate=gate)
    cookie = f"{COOKIE}={sealed(gate, 'allowed')}".encode()
    await middleware(http_scope("POST", "/upload", [(b"cookie", cookie)]), receive, send)
    assert bytes(received) == payload
    assert chunks_seen == total // chunk_size
    # Each chunk reached the app before the next one was read: no buffering.
    assert events == ["receive", "app"] * chunks_seen


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
async def test_safe_methods_pass_even_under_age(gate: AgeGate, shop: Shop, method: str) -> None:
    async with client_for(build(gate, shop)) as c:
        response = await c.request(method, "/checkout", headers=jar(sealed(gate, "under_age")))
    assert response.status_code == 200
    assert shop.calls == [(method, "/checkout")]
    assert SCOPE_KEY not in shop.scopes[0]  # not even parsed


@pytest.mark.anyio
@pytest.mark.parametrize(
    "cookie",
    [
        "garbage",
        "",
        "A" * 5000,
        "AQ",
        "%%%%",
        "\u00e9t\u00e9",
        "tampered",
        "expired",
        "future",
        "foreign",
    ],
)
async def test_bad_cookies_are_no_result_never_500(gate: AgeGate, shop: Shop, cookie: str) -> None:
    good = sealed(gate, "allowed")
    value = {
        "tampered": good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
        "expired": sealed(gate, "allowed", issued=int(time.time()) - 7200, ttl=3600),
        "future": sealed(gate, "allowed", issued=int(time.time()) + 3600),
        "foreign": AgeGate(keys=Keyring.generate("t1"), store=MemoryStore()).sealer.seal(
            "allowed", gate.policy.name, issued_at=int(time.time()), expires_at=int(time.time()) + 60
        ),
    }.get(cookie, cookie)
    async with client_for(build(gate, shop)) as c:
        c.headers["cookie"] = f"{COOKIE}={value}".encode().decode("latin-1")
        assert (await c.post("/checkout")).status_code == 428
        assert (await c.post("/agegate", json={"birth_date": "1990-01-01"})).status_code == 200
        assert (await c.get("/agegate")).status_code == 200
    assert shop.calls == []


@pytest.mark.anyio
async def test_insecure_cookie_mode_for_local_development(gate: AgeGate, shop: Shop) -> None:
    async with client_for(build(gate, shop, secure_cookies=False)) as c:
        response = await c.post("/agegate", json={"birth_date": "1990-01-01"})
        set_cookie = response.headers["set-cookie"]
        assert set_cookie.startswith(f"{cookie_name(KEYS, secure=False)}=")
        assert "secure" not in attributes(set_cookie)
        assert (await c.post("/checkout")).status_code == 200
        # the secure name is not read in this mode, and vice versa
        c.cookies.clear()
        assert (await c.post("/checkout", headers=jar(sealed(gate, "allowed")))).status_code == 428


# -- path patterns ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_protect_exempt_and_prefix(gate: AgeGate, shop: Shop) -> None:
    app = build(gate, shop, protect=["/checkout/*", "/api/*/orders"], exempt=["/checkout/help"])
    async with client_for(app) as c:
        assert (await c.post("/checkout")).status_code == 428
        assert (await c.post("/checkout/pay/now")).status_code == 428
        assert (await c.post("/api/v2/orders")).status_code == 428
        assert (await c.post("/checkout/help")).status_code == 200
        assert (await c.post("/checkoutx")).status_code == 200
        assert (await c.post("/contact")).status_code == 200
        assert (await c.post("/agegate/anything")).status_code == 200  # the prefix is exempt


@pytest.mark.anyio
@pytest.mark.parametrize(
    "path",
    [
        "//checkout",
        "/checkout//pay",
        "/./checkout",
        "/agegate/../checkout",
        "/agegate/%2E%2E/checkout".replace("%2E", "."),  # as a server decodes it
        "/checkout/help/../pay",
        "/checkout/help/..",
        "/api/v2//orders",
        "/public/../../checkout",
    ],
)
async def test_unnormalised_paths_do_not_slip_past_the_patterns(gate: AgeGate, path: str) -> None:
    probe = Probe()
    middleware = AgeGateMiddleware(
        probe.app, gate=gate, protect=["/checkout/*", "/api/*/orders"], exempt=["/checkout/help"]
    )
    await middleware(http_scope("POST", path), probe.receive, probe.send)
    assert probe.status == 428 and not probe.app_called


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "passes"),
    [
        # Exempt only if every reading is: as sent, these are not the exempt path.
        ("/checkout/help/", True),  # a pattern covers its path with one trailing slash
        ("/checkout/help//", False),
        ("/checkout/help/.", False),
        ("/x/../checkout/help", False),
        ("/checkout/help", True),
        ("/contact/", False),  # a trailing slash is the same page to many routers
        ("/contact//", False),
        ("/contact/.", False),
        ("/contactx/", True),
    ],
)
async def test_normalised_paths_keep_their_patterns(gate: AgeGate, path: str, passes: bool) -> None:
    probe = Probe()
    middleware = AgeGateMiddleware(
        probe.app, gate=gate, protect=["/checkout/*", "/contact"], exempt=["/checkout/help"]
    )
    await middleware(http_scope("POST", path), probe.receive, probe.send)
    assert probe.app_called is passes
    assert probe.sent == [] if passes else probe.status == 428


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("path", ["/agegate/", "/agegate/anything", "/agegate/a/b/c", "/agegate/x.json"])
async def test_everything_under_the_prefix_is_exempt(
    gate: AgeGate, shop: Shop, method: str, path: str
) -> None:
    async with client_for(build(gate, shop)) as c:
        under = jar(sealed(gate, "under_age"))
        response = await c.request(method, path, headers=under)
        assert response.status_code == 200 and shop.calls[-1] == (method, path)
        # only below the prefix: a sibling path is protected as usual
        assert (await c.request(method, "/agegatex", headers=under)).status_code == 403


@pytest.mark.anyio
async def test_root_path_is_respected(gate: AgeGate) -> None:
    probe = Probe()
    middleware = AgeGateMiddleware(probe.app, gate=gate, protect=["/checkout"])
    scope = http_scope("POST", "/shop/checkout")
    scope["root_path"] = "/shop"
    await middleware(scope, probe.receive, probe.send)
    assert probe.status == 428
    assert json.loads(probe.body)["screen"] == "/shop/agegate"


@pytest.mark.anyio
async def test_mounted_under_a_root_path_home_is_the_root(gate: AgeGate, shop: Shop) -> None:
    from starlette.routing import Mount

    outer = Starlette(routes=[Mount("/shop", app=build(gate, shop))])
    async with client_for(outer) as c:
        form = await c.get("/shop/agegate", headers=HTML)
        assert 'action="/shop/agegate"' in form.text and 'name="next" value="/shop/"' in form.text
        allowed = await c.post("/shop/agegate", data=ADULT, headers=HTML)
        assert allowed.status_code == 303 and allowed.headers["location"] == "/shop/"
        refused = await c.post("/shop/agegate", data=CHILD, headers=HTML)
        assert refused.status_code == 303 and refused.headers["location"] == "/shop/agegate"
        refused = await c.get("/shop/agegate", headers=HTML)
        assert 'href="/shop/"' in refused.text and 'href="/"' not in refused.text
        blocked = await c.post("/shop/checkout", headers=HTML)
        assert blocked.status_code == 403 and 'href="/shop/"' in blocked.text


@pytest.mark.parametrize(
    "options",
    [
        {"protect": "/checkout/*"},
        {"exempt": ["checkout"]},
        {"signup_paths": ["/sign up"]},
        {"protect": [3]},
        {"prefix": "agegate"},
        {"prefix": "/agegate/"},
        {"subject": "user"},
        {"secure_cookies": "yes"},
    ],
)
def test_bad_options_are_refused_clearly(options: dict[str, Any]) -> None:
    gate = AgeGate(keys=Keyring.generate(), store=MemoryStore())
    with pytest.raises(ConfigurationError):
        AgeGateMiddleware(Probe().app, gate=gate, **options)


# -- signup paths ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_signup_path_screens_inline_and_sets_sticky_cookie(
    client: httpx.AsyncClient, gate: AgeGate
) -> None:
    response = await client.post("/signup", data={**CHILD, "account": "kid-1"})
    assert response.text == "refused"
    assert_private(response)  # the app's cache-control was replaced
    assert attributes(response.headers["set-cookie"])["max-age"] == str(30 * 24 * 3600)
    assert await gate.status_of("kid-1") == "unknown"  # nothing stored for a child
    assert (await client.post("/checkout")).status_code == 403
    assert (await client.post("/signup", data={**ADULT, "account": "kid-1"})).status_code == 403


@pytest.mark.anyio
async def test_signup_path_allowed_sets_allowed_cookie(client: httpx.AsyncClient, gate: AgeGate) -> None:
    response = await client.post("/signup", data={**ADULT, "account": "acct-9"})
    assert response.text == "welcome"
    assert attributes(response.headers["set-cookie"])["max-age"] == str(365 * 24 * 3600)
    assert await gate.status_of("acct-9") == "allowed"
    assert (await client.post("/checkout")).status_code == 200


@pytest.mark.anyio
async def test_signup_path_without_a_decision_writes_no_cookie(gate: AgeGate) -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope[NOTES_KEY])
        await send({"type": "http.response.start", "status": 204, "headers": [(b"x-app", b"1")]})
        await send({"type": "http.response.body", "body": b""})

    probe = Probe(app)
    middleware = AgeGateMiddleware(probe.app, gate=gate, signup_paths=["/signup"])
    await middleware(http_scope("POST", "/signup"), probe.receive, probe.send)
    assert seen == [[]]
    assert probe.sent[0]["headers"] == [(b"x-app", b"1")]


# -- logged-in accounts ----------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("is_async", [False, True])
async def test_subject_attestation_counts(gate: AgeGate, shop: Shop, is_async: bool) -> None:
    def who(scope: Any) -> str | None:
        for name, value in scope["headers"]:
            if name == b"x-account":
                return str(value.decode())
        return None

    async def who_async(scope: Any) -> str | None:
        return who(scope)

    await gate.signup({"birth_date": "1990-01-01"}, subject="adult")
    await gate.record("child", "under_age")
    app = build(gate, shop, subject=who_async if is_async else who)
    async with client_for(app) as c:
        assert (await c.post("/checkout", headers={"x-account": "adult"})).status_code == 200
        assert (await c.post("/checkout", headers={"x-account": "child"})).status_code == 403
        assert (await c.post("/checkout", headers={"x-account": "nobody"})).status_code == 428
        # an under-age account is blocked even with an allowed cookie in the browser
        allowed = jar(sealed(gate, "allowed"))
        assert (await c.post("/checkout", headers={"x-account": "child", **allowed})).status_code == 403
        # and an under-age browser stays blocked whoever is logged in
        under = jar(sealed(gate, "under_age"))
        assert (await c.post("/checkout", headers={"x-account": "adult", **under})).status_code == 403


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0

    async def get_attestation(self, subject_hashes: Any) -> Any:
        self.lookups += 1
        return await super().get_attestation(subject_hashes)


@pytest.mark.anyio
async def test_subject_lookups_are_cached_and_invalidated_on_record(shop: Shop) -> None:
    store = CountingStore()
    async with AgeGate(keys=Keyring.generate(), store=store, status_cache_ttl=60) as gate:
        await gate.record("acct", "allowed")
        app = build(gate, shop, subject=lambda scope: "acct")
        async with client_for(app) as c:
            for _ in range(5):
                assert (await c.post("/checkout")).status_code == 200
            assert store.lookups == 1
            await gate.record("acct", "under_age")  # reported as a child's: this instance knows now
            assert (await c.post("/checkout")).status_code == 403
            assert store.lookups == 2


@pytest.mark.anyio
async def test_status_cache_expires_and_can_be_disabled(shop: Shop) -> None:
    store = CountingStore()
    async with AgeGate(keys=Keyring.generate(), store=store, status_cache_ttl=0) as gate:
        for _ in range(3):
            assert await gate.cached_status("acct") == "unknown"
        assert store.lookups == 3 and gate.peek_status("acct") is None
    store2 = CountingStore()
    async with AgeGate(keys=Keyring.generate(), store=store2, status_cache_ttl=0.05) as gate:
        await gate.cached_status("acct")
        await gate.cached_status("acct")
        assert store2.lookups == 1
        await anyio.sleep(0.06)
        await gate.cached_status("acct")
        assert store2.lookups == 2
        gate.forget_status()
        await gate.cached_status("acct")
        assert store2.lookups == 3


@pytest.mark.parametrize("ttl", [-1, "5", True, 10_000])
def test_status_cache_ttl_is_validated(ttl: Any) -> None:
    with pytest.raises(ConfigurationError):
        AgeGate(keys=Keyring.generate(), store=MemoryStore(), status_cache_ttl=ttl)


# -- websockets and lifespan --------------------------------------------------------------------


async def websocket(
    middleware: Any, cookie: str | None, first: str = "websocket.connect", account: str = ""
) -> tuple[list[dict[str, Any]], bool, int]:
    """What the middleware sent, whether the app ran and how many messages were read."""
    probe = Probe()
    headers = [(b"cookie", f"{COOKIE}={cookie}".encode())] if cookie else []
    if account:
        headers.append((b"x-account", account.encode()))
    scope = {**http_scope("GET", "/ws/chat", headers), "type": "websocket", "scheme": "wss"}
    del scope["method"]
    app_called = False

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal app_called
        app_called = True
        await receive()
        await send({"type": "websocket.accept"})

    async def receive() -> dict[str, Any]:
        probe.received += 1
        return {"type": first}

    middleware.app = app
    await middleware(scope, receive, probe.send)
    return probe.sent, app_called, probe.received


def closed(reason: str) -> list[dict[str, Any]]:
    # Accepted first: a close before the accept reaches the client as an HTTP 403, not 1008.
    return [{"type": "websocket.accept"}, {"type": "websocket.close", "code": 1008, "reason": reason}]


@pytest.mark.anyio
async def test_websocket_under_age_closed_1008_before_app(gate: AgeGate) -> None:
    middleware = AgeGateMiddleware(Probe().app, gate=gate)
    sent, called, read = await websocket(middleware, sealed(gate, "under_age"))
    assert sent == closed("age_restricted") and not called and read == 1
    sent, called, read = await websocket(middleware, None)
    assert sent == closed("age_screen_required") and not called and read == 1
    sent, called, read = await websocket(middleware, sealed(gate, "allowed"))
    assert sent == [{"type": "websocket.accept"}] and called
    # a client that left before the handshake gets nothing
    sent, called, read = await websocket(middleware, None, first="websocket.disconnect")
    assert sent == [] and not called and read == 1


@pytest.mark.anyio
async def test_websocket_of_an_under_age_account_is_closed(gate: AgeGate) -> None:
    def who(scope: Any) -> str | None:
        return dict(scope["headers"]).get(b"x-account", b"").decode() or None

    await gate.record("kid", "under_age")
    await gate.record("adult", "allowed")
    middleware = AgeGateMiddleware(Probe().app, gate=gate, subject=who)
    sent, called, _ = await websocket(middleware, sealed(gate, "allowed"), account="kid")
    assert sent == closed("age_restricted") and not called
    sent, called, _ = await websocket(middleware, None, account="adult")
    assert sent == [{"type": "websocket.accept"}] and called


def test_websocket_close_code_reaches_a_real_client() -> None:
    """Through uvicorn and a real websocket handshake, not only the ASGI messages."""
    import socket

    from wsproto.events import AcceptConnection, CloseConnection, RejectConnection

    gate = AgeGate(keys=KEYS, store=MemoryStore())  # cookies only: no store call
    with uvicorn_thread(build(gate, Shop()), ws="wsproto", log_level="error") as port:
        for cookie, code in [("under_age", 1008), ("allowed", 1000)]:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                header = (b"cookie", f"{COOKIE}={sealed(gate, cookie)}".encode())
                events = websocket_events(sock, "127.0.0.1", "/ws/chat", [header])
            ends = [e for e in events if isinstance(e, CloseConnection)]
            assert any(isinstance(e, AcceptConnection) for e in events)
            assert not any(isinstance(e, RejectConnection) for e in events)
            assert ends and ends[0].code == code


@pytest.mark.anyio
async def test_lifespan_passes(gate: AgeGate) -> None:
    events: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            events.append(message["type"])
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return

    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return next(incoming)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    await AgeGateMiddleware(app, gate=gate)({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert events == ["lifespan.startup", "lifespan.shutdown"]
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


# -- the cookie scan ----------------------------------------------------------------------------

cookie_text = st.text(alphabet=st.sampled_from('ab_-=; "\\\t,%AQ\xa0\x85' + COOKIE[:4]), max_size=40)


@given(before=cookie_text, value=cookie_text, after=cookie_text)
def test_cookie_scan_agrees_with_starlette(before: str, value: str, after: str) -> None:
    # The name once (the scan's fast path: one chunk read), in another cookie's value, as part
    # of a longer name, around Unicode spaces a latin-1 header can carry, or several times.
    for header in (
        before,
        f"{before}; {COOKIE}={value}; {after}",
        f"{COOKIE}={value}{after}",
        f"{before}{COOKIE}{after}",
        f"x={COOKIE}{value}; {before}",
        f"{before};\t{COOKIE}\xa0={value}",
        f"{before}\xa0{COOKIE} ={value};{COOKIE}{after}={value}",
        f"{COOKIE}={before}; {after}{COOKIE}={value}",
    ):
        assert read_cookie(header, COOKIE) == cookie_parser(header).get(COOKIE)


@given(st.text(alphabet=st.sampled_from('"\\01234789an\n'), max_size=24))
def test_cookie_unquote_is_the_standard_librarys(text: str) -> None:
    # The oracle is the private function Starlette calls; agegate's own copy must agree with it.
    from http.cookies import _unquote  # type: ignore[attr-defined]

    from agegate.asgi.cookie import _unquote as ours

    for value in (text, f'"{text}"'):
        assert ours(value) == _unquote(value)


def test_cookie_scan_survives_what_simplecookie_drops() -> None:
    header = f'bad"cookie=1; {COOKIE}=abc; other=x y'
    assert SimpleCookie(header).get(COOKIE) is None  # the standard library gives up
    assert read_cookie(header, COOKIE) == "abc"


@pytest.mark.anyio
async def test_a_remembered_token_still_expires(gate: AgeGate, monkeypatch: pytest.MonkeyPatch) -> None:
    import agegate.asgi.cookie as module

    probe = Probe()
    middleware = AgeGateMiddleware(probe.app, gate=gate)
    cookie = [(b"cookie", f"{COOKIE}={sealed(gate, 'allowed', ttl=60)}".encode())]
    await middleware(http_scope("POST", "/checkout", cookie), probe.receive, probe.send)
    await middleware(http_scope("POST", "/checkout", cookie), probe.receive, probe.send)
    assert probe.app_called and probe.sent == []  # passed twice (the probe app sends nothing)

    class Later:
        @staticmethod
        def time() -> float:
            return time.time() + 120

    monkeypatch.setattr(module, "time", Later)
    probe = Probe()
    await middleware(http_scope("POST", "/checkout", cookie), probe.receive, probe.send)
    assert probe.status == 428 and not probe.app_called


_PROPERTY_GATE = AgeGate(keys=Keyring.generate("prop"), store=MemoryStore())
_PROPERTY_SCREEN = AgeGateMiddleware(Probe().app, gate=_PROPERTY_GATE)
_field_names = st.sampled_from(["birth_date", "birth_year", "birth_month", "birth_day", "age", "next", "x"])


@given(
    fields=st.dictionaries(_field_names, st.text(max_size=80), max_size=6),
    as_json=st.booleans(),
    html=st.booleans(),
)
def test_any_screen_input_gets_an_answer_never_a_500(
    fields: dict[str, str], as_json: bool, html: bool
) -> None:
    from urllib.parse import urlencode

    body = json.dumps(fields).encode() if as_json else urlencode(fields).encode()
    headers = [(b"content-type", b"application/json" if as_json else b"application/x-www-form-urlencoded")]
    if html:
        headers.append((b"accept", b"text/html"))
    probe = Probe()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    anyio.run(_PROPERTY_SCREEN, http_scope("POST", "/agegate", headers), receive, probe.send)
    assert probe.status in (200, 303, 400)
    if probe.status == 303:
        location = dict(probe.sent[0]["headers"])[b"location"].decode()
        assert location.startswith("/") and not location.startswith(("//", "/\\"))


@pytest.mark.anyio
async def test_an_app_brings_its_own_look(gate: AgeGate, shop: Shop) -> None:
    from agegate.asgi.pages import Pages

    def layout(title: str, body: str, css: str) -> str:
        return (
            f"<!doctype html><title>{title} · Trail Shop</title><style>{css}</style><div id=mine>{body}</div>"
        )

    pages = Pages(css="body{color:teal}", layout=layout)
    async with client_for(build(gate, shop, pages=pages)) as c:
        page = (await c.get("/agegate", headers=HTML)).text
        assert "<div id=mine>" in page and "body{color:teal}" in page and 'name="birth_year"' in page
        refused = await c.post("/agegate", data=CHILD, headers=HTML, follow_redirects=True)
        assert "<div id=mine>" in refused.text and "keep looking around" in refused.text
        # The layout is not told the language: the body carries it (with Babel installed).
        arabic = (await c.get("/agegate", headers={**HTML, "accept-language": "ar"})).text
        assert '<div id=mine><div lang="ar" dir="rtl">' in arabic
        assert '<div id=mine><div lang="en"' not in page  # English needs no mark
    with pytest.raises(ConfigurationError):
        Pages(css="</style><script>alert(1)</script>")
