"""Signup after the screen (issue 13, part 3): a browser that has just passed the screen under the
gate's policy signs up without the birth-date fields; any it sends are still screened."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agegate import (
    AgeGate,
    AgeGateMiddleware,
    Decision,
    InvalidBirthDate,
    Keyring,
    UnderAgeError,
    signup_form,
)
from agegate.asgi.cookie import cookie_name, read_cookie

pytestmark = pytest.mark.anyio

KEYS = Keyring.generate("after")
COOKIE = cookie_name(KEYS)
CHILD_YEAR = str(time.gmtime().tm_year - 8)


@pytest.fixture
def keyring() -> Keyring:
    return KEYS  # COOKIE is named after these keys


class Shop:
    def __init__(self, gate: AgeGate) -> None:
        self.gate = gate
        self.calls = 0
        self.created: list[dict[str, str]] = []

    async def signup(self, request: Request) -> JSONResponse:
        self.calls += 1
        account = f"acct-{self.calls}"
        try:
            fields = await signup_form(request, self.gate, subject=account, identifier_fields=["email"])
        except InvalidBirthDate as exc:
            return JSONResponse({"error": exc.code}, status_code=400)
        except UnderAgeError:
            return JSONResponse({"error": "age_restricted"}, status_code=403)
        self.created.append(fields)
        return JSONResponse({"account": account}, status_code=201)


def client(gate: AgeGate, shop: Shop, mode: str) -> httpx.AsyncClient:
    app = Starlette(routes=[Route("/signup", shop.signup, methods=["POST"])])
    app.add_middleware(AgeGateMiddleware, gate=gate, signup_paths=["/signup"], mode=mode)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://shop.example")


def cookie_of(response: httpx.Response) -> str | None:
    header = response.headers.get("set-cookie")
    return None if header is None else read_cookie(header.partition(";")[0], COOKIE)


def outcome_of(gate: AgeGate, response: httpx.Response) -> str | None:
    token = cookie_of(response)
    return None if token is None else gate.sealer.open(token).outcome


async def screened(c: httpx.AsyncClient, birth_year: str) -> None:
    answer = await c.post("/agegate", json={"birth_date": f"{birth_year}-01-01"})
    assert answer.status_code == 200


@pytest.mark.parametrize("mode", ["writes", "all"])
async def test_after_the_screen_signup_needs_no_birth_date(gate: AgeGate, mode: str) -> None:
    shop = Shop(gate)
    async with client(gate, shop, mode) as c:
        await screened(c, "1990")
        response = await c.post("/signup", data={"email": "ada@example.com"})
    assert response.status_code == 201
    assert shop.created == [{"email": "ada@example.com"}]
    assert await gate.status_of("acct-1") == "allowed"  # the attestation is recorded
    assert outcome_of(gate, response) == "allowed"


@pytest.mark.parametrize(
    "blank", [{}, {"birth_year": "", "birth_month": " ", "birth_day": ""}, {"age": "\t"}]
)
async def test_blank_date_fields_are_no_answer(gate: AgeGate, blank: dict[str, str]) -> None:
    shop = Shop(gate)
    async with client(gate, shop, "writes") as c:
        await screened(c, "1990")
        response = await c.post("/signup", data={"email": "ada@example.com", **blank})
    assert response.status_code == 201 and shop.created == [{"email": "ada@example.com"}]


async def test_without_a_screen_result_the_birth_date_is_still_required(gate: AgeGate) -> None:
    shop = Shop(gate)
    async with client(gate, shop, "writes") as c:
        response = await c.post("/signup", data={"email": "ada@example.com"})
    assert response.status_code == 400 and response.json() == {"error": "empty"}
    assert shop.created == [] and await gate.status_of("acct-1") == "unknown"


@pytest.mark.parametrize("mode", ["writes", "all"])
async def test_an_under_age_answer_in_the_form_wins(gate: AgeGate, mode: str) -> None:
    shop = Shop(gate)
    async with client(gate, shop, mode) as c:
        await screened(c, "1990")
        response = await c.post("/signup", data={"email": "kid@example.com", "birth_year": CHILD_YEAR})
        assert response.status_code == 403 and shop.created == []
        assert outcome_of(gate, response) == "under_age"  # sticky from now on
        again = await c.post("/signup", data={"email": "kid@example.com"})
    assert again.status_code == 403 and shop.calls == 1  # the middleware refused it
    assert await gate.status_of("acct-1") == "unknown"


async def test_date_fields_sent_after_the_screen_are_read(gate: AgeGate) -> None:
    shop = Shop(gate)
    async with client(gate, shop, "writes") as c:
        await screened(c, "1990")
        bad = await c.post("/signup", data={"email": "a@example.com", "birth_year": "soon"})
        good = await c.post("/signup", data={"email": "a@example.com", "birth_date": "1985-05-05"})
    assert bad.status_code == 400 and bad.json() == {"error": "malformed"}
    assert good.status_code == 201


@pytest.mark.parametrize("mode", ["writes", "all"])
async def test_a_refused_browser_never_reaches_the_signup(gate: AgeGate, mode: str) -> None:
    shop = Shop(gate)
    async with client(gate, shop, mode) as c:
        await screened(c, CHILD_YEAR)
        for form in ({"email": "kid@example.com"}, {"email": "kid@example.com", "birth_year": "1970"}):
            response = await c.post("/signup", data=form)
            assert response.status_code == 403 and response.json() == {"error": "age_restricted"}
    assert shop.calls == 0


async def test_another_policys_answer_is_no_answer(gate: AgeGate) -> None:
    shop = Shop(gate)
    now = int(time.time())
    token = gate.sealer.seal("allowed", "some-other-policy", issued_at=now, expires_at=now + 60)
    async with client(gate, shop, "writes") as c:
        response = await c.post(
            "/signup", data={"email": "a@example.com"}, headers={"cookie": f"{COOKIE}={token}"}
        )
    assert response.status_code == 400 and response.json() == {"error": "empty"}


# -- gate.signup(decision=...) -----------------------------------------------------------------


async def test_gate_signup_records_an_allowed_decision_of_its_own_policy(gate: AgeGate) -> None:
    attestation = await gate.signup({}, subject="acct-a", decision=Decision.of("allowed", gate.policy.name))
    assert attestation.outcome == "allowed" and attestation.policy == gate.policy.name
    assert await gate.status_of("acct-a") == "allowed"


@pytest.mark.parametrize(
    "decision",
    [
        None,
        {"allowed": True, "outcome": "allowed", "policy": "coppa-13"},  # a dict is no decision
        Decision.of("allowed", "another-policy"),
        "allowed",
        True,
    ],
)
async def test_gate_signup_ignores_anything_else(gate: AgeGate, decision: Any) -> None:
    with pytest.raises(InvalidBirthDate):
        await gate.signup({}, subject="acct-b", decision=decision)
    assert await gate.status_of("acct-b") == "unknown"


@pytest.mark.parametrize(
    "decision",
    [
        "under_age",
        "inconsistent",  # allowed=True with an under-age outcome
    ],
)
async def test_gate_signup_refuses_an_under_age_decision(gate: AgeGate, decision: str) -> None:
    policy = gate.policy.name
    given = (
        Decision.of("under_age", policy) if decision == "under_age" else Decision(True, "under_age", policy)
    )
    with pytest.raises(UnderAgeError):
        await gate.signup({"birth_date": "1980-01-01"}, subject="acct-c", decision=given)
    assert await gate.status_of("acct-c") == "unknown"


async def test_gate_signup_screens_fields_sent_with_a_decision(gate: AgeGate) -> None:
    allowed = Decision.of("allowed", gate.policy.name)
    with pytest.raises(UnderAgeError):
        await gate.signup({"birth_year": CHILD_YEAR}, subject="acct-d", decision=allowed)
    with pytest.raises(InvalidBirthDate):
        await gate.signup({"birth_month": "4"}, subject="acct-d", decision=allowed)
    assert await gate.status_of("acct-d") == "unknown"


async def test_gate_passed_takes_only_an_allowed_decision_of_its_policy(gate: AgeGate) -> None:
    policy = gate.policy.name

    class Lookalike(Decision):  # type: ignore[misc]
        pass

    assert gate.passed(Decision.of("allowed", policy))
    for other in (
        Decision.of("under_age", policy),
        Decision.of("allowed", "other"),
        Decision(True, "under_age", policy),
        Decision(False, "allowed", policy),
        {"allowed": True, "outcome": "allowed", "policy": policy},
        Lookalike(True, "allowed", policy),  # only the gate's own Decision type
        None,
    ):
        assert not gate.passed(other)
