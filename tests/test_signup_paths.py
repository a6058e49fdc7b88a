"""Signup paths: screened whatever ``protect`` says, and only from the app's own origin
(issue 8, items 2 and 3)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agegate import AgeGate, AgeGateMiddleware, InvalidBirthDate, UnderAgeError, signup_form
from agegate.asgi.cookie import cookie_name

pytestmark = pytest.mark.anyio
CHILD = {"birth_year": str(time.gmtime().tm_year - 8), "email": "kid@example.com"}
ADULT = {"birth_date": "1990-01-01", "email": "ada@example.com"}


def shop(gate: AgeGate, **options: Any) -> tuple[Starlette, list[str]]:
    created: list[str] = []

    async def signup(request: Request) -> JSONResponse:
        account = f"acct-{len(created) + 100}"
        try:
            fields = await signup_form(request, gate, subject=account, identifier_fields=["email"])
        except InvalidBirthDate as exc:
            return JSONResponse({"error": exc.code}, status_code=400)
        except UnderAgeError:
            return JSONResponse({"error": "age_restricted"}, status_code=403)
        created.append(fields["email"])
        return JSONResponse({"account": account}, status_code=201)

    app = Starlette(routes=[Route("/signup", signup, methods=["POST"])])
    app.add_middleware(AgeGateMiddleware, gate=gate, **options)
    return app, created


def browser(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://shop.example")


@pytest.mark.parametrize("protect", [None, ["/checkout/*"], ["/checkout/*", "/profile"], []])
async def test_a_child_refused_at_signup_stays_refused_whatever_protect_says(
    gate: AgeGate, protect: list[str] | None
) -> None:
    app, created = shop(gate, protect=protect, signup_paths=["/signup"])
    async with browser(app) as child:
        refused = await child.post("/signup", data=CHILD)
        assert refused.status_code == 403
        assert gate.sealer.open(refused.cookies[cookie_name(gate.keys)]).outcome == "under_age"
        again = await child.post("/signup", data=ADULT)
        assert again.status_code == 403 and again.json() == {"error": "age_restricted"}
    assert created == []


@pytest.mark.parametrize("protect", [None, ["/checkout/*"], []])
async def test_an_adult_who_signs_up_gets_the_allowed_cookie(
    gate: AgeGate, protect: list[str] | None
) -> None:
    app, created = shop(gate, protect=protect, signup_paths=["/signup"])
    async with browser(app) as adult:
        welcome = await adult.post("/signup", data=ADULT)
        assert welcome.status_code == 201
        assert gate.sealer.open(welcome.cookies[cookie_name(gate.keys)]).outcome == "allowed"
    assert created == ["ada@example.com"]


async def test_a_signup_path_that_is_also_exempt_is_still_screened(gate: AgeGate) -> None:
    app, created = shop(gate, protect=["/checkout/*"], exempt=["/signup"], signup_paths=["/signup"])
    async with browser(app) as child:
        assert (await child.post("/signup", data=CHILD)).status_code == 403
        assert (await child.post("/signup", data=ADULT)).status_code == 403
    assert created == []


@pytest.mark.parametrize(
    "headers",
    [
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},  # a sibling subdomain
        {"origin": "https://evil.example"},
        {"origin": "null"},
        {"origin": "http://shop.example"},  # another scheme is another origin
    ],
)
@pytest.mark.parametrize("protect", [None, ["/checkout/*"]])
async def test_another_site_cannot_set_the_cookie_through_a_signup_path(
    gate: AgeGate, headers: dict[str, str], protect: list[str] | None
) -> None:
    app, created = shop(gate, protect=protect, signup_paths=["/signup"])
    async with browser(app) as visitor:
        attack = await visitor.post("/signup", data=CHILD, headers=headers)
        assert attack.status_code == 403 and attack.json() == {"error": "cross_site_request"}
        assert "set-cookie" not in attack.headers
        # The visitor is not locked out: the same browser signs up from the shop itself.
        own = await visitor.post("/signup", data=ADULT, headers={"sec-fetch-site": "same-origin"})
        assert own.status_code == 201
    assert created == ["ada@example.com"]


async def test_same_origin_signup_without_fetch_metadata_passes(gate: AgeGate) -> None:
    app, created = shop(gate, signup_paths=["/signup"])
    async with browser(app) as visitor:
        ok = await visitor.post("/signup", data=ADULT, headers={"origin": "https://shop.example"})
        assert ok.status_code == 201
        refused = await visitor.post(
            "/signup", data=CHILD, headers={"origin": "https://evil.example", "accept": "text/html"}
        )
        assert refused.status_code == 403 and "another site" in refused.text
    assert created == ["ada@example.com"]
