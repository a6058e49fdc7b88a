"""Behind a proxy: public origins, a trusted forwarded host, a refusal page that leads back, and
a real uvicorn run the way docs/integration.md's "Behind a proxy" section says."""

from __future__ import annotations

import itertools
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers import uvicorn_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route

from agegate import AgeGate, AgeGateMiddleware, ConfigurationError, Keyring
from agegate.asgi.origin import OriginRule, cross_origin
from agegate.stores import MemoryStore

pytestmark = pytest.mark.anyio

JSON_ADULT = {"birth_date": "1990-01-01"}
#: What a proxy that does not forward Host sends on: its upstream's address.
UPSTREAM = {"host": "127.0.0.1:8000"}
#: A browser without Sec-Fetch-Site (Safari before 16.4, older WebViews) posting from the site.
SAFARI = {**UPSTREAM, "origin": "https://shop.example"}


def gated(**options: Any) -> AgeGateMiddleware:
    async def checkout(request: Request) -> Response:
        return PlainTextResponse("ordered")

    gate = AgeGate(keys=Keyring.generate(), store=MemoryStore())
    return AgeGateMiddleware(
        Starlette(routes=[Route("/checkout", checkout, methods=["POST"])]), gate=gate, **options
    )


def client(app: Any, base_url: str = "http://127.0.0.1:8000") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


async def test_a_proxy_that_drops_the_host_no_longer_dead_ends_a_same_site_post() -> None:
    async with client(gated()) as c:  # the old behaviour, still the default
        assert (await c.post("/agegate", json=JSON_ADULT, headers=SAFARI)).status_code == 403
    async with client(gated(origins=["https://shop.example", "https://www.shop.example:8443"])) as c:
        response = await c.post("/agegate", json=JSON_ADULT, headers=SAFARI)
        assert response.status_code == 200 and response.json() == {"outcome": "allowed"}
        other = {**UPSTREAM, "origin": "https://WWW.shop.example:8443"}
        assert (await c.post("/agegate", json=JSON_ADULT, headers=other)).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {**UPSTREAM, "origin": "https://evil.example"},
        {**UPSTREAM, "origin": "https://shop.example.evil.example"},
        {**UPSTREAM, "origin": "http://shop.example"},  # another scheme is another origin
        {**UPSTREAM, "origin": "https://shop.example:444"},
        {**UPSTREAM, "origin": "null"},
        {**SAFARI, "sec-fetch-site": "cross-site"},  # the browser's own verdict still decides
        {**SAFARI, "sec-fetch-site": "same-site"},
    ],
)
async def test_public_origins_let_no_other_site_in(headers: dict[str, str]) -> None:
    async with client(gated(origins=["https://shop.example"], trust_forwarded_host=True)) as c:
        response = await c.post("/agegate", json={"birth_date": "2020-01-01"}, headers=headers)
        assert response.status_code == 403 and "set-cookie" not in response.headers


async def test_the_forwarded_host_counts_only_when_trusted() -> None:
    forwarded = {**UPSTREAM, "x-forwarded-host": "shop.example:8443", "origin": "https://shop.example:8443"}
    async with client(gated(), base_url="https://127.0.0.1:8000") as c:
        assert (await c.post("/agegate", json=JSON_ADULT, headers=forwarded)).status_code == 403
    async with client(gated(trust_forwarded_host=True), base_url="https://127.0.0.1:8000") as c:
        assert (await c.post("/agegate", json=JSON_ADULT, headers=forwarded)).status_code == 200
        # The first value is the client-facing proxy's; a default port is the same origin.
        chained = {
            **forwarded,
            "x-forwarded-host": "shop.example:443, inner.local",
            "origin": "https://shop.example",
        }
        assert (await c.post("/agegate", json=JSON_ADULT, headers=chained)).status_code == 200
        spoofed = {**forwarded, "x-forwarded-host": "inner.local, shop.example:8443"}
        assert (await c.post("/agegate", json=JSON_ADULT, headers=spoofed)).status_code == 403


async def test_the_refusal_page_leads_back_to_the_screen() -> None:
    async def home(request: Request) -> Response:
        return PlainTextResponse("home")

    shop = gated()
    app = Starlette(routes=[Mount("/shop", app=shop), Route("/", home)])
    async with client(app, base_url="https://shop.example") as c:
        headers = {"accept": "text/html", "origin": "https://elsewhere.example"}
        refused = await c.post("/shop/agegate", data={"birth_year": "1990"}, headers=headers)
        assert refused.status_code == 403 and "set-cookie" not in refused.headers
        assert '<a class="button" href="/shop/agegate">' in refused.text
        # Following the link shows the screen, and posting it from there works.
        form = await c.get("/shop/agegate", headers={"accept": "text/html"})
        assert form.status_code == 200 and 'action="/shop/agegate"' in form.text
        same = {"accept": "text/html", "origin": "https://shop.example"}
        posted = await c.post("/shop/agegate", data={"birth_year": "1990"}, headers=same)
        assert posted.status_code == 303 and posted.headers["location"] == "/shop/"


async def test_signup_paths_follow_the_same_origin_rule() -> None:
    """The cross-site rule of signup paths is the screen's: public origins and the trusted
    forwarded host count there too, and its refusal page leads back to the screen."""
    from agegate import signup_form

    gate = AgeGate(keys=Keyring.generate(), store=MemoryStore())

    async def signup(request: Request) -> Response:
        await signup_form(request, gate, subject="acct-1")
        return PlainTextResponse("welcome", status_code=201)

    def app(**options: Any) -> Starlette:
        inner = AgeGateMiddleware(
            Starlette(routes=[Route("/signup", signup, methods=["POST"])]),
            gate=gate,
            signup_paths=["/signup"],
            **options,
        )
        return Starlette(routes=[Mount("/shop", app=inner)])

    form = {"birth_date": "1990-01-01"}
    async with client(app()) as c:
        refused = await c.post("/shop/signup", data=form, headers={**SAFARI, "accept": "text/html"})
        assert refused.status_code == 403 and '<a class="button" href="/shop/agegate">' in refused.text
    async with client(app(origins=["https://shop.example"])) as c:
        assert (await c.post("/shop/signup", data=form, headers=SAFARI)).status_code == 201
        evil = {**UPSTREAM, "origin": "https://evil.example"}
        assert (await c.post("/shop/signup", data=form, headers=evil)).status_code == 403
    forwarded = {**SAFARI, "x-forwarded-host": "shop.example"}
    async with client(app(trust_forwarded_host=True), base_url="https://127.0.0.1:8000") as c:
        assert (await c.post("/shop/signup", data=form, headers=forwarded)).status_code == 201


@pytest.mark.parametrize(
    "bad",
    [
        "https://shop.example/",
        "https://shop.example/shop",
        "https://shop.example?x",
        "https://user@shop.example",
        "shop.example",
        "ftp://shop.example",
        "https://",
        "https://shop.example:0",
        "https://shop.example:99999",
        "https://bücher.example",  # browsers send punycode: name it so
        "https://shop example",
        "*",
        5,
    ],
)
def test_bad_origins_are_configuration_errors(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="origin"):
        gated(origins=[bad])


@pytest.mark.parametrize("bad", ["https://shop.example", b"https://shop.example", 5])
def test_origins_must_be_a_list(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="origins"):
        gated(origins=bad)
    with pytest.raises(ConfigurationError, match="trust_forwarded_host"):
        gated(trust_forwarded_host="yes")


def test_cross_origin_keeps_its_two_argument_form() -> None:
    scope = {"type": "http", "scheme": "https", "headers": [], "server": ("shop.example", 443)}
    assert not cross_origin(scope, {b"origin": b"https://shop.example", b"host": b"shop.example"})
    assert cross_origin(scope, {b"origin": b"https://shop.example", b"host": b"127.0.0.1:8000"})
    rule = OriginRule(["https://shop.example"])
    assert not cross_origin(scope, {b"origin": b"https://shop.example", b"host": b"127.0.0.1:8000"}, rule)
    assert not rule.cross_origin(scope, {b"origin": b"https://shop.example", b"host": b"127.0.0.1:8000"})


# -- real uvicorn, configured as docs/integration.md says -----------------------------------------


@pytest.fixture
def uvicorn_behind_proxy() -> Iterator[int]:
    """The gated app under uvicorn with --proxy-headers, --forwarded-allow-ips 127.0.0.1 and
    --root-path /shop, as behind docs/integration.md's nginx (which strips /shop and sets the headers)."""
    with uvicorn_thread(
        gated(trust_forwarded_host=True),
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
        root_path="/shop",
        access_log=False,
        log_level="warning",
    ) as port:
        yield port


def raw_post(port: int, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
    """One request as nginx would pass it on: bytes on a socket, no client-side rewriting."""
    lines = [f"POST {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    lines += [f"content-length: {len(body)}", "connection: close", "", ""]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall("\r\n".join(lines).encode() + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head.decode("latin-1") + "\n\n" + rest.decode("utf-8", "replace")


def test_real_uvicorn_behind_a_proxy_that_sends_its_upstream_host(uvicorn_behind_proxy: int) -> None:
    port = uvicorn_behind_proxy
    proxied = {
        "host": f"127.0.0.1:{port}",  # nginx's default: the upstream, not the browser's host
        "x-forwarded-proto": "https",
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-host": "shop.example:8443",
        "origin": "https://shop.example:8443",
        "content-type": "application/json",
        "accept": "text/html",
    }
    body = json.dumps(JSON_ADULT).encode()
    status, text = raw_post(port, "/agegate", proxied, body)
    assert status == 200, text
    assert "__Host-agegate-" in text and "; Secure" in text
    status, text = raw_post(port, "/agegate", {**proxied, "origin": "https://evil.example"}, body)
    assert status == 403 and 'href="/shop/agegate"' in text
    status, text = raw_post(port, "/checkout", {**proxied, "content-type": "text/plain"}, b"x")
    assert status == 428 and 'href="/shop/agegate?next=/shop/checkout"' in text


# -- docs/integration.md's "Behind a proxy" section, as written -------------------------------------

PAGE = Path(__file__).resolve().parent.parent / "docs" / "integration.md"


def proxy_section() -> str:
    return PAGE.read_text(encoding="utf-8").split("## Behind a proxy", 1)[1].split("\n## ", 1)[0]


async def test_readme_origins_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (block,) = re.findall(r"```python\n(.*?)```", proxy_section(), re.DOTALL)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGEGATE_SECRET_KEYS", Keyring.generate("readme").to_string())
    namespace: dict[str, Any] = {}
    exec(compile(block, "docs/integration.md (Behind a proxy)", "exec"), namespace)
    app, gate = namespace["app"], namespace["gate"]
    async with gate, client(app) as c:  # Host: 127.0.0.1:8000, as a proxy that drops it sends
        response = await c.post("/agegate", json=JSON_ADULT, headers=SAFARI)
        assert response.status_code == 200 and response.json() == {"outcome": "allowed"}
        forged = {**SAFARI, "x-forwarded-host": "evil.example", "origin": "https://evil.example"}
        assert (await c.post("/agegate", json=JSON_ADULT, headers=forged)).status_code == 403


def test_readme_uvicorn_command_is_the_tested_configuration() -> None:
    (command,) = re.findall(r"```sh\n(.*?)```", proxy_section(), re.DOTALL)
    words = command.replace("\\\n", " ").split()
    assert words[:2] == ["uvicorn", "examples.starlette_app:app"]
    # The options test_real_uvicorn_behind_a_proxy_that_sends_its_upstream_host runs with, and
    # the logging of tests/test_logs.py.
    for option in ("--proxy-headers", "--no-access-log"):
        assert option in words
    pairs = dict(itertools.pairwise(words))
    assert pairs["--forwarded-allow-ips"] == "127.0.0.1" and pairs["--root-path"] == "/shop"
    assert pairs["--log-level"] == "warning"
    (nginx,) = re.findall(r"```nginx\n(.*?)```", proxy_section(), re.DOTALL)
    assert "proxy_set_header Host $http_host;" in nginx
