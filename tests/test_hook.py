"""The framework-neutral signup hook: gate.signup(scope=…), its sync variant, and the signups
that must fail before anything is stored because the middleware would not hear of them."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agegate import AgeGate, AgeGateMiddleware, ConfigurationError, Keyring, UnderAgeError, signup_form
from agegate.asgi.cookie import UNDER_AGE, GateCookie
from agegate.decisions import NOTES_KEY, SCOPE_KEY
from agegate.hook import SCOPE_ATTR, scope_of
from agegate.stores import MemoryStore
from agegate.syncloop import loop_of

pytestmark = pytest.mark.anyio
ADULT = {"birth_date": "1990-01-01"}
CHILD = {"birth_date": "2020-01-01"}


def app_with(gate: AgeGate, endpoint: Any, **options: Any) -> Starlette:
    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=["POST"])])
    app.add_middleware(AgeGateMiddleware, gate=gate, secure_cookies=False, **options)
    return app


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop.example")


def outcome(gate: AgeGate, response: httpx.Response) -> object:
    cookie = GateCookie(gate, secure=False)
    value = response.cookies.get(cookie.name)
    return cookie.result(f"{cookie.name}={value}") if value else None


@pytest.mark.parametrize("how", ["request", "scope"])
async def test_signup_with_scope_sets_the_cookie(gate: AgeGate, how: str) -> None:
    async def signup(request: Request) -> Response:
        form = dict(await request.json())
        target = request if how == "request" else request.scope
        try:
            await gate.signup(form, subject=form.pop("account"), scope=target)
        except UnderAgeError:
            return Response(status_code=403)
        return Response(status_code=201)

    async with client(app_with(gate, signup, signup_paths=["/signup"])) as c:
        made = await c.post("/signup", json={"account": "a", **ADULT})
        assert made.status_code == 201 and outcome(gate, made) is not None
    async with client(app_with(gate, signup, signup_paths=["/signup"])) as c:
        refused = await c.post("/signup", json={"account": "k", **CHILD})
        assert refused.status_code == 403 and outcome(gate, refused) is UNDER_AGE
        again = await c.post("/signup", json={"account": "k2", **ADULT})
        assert again.status_code == 403  # sticky: the app is not even called


async def test_a_signup_without_scope_inside_a_signup_request_fails_before_storing(gate: AgeGate) -> None:
    errors: list[Exception] = []

    async def signup(request: Request) -> Response:
        try:
            await gate.signup(ADULT, subject="forgot-scope")
        except ConfigurationError as exc:
            errors.append(exc)
            return Response(status_code=500)
        return Response(status_code=201)

    async with client(app_with(gate, signup, signup_paths=["/signup"])) as c:
        assert (await c.post("/signup")).status_code == 500
    assert "scope=request" in str(errors[0])
    assert await gate.status_of("forgot-scope") == "unknown"


async def test_a_signup_on_a_path_that_is_not_a_signup_path_fails_before_storing(gate: AgeGate) -> None:
    errors: list[Exception] = []

    async def signup(request: Request) -> Response:
        try:
            await gate.signup(ADULT, subject="wrong-path", scope=request)
        except ConfigurationError as exc:
            errors.append(exc)
            return Response(status_code=500)
        return Response(status_code=201)

    # Exempt (passed without a look) and protected (passed with an allowed cookie) alike.
    async with client(app_with(gate, signup, exempt=["/register"])) as c:
        assert (await c.post("/register")).status_code == 500
    assert "signup_paths" in str(errors[0])
    assert await gate.status_of("wrong-path") == "unknown"


async def test_signups_outside_requests_and_without_a_middleware_still_work(gate: AgeGate) -> None:
    assert (await gate.signup(ADULT, subject="script")).outcome == "allowed"

    async def signup(request: Request) -> Response:
        await gate.signup(ADULT, subject="bare", scope=request)
        return JSONResponse({"decision": request.scope[SCOPE_KEY].outcome})

    bare = Starlette(routes=[Route("/signup", signup, methods=["POST"])])
    async with client(bare) as c:
        assert (await c.post("/signup")).json() == {"decision": "allowed"}


async def test_two_nested_gates_each_know_their_own_signup_paths() -> None:
    inner_gate = AgeGate(keys=Keyring.generate(), store=MemoryStore())
    outer_gate = AgeGate(keys=Keyring.generate(), store=MemoryStore())

    async def signup(request: Request) -> Response:
        await outer_gate.signup(ADULT, subject="nested", scope=request)
        return Response(status_code=201)

    inner = app_with(inner_gate, signup, protect=["/forum/*"])
    outer = AgeGateMiddleware(inner, gate=outer_gate, signup_paths=["/signup"], secure_cookies=False)
    async with client(outer) as c:
        made = await c.post("/signup")
        assert made.status_code == 201 and outcome(outer_gate, made) is not None


def test_signup_sync_records_for_the_middleware() -> None:
    gate = AgeGate(keys=Keyring.generate(), store=MemoryStore())
    scope: dict[str, Any] = {NOTES_KEY: []}
    attestation = gate.signup_sync(ADULT, subject="sync", scope=scope)
    assert attestation.outcome == "allowed" and scope[NOTES_KEY][0].outcome == "allowed"
    with pytest.raises(UnderAgeError):
        gate.signup_sync(CHILD, subject="sync-kid", scope=scope)
    assert [note.outcome for note in scope[NOTES_KEY]] == ["allowed", "under_age"]
    loop_of(gate).close()


async def test_signup_sync_refuses_to_block_an_event_loop(gate: AgeGate) -> None:
    with pytest.raises(ConfigurationError, match="await"):
        gate.signup_sync(ADULT, subject="x")
    await asyncio.sleep(0)


def test_scope_of_finds_the_scope_or_says_what_it_takes() -> None:
    scope: dict[str, Any] = {"type": "http"}

    class Framework:
        pass

    request = Framework()
    setattr(request, SCOPE_ATTR, scope)
    assert scope_of(scope) is scope and scope_of(request) is scope
    with pytest.raises(ConfigurationError, match="Framework"):
        scope_of(Framework())


async def test_signup_form_refuses_a_request_it_cannot_read_naming_the_neutral_call(gate: AgeGate) -> None:
    class Opaque:
        def __init__(self) -> None:
            self.headers: dict[str, str] = {}

    with pytest.raises(ConfigurationError, match=r"gate\.signup\(fields, subject=\.\.\., scope=request\)"):
        await signup_form(Opaque(), gate, subject="x")


def test_a_forked_worker_gets_a_loop_thread_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    gate = AgeGate(keys=Keyring.generate(), store=MemoryStore())
    first = loop_of(gate)
    assert loop_of(gate) is first
    monkeypatch.setattr(os, "getpid", lambda: first.pid + 1)  # as in a child after fork()
    second = loop_of(gate)
    assert second is not first and second.run(gate.status_of("x")) == "unknown"
    monkeypatch.undo()
    second.close()
    first.close()
