"""The middleware while the store cannot answer: a request that needs it gets
``503 {"error": "store_unavailable"}`` with ``Retry-After`` (HTML for browsers), within the
gate's ``store_timeout``; the app is not called; the screen and reads keep working.

First in process over a store that stalls on demand, then over HTTP through real uvicorn with a
real PostgreSQL behind a TCP proxy that the test cuts and restores.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from raw_asgi import http_scope, send_through
from servers import uvicorn_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from tcp_proxy import TCPProxy
from test_postgres_store import schema, url
from test_store_outage import proxy, through
from test_store_timeout import StallingStore

from agegate import AgeGate, AgeGateMiddleware, Keyring, StoreUnavailable

__all__ = ["proxy", "schema", "url"]  # fixtures, used by name
ADULT = {"birth_year": "1988", "birth_month": "7", "birth_day": "9"}
CHILD = {"birth_year": str(time.gmtime().tm_year - 9), "birth_month": "5", "birth_day": "2"}
HTML = {"accept": "text/html"}
GUARD = 5.0  # a hang guard, not a measurement


class Calls:
    """The app behind the gate; counts the requests that reached it."""

    def __init__(self) -> None:
        self.count = 0

    async def handle(self, request: Request) -> PlainTextResponse:
        self.count += 1
        return PlainTextResponse(f"{request.method} done")

    async def socket(self, websocket: WebSocket) -> None:
        self.count += 1
        await websocket.accept()
        await websocket.close()


def account(scope: Any) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-account":
            return str(value.decode())
    return None


def gated(gate: AgeGate, calls: Calls, **kwargs: Any) -> Starlette:
    app = Starlette(
        routes=[
            Route("/checkout", calls.handle, methods=["GET", "POST"]),
            WebSocketRoute("/chat", calls.socket),
        ],
        **kwargs,
    )
    app.add_middleware(AgeGateMiddleware, gate=gate, subject=account, secure_cookies=False)
    return app


# -- in process, over a store that stalls ----------------------------------------------------


@pytest.fixture
async def stalled() -> AsyncIterator[tuple[Starlette, Calls, StallingStore]]:
    store = StallingStore()
    gate = AgeGate(keys=Keyring.generate("mw"), store=store, store_timeout=0.05)
    await gate.record("bob", "allowed")
    await gate.record("kid", "under_age")
    calls = Calls()
    store.stalled = True
    yield gated(gate, calls), calls, store
    store.released.set()


@pytest.mark.anyio
async def test_a_request_that_needs_the_store_gets_503_and_the_app_is_not_called(
    stalled: tuple[Starlette, Calls, StallingStore],
) -> None:
    app, calls, _ = stalled
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as c:
        screened = await c.post("/agegate", data={**ADULT, "next": "/checkout"}, headers=HTML)
        assert screened.status_code == 303  # the screen needs no store
        for who in ("bob", "kid"):
            down = await c.post("/checkout", headers={"x-account": who}, content=b"order")
            assert down.status_code == 503, who
            assert down.json() == {"error": "store_unavailable"}
            assert down.headers["retry-after"] == "5"
            assert down.headers["cache-control"] == "no-store"
        page = await c.post("/checkout", headers={"x-account": "bob", **HTML})
        assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
        assert "try again" in page.text and page.headers["retry-after"] == "5"
        assert calls.count == 0
        # Reads keep working; so does a visitor who is not logged in.
        assert (await c.get("/checkout", headers={"x-account": "bob"})).status_code == 200
        assert (await c.post("/checkout")).status_code == 200
        assert calls.count == 2
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as child:
        await child.post("/agegate", data=CHILD)
        # A refusal the browser already carries needs no store either.
        refused = await child.post("/checkout", headers={"x-account": "bob"})
        assert refused.status_code == 403 and refused.json() == {"error": "age_restricted"}
    assert calls.count == 2


@pytest.mark.anyio
async def test_a_websocket_that_needs_the_store_is_closed_try_again_later(
    stalled: tuple[Starlette, Calls, StallingStore],
) -> None:
    app, calls, _ = stalled
    sent: list[Any] = []
    messages = [{"type": "websocket.connect"}]

    async def receive() -> Any:
        return messages.pop(0) if messages else await asyncio.Event().wait()

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": "/chat",
        "raw_path": b"/chat",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"shop.test"), (b"x-account", b"bob")],
        "server": ("shop.test", 80),
        "client": ("127.0.0.1", 5000),
        "subprotocols": [],
    }
    async with asyncio.timeout(GUARD):
        await app(scope, receive, send)
    assert sent == [
        {"type": "websocket.accept"},
        {"type": "websocket.close", "code": 1013, "reason": "store_unavailable"},
    ]
    assert calls.count == 0


# -- over HTTP: uvicorn, PostgreSQL, a proxy cut and restored -----------------------------------


def within_guard(client: httpx.Client, *args: Any, **kwargs: Any) -> httpx.Response:
    return client.request(*args, **kwargs, timeout=GUARD)


@pytest.mark.postgres
def test_over_http_during_a_cut_503_then_service_returns(url: str, proxy: TCPProxy) -> None:
    keys = Keyring.generate("mw-pg")

    async def prepare() -> None:
        async with AgeGate(keys=keys, store=url) as direct:  # not through the proxy
            for who in ("alice", "bob"):
                await direct.record(who, "allowed")
            await direct.record("kid", "under_age")

    asyncio.run(prepare())
    gate = AgeGate(keys=keys, store=through(url, proxy))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with gate:
            yield

    calls = Calls()
    served = uvicorn_thread(gated(gate, calls, lifespan=lifespan), lifespan="on", log_level="error")
    with served as port, httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
        screened = within_guard(c, "POST", "/agegate", data=ADULT)
        assert screened.json() == {"outcome": "allowed"}
        assert within_guard(c, "POST", "/checkout", headers={"x-account": "alice"}).status_code == 200
        assert within_guard(c, "POST", "/checkout", headers={"x-account": "kid"}).status_code == 403
        assert calls.count == 1

        proxy.cut(hang=True)
        for who in ("bob", "kid"):
            down = within_guard(c, "POST", "/checkout", headers={"x-account": who})
            assert down.status_code == 503 and down.json() == {"error": "store_unavailable"}
            assert down.headers["retry-after"] == "5"
        page = within_guard(c, "PUT", "/checkout", headers={"x-account": "bob", **HTML})
        assert page.status_code == 503 and "try again" in page.text
        assert calls.count == 1
        assert within_guard(c, "GET", "/checkout", headers={"x-account": "bob"}).status_code == 200
        assert within_guard(c, "GET", "/agegate").status_code == 200
        assert within_guard(c, "POST", "/agegate", data=ADULT).json() == {"outcome": "allowed"}

        proxy.restore()
        deadline = time.monotonic() + GUARD
        while (back := within_guard(c, "POST", "/checkout", headers={"x-account": "bob"})).status_code == 503:
            assert time.monotonic() < deadline, "service did not return in time"
            time.sleep(0.05)
        assert back.status_code == 200
        assert within_guard(c, "POST", "/checkout", headers={"x-account": "kid"}).status_code == 403


@pytest.mark.anyio
async def test_a_keyring_that_does_not_fit_the_store_is_a_503_not_a_500(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """An app that never opened its store at start meets the refusal on the first request that
    needs the store: refused like an outage (the app not called), and logged for the operator."""
    store = f"sqlite:///{tmp_path / 'gate.sqlite3'}"
    async with AgeGate(keys=Keyring.generate("live"), store=store) as first:
        await first.record("bob-1234", "allowed")
    gate = AgeGate(keys=Keyring.generate("other"), store=store)  # opened lazily, by the request
    calls = Calls()
    transport = httpx.ASGITransport(app=gated(gate, calls))
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as c:
        refused = await c.post("/checkout", headers={"x-account": "bob-1234"}, content=b"order")
        assert refused.status_code == 503 and refused.json() == {"error": "store_unavailable"}
        assert refused.headers["retry-after"] == "60"
        assert (await c.get("/checkout")).status_code == 200  # reads keep working
    assert calls.count == 1
    logged = "\n".join(record.getMessage() for record in caplog.records if record.name == "agegate.asgi")
    assert "live" in logged and "other" in logged and "bob-1234" not in logged


@pytest.mark.anyio
async def test_a_head_request_that_needs_the_store_gets_503_headers_without_a_body() -> None:
    store = StallingStore()
    store.failing = StoreUnavailable("the store is down")
    gate = AgeGate(keys=Keyring.generate("head"), store=store, store_timeout=0.05)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the app must not be called")

    middleware = AgeGateMiddleware(app, gate=gate, mode="all", subject=lambda scope: "bob")
    got = await send_through(middleware, http_scope("GET", "/catalogue"))
    head = await send_through(middleware, http_scope("HEAD", "/catalogue"))
    assert got[0]["status"] == head[0]["status"] == 503
    assert dict(head[0]["headers"]) == dict(got[0]["headers"])  # Content-Length: the GET's body
    assert got[1]["body"] and head[1]["body"] == b""
