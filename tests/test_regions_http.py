"""Regions through the middleware, the cookie, the signup hook and the command line; and that no
region, country or IP of a screened person is stored or logged."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from agegate import (
    AgeGate,
    AgeGateMiddleware,
    ConfigurationError,
    Keyring,
    UnderAgeError,
    region_from_header,
    signup_form,
)
from agegate.asgi.cookie import cookie_name
from agegate.cli import main
from agegate.decisions import SCOPE_KEY

KEYS = Keyring.generate("t1")
COOKIE = cookie_name(KEYS, secure=False)


def born(years: int, days: int = 0) -> dict[str, str]:
    """A birth date of someone ``years`` old and ``days`` more (in every time zone)."""
    today = datetime.now(UTC).date()
    try:
        birth = today.replace(year=today.year - years)
    except ValueError:  # 29 February
        birth = date(today.year - years, 2, 28)
    return {"birth_date": (birth - timedelta(days=days)).isoformat()}


FOURTEEN = born(14, 120)
SIXTEEN = born(16, 120)
EIGHT = born(8, 120)


class App:
    def __init__(self) -> None:
        self.scopes: list[Any] = []

    async def endpoint(self, request: Request) -> Response:
        self.scopes.append(request.scope)
        return PlainTextResponse("ok")

    async def signup(self, request: Request) -> Response:
        gate: AgeGate = request.app.state.gate
        try:
            await signup_form(request, gate, subject=lambda f: f["account"])
        except UnderAgeError:
            return PlainTextResponse("refused", status_code=403)
        return PlainTextResponse("welcome")


def build(gate: AgeGate, app: App, **options: Any) -> Starlette:
    star = Starlette(
        routes=[
            Route("/signup", app.signup, methods=["POST"]),
            Route("/{path:path}", app.endpoint, methods=["GET", "POST"]),
        ]
    )
    star.state.gate = gate
    star.add_middleware(
        AgeGateMiddleware,
        gate=gate,
        signup_paths=["/signup"],
        secure_cookies=False,
        subject=lambda scope: dict(scope["headers"]).get(b"x-account", b"").decode() or None,
        **{"region": region_from_header("cf-ipcountry"), **options},
    )
    return star


@pytest.fixture
def keyring() -> Keyring:
    return KEYS  # COOKIE is named after these keys


def client(app: Any, ip: str = "198.51.100.23") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 4444))
    return httpx.AsyncClient(transport=transport, base_url="http://shop.example")


async def screen(c: httpx.AsyncClient, answer: dict[str, str], country: str | None) -> str:
    headers = {"cf-ipcountry": country} if country else {}
    response = await c.post("/agegate", json=answer, headers=headers)
    assert response.status_code == 200
    outcome: str = response.json()["outcome"]
    return outcome


async def checkout(c: httpx.AsyncClient, country: str | None, **headers: str) -> int:
    if country:
        headers["cf-ipcountry"] = country
    return (await c.post("/checkout", headers=headers)).status_code


@pytest.mark.anyio
async def test_a_14_year_old_allowed_under_us_rules_is_screened_again_and_refused_on_a_german_request(
    gate: AgeGate,
) -> None:
    async with client(build(gate, App())) as c:
        assert await screen(c, FOURTEEN, "US") == "allowed"
        assert await checkout(c, "US") == 200
        assert await checkout(c, None) == 200  # the gate's own COPPA 13
        assert await checkout(c, "KR") == 428  # reached under 13: Korea asks 14
        assert await checkout(c, "DE") == 428
        assert (await c.get("/agegate", headers={"cf-ipcountry": "DE"})).json()["outcome"] is None
        assert (await c.get("/agegate", headers={"cf-ipcountry": "US"})).json()["outcome"] == "allowed"
        assert await screen(c, FOURTEEN, "DE") == "under_age"
        # Under age stays under age everywhere, and the screen is sticky.
        for country in ("DE", "US", "BR", None, "ZZ"):
            assert await checkout(c, country) == 403
        assert await screen(c, SIXTEEN, "US") == "under_age"


@pytest.mark.anyio
async def test_a_result_reached_under_a_stricter_policy_counts_under_a_weaker_one(gate: AgeGate) -> None:
    app = App()
    async with client(build(gate, app)) as c:
        assert await screen(c, SIXTEEN, "de") == "allowed"
        for country in ("DE", "US", "FR", "AU", None):
            assert await checkout(c, country) == 200, country
        assert await checkout(c, "IN") == 428
        assert await checkout(c, "XX") == 428  # unknown: the strictest age, 18
        decision = app.scopes[0][SCOPE_KEY]
        assert (decision.policy, decision.version) == ("gdpr-de-16", gate.policies.version)


@pytest.mark.anyio
async def test_an_unknown_region_is_screened_under_the_strictest_age(gate: AgeGate) -> None:
    async with client(build(gate, App())) as c:
        assert await screen(c, SIXTEEN, "T1") == "under_age"
        assert await checkout(c, "US") == 403


@pytest.mark.anyio
async def test_a_header_the_app_did_not_name_is_not_trusted(gate: AgeGate) -> None:
    async with client(build(gate, App())) as c:
        assert await screen(c, FOURTEEN, None) == "allowed"  # the gate's own policy
        assert await checkout(c, None, **{"x-country": "DE", "x-geo-country": "DE"}) == 200


@pytest.mark.anyio
async def test_signup_follows_the_region_and_the_account_is_weighed_per_region(gate: AgeGate) -> None:
    async with client(build(gate, App())) as c:
        form = {**FOURTEEN, "account": "kim"}
        response = await c.post("/signup", data=form, headers={"cf-ipcountry": "US"})
        assert response.text == "welcome"
    assert await gate.status_of("kim", region="US") == "allowed"
    assert await gate.status_of("kim", region="DE") == "unknown"
    # A fresh browser: only the account's attestation speaks for it.
    async with client(build(gate, App())) as c:
        assert await checkout(c, "US", **{"x-account": "kim"}) == 200
        assert await checkout(c, "DE", **{"x-account": "kim"}) == 428
        response = await c.post(
            "/signup", data={**FOURTEEN, "account": "lee"}, headers={"cf-ipcountry": "DE"}
        )
        assert response.status_code == 403
        assert await checkout(c, "US") == 403  # the signup's refusal set the sticky cookie
    assert await gate.status_of("lee") == "unknown"  # and nothing was stored


@pytest.mark.anyio
async def test_an_async_region_function_and_a_bad_one(gate: AgeGate) -> None:
    async def region(scope: Any) -> str | None:
        return "DE"

    async with client(build(gate, App(), region=region)) as c:
        assert await screen(c, FOURTEEN, None) == "under_age"
    with pytest.raises(ConfigurationError):
        AgeGateMiddleware(App().endpoint, gate=gate, region="cf-ipcountry")  # type: ignore[arg-type]

    # A region function that answers what the gate cannot use, or raises, refuses the request:
    # 503, logged for the operator; neither the app nor the screen is served with a wrong policy.
    def raises(scope: Any) -> str | None:
        raise RuntimeError("the geo lookup failed")

    for wrong in (lambda scope: 49, raises):
        app = App()
        async with client(build(gate, app, region=wrong)) as c:
            for response in (
                await c.post("/checkout"),
                await c.get("/agegate"),
                await c.post("/agegate", data=FOURTEEN),
            ):
                assert response.status_code == 503 and response.headers["retry-after"] == "60"
                assert response.json() == {"error": "store_unavailable"}
        assert app.scopes == []


@pytest.mark.anyio
async def test_no_region_country_or_ip_is_stored_or_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "gate.sqlite3"
    ip = "203.0.113.77"
    async with AgeGate(keys=KEYS, store=f"sqlite:///{path}") as g:
        async with client(build(g, App()), ip=ip) as c:
            # GB-WLS (Wales) has no row: it follows GB's nationwide row, and only "uk-gdpr-13"
            # may be stored; "Tuvalu" is no code at all: the strictest age.
            response = await c.post(
                "/signup", data={**SIXTEEN, "account": "a"}, headers={"cf-ipcountry": "GB-WLS"}
            )
            assert response.text == "welcome"
            response = await c.post(
                "/signup", data={**EIGHT, "account": "b"}, headers={"cf-ipcountry": "Tuvalu"}
            )
            assert response.status_code == 403
            cookies = [v for k, v in response.headers.multi_items() if k == "set-cookie"]
        await g.record("c", "under_age")
        assert await g.status_of("a", region="GB") == "allowed"
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())  # noqa: ASYNC240
    assert b"uk-gdpr-13" in stored  # the policy name is what is stored
    logged = "\n".join(f"{r.getMessage()} {r.args}" for r in caplog.records)
    for secret in ("GB-WLS", "gb-wls", "Wales", "Tuvalu", "TUVALU", ip):
        assert secret.encode() not in stored, secret
        assert secret not in logged, secret
        assert all(secret not in cookie for cookie in cookies), secret


# -- the command line ----------------------------------------------------------------------------


def test_check_with_a_region(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["check", "--birth-date", "2011-01-01", "--on", "2026-06-01"]
    assert main([*args, "--region", "DE", "--json"]) == 1
    assert json.loads(capsys.readouterr().out) == {
        "outcome": "under_age",
        "policy": "gdpr-de-16",
        "version": "2026.1",
    }
    assert main([*args, "--region", "us"]) == 0
    assert capsys.readouterr().out == "allowed\n"
    assert main([*args, "--region", "ZZ"]) == 1  # the strictest age
    assert main([*args, "--region", "DE", "--min-age", "13"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"outcome": "allowed", "policy": "min-age-13"}


def test_policies_prints_the_table(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["policies"]) == 0
    out = capsys.readouterr().out
    assert "version 2026.1" in out and "strictest age: 18" in out
    assert "CA-QC" in out and "qc-law25-14" in out and "Law 25" in out
    assert main(["policies", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["version"] == "2026.1" and data["strictest"] == 18
    assert data["regions"]["DE"]["min_age"] == 16 and "GDPR Art. 8" in data["regions"]["DE"]["source"]
    mine = tmp_path / "mine.toml"
    mine.write_text(
        'version = "site-1"\n[regions.DE]\nname = "de-18"\nmin_age = 18\nrestricts = "r"\nsource = "s"\n'
    )
    assert main(["policies", "--policies", str(mine), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["regions"] == {
        "DE": {
            "name": "de-18",
            "region": "",
            "min_age": 18,
            "restricts": "r",
            "source": "s",
            "note": "",
            "nationwide": False,
        }
    }
    args = ["check", "--birth-date", "2009-01-01", "--on", "2026-06-01", "--region", "DE"]
    assert main([*args, "--policies", str(mine)]) == 1
    assert main(["policies", "--policies", str(tmp_path / "missing.toml")]) == 2
    assert "--policies: cannot read" in capsys.readouterr().err
