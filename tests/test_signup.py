"""The signup helpers through real HTTP: Starlette and FastAPI apps behind AgeGateMiddleware."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from agegate import (
    AgeGate,
    AgeGateMiddleware,
    InvalidBirthDate,
    InvalidSignupForm,
    Keyring,
    UnderAgeError,
    signup_form,
)
from agegate.asgi.cookie import cookie_name
from agegate.signup import MAX_BODY_BYTES, signup_fields
from agegate.stores import MemoryStore

pytestmark = pytest.mark.anyio

KEYS = Keyring.generate("k1")
COOKIE = cookie_name(KEYS)
ADULT = {"birth_date": "1990-04-23", "email": "grown.up@example.com", "name": "Ada"}
CHILD = {"birth_year": str(datetime.now(UTC).year - 9), "email": "kid@example.com", "name": "Kit"}


def _render(exc: Exception) -> JSONResponse:
    if isinstance(exc, InvalidBirthDate):
        return JSONResponse({"error": "invalid_birth_date", "code": exc.code}, status_code=400)
    if isinstance(exc, InvalidSignupForm):
        return JSONResponse({"error": exc.code}, status_code=exc.status_code)
    assert isinstance(exc, UnderAgeError)
    return JSONResponse({"error": "age_restricted", "reason": exc.reason}, status_code=403)


def starlette_app(gate: AgeGate, *, middleware: bool = True) -> ASGIApp:
    async def signup(request: Request) -> Response:
        try:
            fields = await signup_form(
                request, gate, subject=lambda f: f["username"], identifier_fields=("email",)
            )
        except (InvalidBirthDate, InvalidSignupForm, UnderAgeError) as exc:
            return _render(exc)
        return JSONResponse({"created": fields}, status_code=201)

    async def checkout(request: Request) -> Response:
        return JSONResponse({"paid": True})

    app = Starlette(
        routes=[Route("/signup", signup, methods=["POST"]), Route("/checkout", checkout, methods=["POST"])]
    )
    if middleware:
        app.add_middleware(AgeGateMiddleware, gate=gate, signup_paths=["/signup"])
    return app


def fastapi_app(gate: AgeGate) -> FastAPI:
    app = FastAPI()
    app.add_middleware(AgeGateMiddleware, gate=gate, signup_paths=["/signup"])

    @app.exception_handler(InvalidBirthDate)
    @app.exception_handler(UnderAgeError)
    @app.exception_handler(InvalidSignupForm)
    async def rejected(request: Request, exc: Exception) -> JSONResponse:
        return _render(exc)

    @app.post("/signup", status_code=201)
    async def signup(request: Request) -> dict[str, dict[str, str]]:
        fields = await signup_form(
            request, gate, subject=lambda f: f["username"], identifier_fields=("email",)
        )
        return {"created": fields}

    @app.post("/checkout")
    async def checkout() -> dict[str, bool]:
        return {"paid": True}

    return app


@pytest.fixture
def keyring() -> Keyring:
    return KEYS  # COOKIE is named after these keys


@pytest.fixture(params=["starlette", "fastapi"])
async def client(request: pytest.FixtureRequest, gate: AgeGate) -> AsyncIterator[httpx.AsyncClient]:
    app = starlette_app(gate) if request.param == "starlette" else fastapi_app(gate)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        yield client


def outcome_cookie(gate: AgeGate, response: httpx.Response) -> str | None:
    token = response.cookies.get(COOKIE)
    return None if token is None else gate.sealer.open(token).outcome


async def test_allowed_signup_returns_fields_without_the_birth_date(
    client: httpx.AsyncClient, gate: AgeGate
) -> None:
    response = await client.post("/signup", data={**ADULT, "username": "ada"})
    assert response.status_code == 201, response.text
    assert response.json() == {"created": {"email": ADULT["email"], "name": "Ada", "username": "ada"}}
    assert outcome_cookie(gate, response) == "allowed"
    assert await gate.status_of("ada") == "allowed"
    # The allowed cookie lets the same browser transact.
    assert (await client.post("/checkout")).status_code == 200


async def test_every_birth_field_is_dropped(client: httpx.AsyncClient, gate: AgeGate) -> None:
    form = {"birth_year": "1980", "birth_month": "5", "birth_day": "17", "username": "u1", "plan": "pro"}
    response = await client.post("/signup", data=form)
    assert response.status_code == 201
    assert response.json() == {"created": {"username": "u1", "plan": "pro"}}
    response = await client.post("/signup", data={"age": "40", "username": "u2"})
    assert response.json() == {"created": {"username": "u2"}}


async def test_json_signup(client: httpx.AsyncClient, gate: AgeGate) -> None:
    response = await client.post("/signup", json={"birth_year": 1985, "username": "jay", "email": "j@x.org"})
    assert response.status_code == 201
    assert response.json() == {"created": {"username": "jay", "email": "j@x.org"}}
    assert await gate.status_of("jay") == "allowed"


async def test_under_age_signup_stores_nothing_and_sets_a_sticky_cookie(
    client: httpx.AsyncClient, gate: AgeGate
) -> None:
    store = await gate.store()
    assert isinstance(store, MemoryStore)
    response = await client.post("/signup", data={**CHILD, "username": "kit"})
    assert response.status_code == 403
    assert response.json() == {"error": "age_restricted", "reason": "under_age"}
    assert outcome_cookie(gate, response) == "under_age"
    assert await gate.status_of("kit") == "unknown"
    assert store._attestations == {} and store._blocks == {} and store._jobs == {}
    # The browser stays refused: at checkout, and at signup whatever birth date it sends now.
    assert (await client.post("/checkout")).status_code == 403
    retry = await client.post("/signup", data={**ADULT, "username": "kit2"})
    assert retry.status_code == 403
    assert await gate.status_of("kit2") == "unknown"


async def test_invalid_birth_date_records_nothing(client: httpx.AsyncClient, gate: AgeGate) -> None:
    response = await client.post("/signup", data={"birth_date": "02/30/1990", "username": "x"})
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_birth_date", "code": "impossible"}
    assert COOKIE not in response.cookies
    assert await gate.status_of("x") == "unknown"
    response = await client.post("/signup", data={"username": "x"})
    assert response.json()["code"] == "empty"


async def test_identifiers_of_a_purged_child_are_refused(client: httpx.AsyncClient, gate: AgeGate) -> None:
    store = await gate.store()
    await store.block_identifiers(
        gate.identifier_hashes({"email": "kid@example.com"}), until=datetime.now(UTC) + timedelta(days=1)
    )
    response = await client.post("/signup", data={**ADULT, "email": " Kid@Example.COM ", "username": "k"})
    assert response.status_code == 403
    assert response.json()["reason"] == "blocked"
    assert outcome_cookie(gate, response) == "under_age"
    assert await gate.status_of("k") == "unknown"


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({"content-type": "multipart/form-data; boundary=x"}, b"--x--", 415, "unsupported_media_type"),
        ({"content-type": "text/plain"}, b"birth_date=1990-01-01", 415, "unsupported_media_type"),
        ({}, b"", 415, "unsupported_media_type"),
        ({"content-type": "application/json"}, b"{not json", 400, "malformed"),
        ({"content-type": "application/json"}, b"[1, 2]", 400, "malformed"),
        ({"content-type": "application/json"}, b'{"birth_date": {"y": 1}}', 400, "malformed"),
        ({"content-type": "application/json"}, b'{"birth_date": null}', 400, "malformed"),
        ({"content-type": "application/x-www-form-urlencoded"}, b"birth_date=%ff%fe", 400, "malformed"),
        ({"content-type": "application/x-www-form-urlencoded"}, b"\xff\xfe=1", 400, "malformed"),
        (
            {"content-type": "application/x-www-form-urlencoded"},
            b"&".join(b"f%d=1" % i for i in range(300)),
            400,
            "malformed",
        ),
    ],
)
async def test_unreadable_bodies_are_clear_errors(
    client: httpx.AsyncClient, headers: dict[str, str], body: bytes, status: int, code: str
) -> None:
    response = await client.post("/signup", content=body, headers=headers)
    assert response.status_code == status
    assert response.json() == {"error": code}
    assert COOKIE not in response.cookies


async def test_body_size_is_limited(client: httpx.AsyncClient, gate: AgeGate) -> None:
    big = b"username=u&birth_date=1990-01-01&pad=" + b"a" * MAX_BODY_BYTES
    response = await client.post(
        "/signup", content=big, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 413
    assert response.json() == {"error": "too_large"}

    async def chunks() -> AsyncIterator[bytes]:  # no content-length: the limit still holds
        yield b"username=u&birth_date=1990-01-01&pad="
        for _ in range(MAX_BODY_BYTES // 1024 + 1):
            yield b"a" * 1024

    response = await client.post(
        "/signup", content=chunks(), headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 413
    assert await gate.status_of("u") == "unknown"


async def test_helpers_work_without_the_middleware(gate: AgeGate) -> None:
    transport = httpx.ASGITransport(app=starlette_app(gate, middleware=False))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        response = await client.post("/signup", data={**ADULT, "username": "solo"})
        assert response.status_code == 201
        assert COOKIE not in response.cookies
        assert (await client.post("/signup", data={**CHILD, "username": "kid"})).status_code == 403
    assert await gate.status_of("solo") == "allowed"


async def test_signup_fields_for_apps_that_parse_their_own_forms(gate: AgeGate) -> None:
    seen: list[object] = []

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        request = Request(scope)  # type: ignore[arg-type]
        try:
            fields = await signup_fields(
                request,
                gate,
                {"birth_date": "April 23, 1990", "handle": "h", "tel": "+1 (555) 010-9999"},
                subject="acct-7",
                identifiers=lambda f: {"phone": f["tel"]},
            )
        except UnderAgeError as exc:
            seen.append(exc)
        else:
            seen.append(fields)
        seen.append(scope.get("agegate"))
        response = Response(status_code=204)
        await response(scope, receive, send)  # type: ignore[arg-type]

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        assert (await client.post("/")).status_code == 204
        fields, decision = seen
        assert fields == {"handle": "h", "tel": "+1 (555) 010-9999"}
        assert decision is not None and getattr(decision, "outcome", None) == "allowed"
        store = await gate.store()
        await store.block_identifiers(
            gate.identifier_hashes({"phone": "15550109999"}), until=datetime.now(UTC) + timedelta(days=1)
        )
        seen.clear()
        assert (await client.post("/")).status_code == 204
        error, decision = seen
        assert isinstance(error, UnderAgeError) and getattr(decision, "outcome", None) == "under_age"


async def test_sqlite_signup_over_http(tmp_path: Path) -> None:
    gate = AgeGate(keys=Keyring.generate("k1"), store=f"sqlite:///{tmp_path}/agegate.sqlite3")
    async with gate:
        transport = httpx.ASGITransport(app=fastapi_app(gate))
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
            for i in range(5):
                response = await client.post("/signup", data={**ADULT, "username": f"user-{i}"})
                assert response.status_code == 201
        assert [await gate.status_of(f"user-{i}") for i in range(5)] == ["allowed"] * 5
    raw = (tmp_path / "agegate.sqlite3").read_bytes()
    assert b"user-" not in raw and ADULT["email"].encode() not in raw
    assert json.dumps(ADULT).encode() not in raw
