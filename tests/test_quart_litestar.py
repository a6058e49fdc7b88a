"""Quart and Litestar in-process: the gate is in front under each framework's own test client,
and the subject readers find the logged-in account in each framework's session."""

from __future__ import annotations

from typing import Any

import pytest

from agegate import AgeGate, ConfigurationError, Keyring
from agegate.stores import MemoryStore
from agegate.subjects import session_subject, user_subject

pytestmark = pytest.mark.anyio
ADULT = {"birth_date": "1990-01-01"}


async def test_quart_test_client_goes_through_the_gate() -> None:
    from quart import Quart, session

    from agegate.quart import AgeGate as QuartGate
    from agegate.quart import session_subject as quart_subject

    gate = AgeGate(keys=Keyring.generate(), store=MemoryStore())
    app = Quart(__name__)
    app.secret_key = "s" * 32

    @app.post("/login")
    async def login() -> Any:
        session["user_id"] = "kid-1"
        return {"ok": True}

    @app.post("/orders")
    async def orders() -> Any:
        return {"ok": True}, 201

    extension = QuartGate(app, gate, exempt=["/login"], subject=quart_subject(app), secure_cookies=False)
    assert app.extensions["agegate"] is extension
    async with app.test_app() as test_app:  # runs the lifespan: the gate opens its store
        assert gate._opened
        client = test_app.test_client()
        assert (await client.post("/orders")).status_code == 428
        assert (await client.post("/login")).status_code == 200
        await gate.record("kid-1", "under_age")
        screened = await client.post("/agegate", json=ADULT)
        assert (await screened.get_json()) == {"outcome": "allowed"}
        assert (await client.post("/orders")).status_code == 403  # the session's account counts
    assert not gate._opened


async def test_litestar_plugin_serves_the_screen_and_reads_the_session() -> None:
    from litestar import Litestar, Request, post
    from litestar.middleware.session.client_side import CookieBackendConfig
    from litestar.testing import AsyncTestClient

    from agegate.litestar import AgeGatePlugin

    gate = AgeGate(keys=Keyring.generate(), store=MemoryStore())

    @post("/login", status_code=200)
    async def login(request: Request[Any, Any, Any]) -> dict[str, bool]:
        request.set_session({"user_id": "kid-2"})
        return {"ok": True}

    @post("/orders", status_code=201)
    async def orders() -> dict[str, bool]:
        return {"ok": True}

    sessions = CookieBackendConfig(secret=b"k" * 16, secure=False)
    plugin = AgeGatePlugin(gate, exempt=["/login"], subject=session_subject(), secure_cookies=False)
    app = Litestar(route_handlers=[login, orders], middleware=[sessions.middleware], plugins=[plugin])
    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        assert gate._opened
        assert (await client.get("/agegate", headers={"accept": "text/html"})).status_code == 200
        assert (await client.post("/orders")).status_code == 428
        assert (await client.post("/login")).status_code == 200
        await gate.record("kid-2", "under_age")
        assert (await client.post("/agegate", json=ADULT)).json() == {"outcome": "allowed"}
        assert (await client.post("/orders")).status_code == 403
    assert not gate._opened


def test_litestar_plugin_checks_its_options_at_once() -> None:
    from agegate.litestar import AgeGatePlugin

    gate = AgeGate(keys=Keyring.generate(), store=MemoryStore())
    with pytest.raises(ConfigurationError):
        AgeGatePlugin(gate, prefix="agegate")


class User:
    def __init__(self, id: Any, authenticated: bool = True) -> None:
        self.id = id
        self.is_authenticated = authenticated


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ({"session": {"user_id": "a-1"}}, "a-1"),
        ({"session": {"user_id": 42}}, "42"),
        ({"session": {"user_id": True}}, None),
        ({"session": {}}, None),
        ({"session": None}, None),
    ],
)
def test_session_subject(scope: dict[str, Any], expected: str | None) -> None:
    assert session_subject("user_id")(scope) == expected


@pytest.mark.parametrize(
    ("user", "expected"),
    [(User(7), "7"), (User(7, authenticated=False), None), (None, None), ({"id": "x"}, "x")],
)
def test_user_subject(user: Any, expected: str | None) -> None:
    assert user_subject("id")({"user": user}) == expected


def test_readers_refuse_a_scope_without_what_they_read() -> None:
    # The gate placed outside the session or auth middleware: a 500, never "nobody logged in".
    with pytest.raises(ConfigurationError, match="session"):
        session_subject()({"type": "http"})
    with pytest.raises(ConfigurationError, match="authentication"):
        user_subject()({"type": "http"})
