"""The middleware's ``signal=``: a client that posts its platform's age signal is gated the same
way as a browser that answered the screen, and the lower age of cookie, account and signal wins."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from agegate import AgeGate, AgeGateMiddleware, AgePolicy, AgeSignal, ConfigurationError, Keyring
from agegate.asgi.cookie import cookie_name
from agegate.decisions import SCOPE_KEY
from agegate.stores import MemoryStore

pytestmark = pytest.mark.anyio

KEYS = Keyring.generate("s1")
COOKIE = cookie_name(KEYS, secure=False)
SIGNALS = {
    "none": None,
    "under": {"userStatus": "SUPERVISED", "ageLower": 0, "ageUpper": 12},
    "allowed": {"userStatus": "VERIFIED"},
    "straddles": {"userStatus": "DECLARED", "ageLower": 10, "ageUpper": 15},
}


def header_signal(scope: Any) -> AgeSignal | None:
    """The app's signal function: the Play result the mobile client sends in a header."""
    for name, value in scope["headers"]:
        if name == b"x-age-signal":
            return AgeSignal.from_google_play(json.loads(value))
    return None


def header_account(scope: Any) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-account":
            return str(value.decode())
    return None


class App:
    def __init__(self, gate: AgeGate, **options: Any) -> None:
        self.calls: list[Any] = []
        inner = Starlette(
            routes=[
                Route("/{path:path}", self.endpoint, methods=["GET", "POST"]),
                WebSocketRoute("/ws", self.socket),
            ]
        )
        options.setdefault("signal", header_signal)
        self.asgi = AgeGateMiddleware(inner, gate=gate, secure_cookies=False, **options)

    async def endpoint(self, request: Request) -> Response:
        self.calls.append(request.scope.get(SCOPE_KEY))
        return PlainTextResponse("ok")

    async def socket(self, websocket: WebSocket) -> None:
        self.calls.append("ws")
        await websocket.accept()
        await websocket.close()

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.asgi), base_url="http://shop.test")


def new_gate() -> AgeGate:
    return AgeGate(keys=KEYS, store=MemoryStore(), policy=AgePolicy(min_age=13))


def cookie_for(gate: AgeGate, outcome: str) -> dict[str, str]:
    now = int(time.time())
    token = gate.sealer.seal(outcome, gate.policy.name, issued_at=now, expires_at=now + 3600)  # type: ignore[arg-type]
    return {"cookie": f"{COOKIE}={token}"}


def expected(cookie: str, account: str, signal: str) -> int:
    """The lower-wins rule, by hand: any under-age input refuses; else any allowed one passes."""
    said = {cookie, account, {"under": "under_age", "allowed": "allowed"}.get(signal, "none")}
    if "under_age" in said:
        return 403
    return 200 if "allowed" in said else 428


@pytest.mark.parametrize("cookie", ["none", "allowed", "under_age"])
@pytest.mark.parametrize("account", ["unknown", "allowed", "under_age"])
@pytest.mark.parametrize("signal", list(SIGNALS))
async def test_the_lower_age_wins_across_cookie_attestation_and_signal(
    cookie: str, account: str, signal: str
) -> None:
    gate = new_gate()
    app = App(gate, subject=header_account)
    headers = {"x-account": "acct-1", "accept": "application/json"}
    if cookie != "none":
        headers.update(cookie_for(gate, cookie))
    if account != "unknown":
        await gate.record("acct-1", account)  # type: ignore[arg-type]
    if SIGNALS[signal] is not None:
        headers["x-age-signal"] = json.dumps(SIGNALS[signal])
    async with app.client() as client:
        response = await client.post("/orders", headers=headers, content=b"{}")
    want = expected(cookie, account, signal)
    assert response.status_code == want, (cookie, account, signal, response.text)
    if want == 403:
        assert response.json() == {"error": "age_restricted"} and app.calls == []
    elif want == 428:
        assert response.json()["error"] == "age_screen_required" and app.calls == []
    else:
        assert app.calls[0].outcome == "allowed"
    # An under-age signal is actual knowledge: the account is recorded under age.
    if signal == "under":
        assert await gate.status_of("acct-1") == "under_age"


async def test_a_mobile_client_is_gated_like_a_browser() -> None:
    gate = new_gate()
    app = App(gate)
    async with app.client() as client:
        adult = await client.post("/orders", headers={"x-age-signal": json.dumps(SIGNALS["allowed"])})
        child = await client.post("/orders", headers={"x-age-signal": json.dumps(SIGNALS["under"])})
        unsure = await client.post("/orders", headers={"x-age-signal": json.dumps(SIGNALS["straddles"])})
        reading = await client.get("/orders", headers={"x-age-signal": json.dumps(SIGNALS["under"])})
    assert adult.status_code == 200 and app.calls[0].allowed and app.calls[0].policy == "min-age-13"
    assert child.status_code == 403 and child.json() == {"error": "age_restricted"}
    assert unsure.status_code == 428  # screened as today
    assert reading.status_code == 200  # reading stays open
    assert len(app.calls) == 2


async def test_an_async_signal_function_counts_the_same() -> None:
    async def later(scope: Any) -> AgeSignal | None:
        return header_signal(scope)

    app = App(new_gate(), signal=later)
    async with app.client() as client:
        child = await client.post("/x", headers={"x-age-signal": json.dumps(SIGNALS["under"])})
        adult = await client.post("/x", headers={"x-age-signal": json.dumps(SIGNALS["allowed"])})
    assert (child.status_code, adult.status_code) == (403, 200)


def _raises(scope: Any) -> AgeSignal | None:
    raise RuntimeError("boom")


def _wrong_type(scope: Any) -> Any:
    return {"lower": 18}


async def _wrong_type_async(scope: Any) -> Any:
    return 18


@pytest.mark.parametrize(
    "func", [_raises, _wrong_type, _wrong_type_async, header_signal], ids=["raises", "dict", "int", "bad"]
)
async def test_a_signal_that_cannot_be_read_fails_closed(
    func: Callable[[Any], Any] | Callable[[Any], Awaitable[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    gate = new_gate()
    app = App(gate, signal=func)
    # Even with an allowed cookie: a signal that cannot be read gives no allowed result.
    headers = {**cookie_for(gate, "allowed"), "x-age-signal": '{"userStatus": "ADULT"}'}
    with caplog.at_level(logging.ERROR, logger="agegate.asgi"):
        async with app.client() as client:
            response = await client.post("/orders", headers=headers)
    assert response.status_code == 400 and response.json() == {"error": "invalid_age_signal"}
    assert app.calls == []
    if func is not header_signal:
        assert "signal function failed" in caplog.text
    assert "ADULT" not in caplog.text and "lower" not in caplog.text


async def test_a_websocket_with_an_under_age_signal_is_closed() -> None:
    app = App(new_gate())
    sent: list[Any] = []

    async def receive() -> Any:
        return {"type": "websocket.connect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": "/ws",
        "raw_path": b"/ws",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"x-age-signal", json.dumps(SIGNALS["under"]).encode())],
        "scheme": "ws",
        "server": ("shop.test", 80),
    }
    await app.asgi(scope, receive, send)
    assert sent[-1] == {"type": "websocket.close", "code": 1008, "reason": "age_restricted"}
    assert app.calls == []


async def test_an_under_age_signal_is_recorded_once_and_listed() -> None:
    gate = new_gate()
    app = App(gate, subject=header_account)
    headers = {"x-account": "acct-9", "x-age-signal": json.dumps(SIGNALS["under"])}
    before = gate._store.revision()
    async with app.client() as client:
        for _ in range(5):
            assert (await client.post("/orders", headers=headers)).status_code == 403
    assert await gate.status_of("acct-9") == "under_age"
    assert [f.subject for f in await gate.knowledge.flags()] == ["acct-9"]
    assert gate._store.revision() == before + 1  # one write, not one per request


def _subject_raises(scope: Any) -> str | None:
    raise KeyError("acct-9")


@pytest.mark.parametrize(
    "subject",
    [lambda scope: " acct-9", lambda scope: 42, _subject_raises],
    ids=["refused id", "not a string", "raises"],
)
async def test_an_under_age_signal_with_a_wrong_subject_is_refused_and_logged(
    subject: Callable[[Any], Any], caplog: pytest.LogCaptureFixture
) -> None:
    # subject= gives what the gate cannot record against: the request is still refused (403,
    # not a 500), nothing is recorded, and the operator is told which function is wrong.
    gate = new_gate()
    app = App(gate, subject=subject)
    headers = {"x-age-signal": json.dumps(SIGNALS["under"])}
    with caplog.at_level(logging.ERROR, logger="agegate.asgi"):
        async with app.client() as client:
            assert (await client.post("/orders", headers=headers)).status_code == 403
    assert app.calls == [] and await gate.knowledge.flags() == []
    assert "subject=" in caplog.text or "could not record" in caplog.text
    assert "acct-9" not in caplog.text


def test_signal_must_be_callable() -> None:
    with pytest.raises(ConfigurationError, match="signal"):
        AgeGateMiddleware(Starlette(), gate=new_gate(), signal="x-age-signal")  # type: ignore[arg-type]


async def test_in_mode_all_a_signal_gates_reads_too() -> None:
    app = App(new_gate(), mode="all")
    async with app.client() as client:
        child = await client.get("/page", headers={"x-age-signal": json.dumps(SIGNALS["under"])})
        adult = await client.get("/page", headers={"x-age-signal": json.dumps(SIGNALS["allowed"])})
        unsure = await client.get("/page", headers={"x-age-signal": json.dumps(SIGNALS["straddles"])})
    assert (child.status_code, adult.status_code, unsure.status_code) == (403, 200, 428)
    assert len(app.calls) == 1 and app.calls[0].allowed


async def test_the_region_sets_the_age_a_signal_is_measured_against() -> None:
    from agegate import region_from_header

    gate = new_gate()
    app = App(gate, subject=header_account, region=region_from_header("cf-ipcountry"))
    teen = {"x-age-signal": json.dumps({"userStatus": "SUPERVISED", "ageLower": 13, "ageUpper": 15})}
    async with app.client() as client:
        us = await client.post("/orders", headers={**teen, "cf-ipcountry": "US"})
        de = await client.post("/orders", headers={**teen, "cf-ipcountry": "DE", "x-account": "acct-de"})
    assert (us.status_code, de.status_code) == (200, 403)
    assert app.calls[0].policy == "coppa-13"
    assert await gate.status_of("acct-de") == "under_age"
