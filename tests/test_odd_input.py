"""Odd input: absurd ``Content-Length`` values, text that is not Unicode, control characters.

Each answer is a clear 4xx before anything is stored, never an exception out of the middleware.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from raw_asgi import http_scope, send_through
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agegate import AgeGate, AgeGateMiddleware, InvalidSignupForm, UnderAgeError, signup_form
from agegate.asgi.forms import MAX_SCREEN_BODY, FormRefused, is_text, read_screen_body
from agegate.signup import signup_fields

pytestmark = pytest.mark.anyio

#: Strings no form field may hold, and the JSON text that carries each.
NOT_TEXT = ["\ud800", "a\udfffb", "\udbff\udbff", "x\x00y", "\x1b[2J", "\x7f", "\x0b"]


async def call(app: Any, scope: dict[str, Any], body: bytes = b"") -> tuple[int, bytes]:
    """One raw ASGI request, headers exactly as given (no client recomputes them)."""
    sent = await send_through(app, scope, body)
    return int(sent[0]["status"]), b"".join(m.get("body", b"") for m in sent[1:])


# -- Content-Length ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "status", "error"),
    [
        (b"9" * 5000, 413, "request_too_large"),  # int() of it raised ValueError: a 500
        (b"1" + b"0" * 20, 413, "request_too_large"),
        (b"0" * 5000 + b"28", 200, None),  # leading zeros: still the real length
        (b"\xd9\xa3", 400, "invalid_request"),  # an Arabic-Indic digit is no ASCII digit
        (b"\xc2\xb2", 400, "invalid_request"),  # "²"
        (b"-1", 400, "invalid_request"),
        (b"", 400, "invalid_request"),
    ],
)
async def test_screen_content_length_odd_values(
    gate: AgeGate, declared: bytes, status: int, error: str | None
) -> None:
    app = AgeGateMiddleware(Response("app"), gate=gate)
    body = b'{"birth_date": "1990-01-01"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", declared)]
    got, answer = await call(app, http_scope("POST", "/agegate", headers), body)
    assert got == status
    assert json.loads(answer) == ({"error": error} if error else {"outcome": "allowed"})


@settings(max_examples=200, deadline=None)
@example(declared=b"9" * 5000)
@given(declared=st.binary(max_size=40) | st.text("0123456789", max_size=6000).map(str.encode))
def test_any_content_length_is_an_answer_never_an_exception(declared: bytes) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"birth_year=1990", "more_body": False}

    async def read() -> None:
        try:
            fields, _, _ = await read_screen_body("", declared, receive, "/")
        except FormRefused as refused:
            assert refused.status in (400, 413)
            digits = declared.lstrip(b"0")
            if declared.isdigit():
                assert refused.status == 413 and (len(digits) > 9 or int(digits) > MAX_SCREEN_BODY)
        else:
            assert declared.isdigit() and int(declared.lstrip(b"0") or b"0") <= MAX_SCREEN_BODY
            assert fields == {"birth_year": "1990"}

    anyio.run(read)


# -- text that is not text --------------------------------------------------------------------


@pytest.mark.parametrize("bad", NOT_TEXT)
async def test_screen_refuses_json_that_is_not_text(gate: AgeGate, bad: str) -> None:
    app = AgeGateMiddleware(Response("app"), gate=gate)
    for body in ({"birth_date": "1990-01-01", "note": bad}, {"birth_date": f"1990-01-01{bad}"}, {bad: "1"}):
        raw = json.dumps(body).encode()  # ensure_ascii: "\ud800" travels as an escape
        got, answer = await call(
            app, http_scope("POST", "/agegate", [(b"content-type", b"application/json")]), raw
        )
        assert (got, json.loads(answer)) == (400, {"error": "invalid_request"})


def test_tabs_and_line_breaks_are_text() -> None:
    assert is_text("two\tlines\r\nof text: ünïcödé, 𝄞, 中文")
    assert not any(is_text(bad) for bad in NOT_TEXT)


@given(st.text())
def test_is_text_is_exactly_utf8_without_controls(value: str) -> None:
    try:
        value.encode("utf-8")
        encodes = True
    except UnicodeEncodeError:
        encodes = False
    controls = any((ord(c) < 32 and c not in "\t\r\n") or c == "\x7f" for c in value)
    assert is_text(value) == (encodes and not controls)


def signup_app(gate: AgeGate, created: list[dict[str, str]]) -> Starlette:
    async def signup(request: Request) -> Response:
        try:
            fields = await signup_form(
                request, gate, subject=lambda f: f["username"], identifier_fields=("email",)
            )
        except InvalidSignupForm as exc:
            return JSONResponse({"error": exc.code}, status_code=exc.status_code)
        except UnderAgeError:
            return JSONResponse({"error": "age_restricted"}, status_code=403)
        created.append(fields)  # what the app would store
        return JSONResponse({"created": True}, status_code=201)

    app = Starlette(routes=[Route("/signup", signup, methods=["POST"])])
    app.add_middleware(AgeGateMiddleware, gate=gate, signup_paths=["/signup"])
    return app


@pytest.mark.parametrize("bad", NOT_TEXT)
async def test_signup_refuses_a_form_that_is_not_text_before_storing(gate: AgeGate, bad: str) -> None:
    created: list[dict[str, str]] = []
    transport = httpx.ASGITransport(app=signup_app(gate, created))
    async with httpx.AsyncClient(transport=transport, base_url="https://shop.example") as client:
        for i, form in enumerate(
            [
                {"email": f"{bad}@example.com"},
                {"name": bad},
                {bad: "x"},
            ]
        ):
            username = f"user{i}"
            raw = json.dumps({"username": username, "birth_date": "1990-04-23", **form})
            response = await client.post("/signup", content=raw, headers={"content-type": "application/json"})
            assert response.status_code == 400 and response.json() == {"error": "malformed"}
            assert "set-cookie" not in response.headers
            assert await gate.status_of(username) == "unknown"
            encoded = "&".join(f"{k}={v}" for k, v in {"username": username, **form}.items())
            if "\x00" in bad or "\x1b" in bad:  # urlencoded forms carry controls, never surrogates
                response = await client.post(
                    "/signup",
                    content=encoded.replace("\x00", "%00").replace("\x1b", "%1B") + "&birth_date=1990-04-23",
                    headers={"content-type": "application/x-www-form-urlencoded"},
                )
                assert response.status_code == 400 and response.json() == {"error": "malformed"}
        # Surrogates sent as UTF-8 bytes are no UTF-8 at all.
        response = await client.post(
            "/signup",
            content=b"username=u&birth_date=1990-04-23&email=%ED%A0%80%40example.com",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 400
        good = await client.post(
            "/signup", json={"username": "ok", "birth_date": "1990-04-23", "email": "zoë@example.com"}
        )
        assert good.status_code == 201
    assert created == [{"username": "ok", "email": "zoë@example.com"}]


async def test_signup_fields_checks_forms_the_app_read_itself(gate: AgeGate) -> None:
    request = Request(http_scope("POST", "/signup", []))
    with pytest.raises(InvalidSignupForm) as caught:
        await signup_fields(
            request, gate, {"birth_date": "1990-04-23", "email": "\ud800@x.example"}, subject="a"
        )
    assert caught.value.code == "malformed" and caught.value.status_code == 400
    assert "\ud800" not in str(caught.value)
    assert await gate.status_of("a") == "unknown"
