"""Digital IDs through the middleware: the screen's option, ``{prefix}/credential/request`` and
``POST {prefix}/credential``, the verified cookie, and ``require_verified`` paths."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.responses import PlainTextResponse
from test_middleware import KEYS as MIDDLEWARE_KEYS
from test_middleware import Shop, build, closed, sealed, websocket
from wallet import ORIGIN, VCT, Issuer, Wallet, mdoc_presentation, sd_jwt_credential, sd_jwt_presentation

from agegate import AgeGate, AgeGateMiddleware, ConfigurationError, Keyring
from agegate.asgi.cookie import cookie_name, read_cookie
from agegate.credentials import CredentialVerifier, TrustList
from agegate.credentials.mdoc import NAMESPACE
from agegate.stores import MemoryStore

pytestmark = pytest.mark.anyio

KEYS = Keyring.generate("c1")
COOKIE = cookie_name(KEYS)
NONCE_COOKIE = COOKIE + "-dc"
SAME_SITE = {"origin": ORIGIN}
HTML = {"accept": "text/html"}
ADULT = {"birth_year": "1990", "birth_month": "3", "birth_day": "4"}
CHILD = {"birth_year": str(time.gmtime().tm_year - 8), "birth_month": "1", "birth_day": "1"}
ISSUER = Issuer()
WALLET = Wallet()
VERIFIER = CredentialVerifier(TrustList([ISSUER.root]), vct_values=[VCT])


@pytest.fixture
def keyring() -> Keyring:
    return KEYS  # COOKIE is named after these keys


@pytest.fixture
def shop() -> Shop:
    return Shop()


@pytest.fixture
async def client(gate: AgeGate, shop: Shop) -> AsyncIterator[httpx.AsyncClient]:
    app = build(gate, shop, credentials=VERIFIER, require_verified=["/verified/*"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ORIGIN) as c:
        yield c


async def ask(client: httpx.AsyncClient) -> tuple[str, str]:
    """A fresh request: its nonce, and the cookie header that carries it sealed."""
    response = await client.post("/agegate/credential/request", json={}, headers=SAME_SITE)
    assert response.status_code == 200
    assert response.json()["protocol"] == "openid4vp-v1-unsigned"
    sealed = read_cookie(response.headers["set-cookie"].split(";")[0], NONCE_COOKIE)
    assert sealed
    client.cookies.clear()
    return response.json()["data"]["nonce"], f"{NONCE_COOKIE}={sealed}"


def sd_jwt_answer(nonce: str, claims: dict[str, Any] | None = None) -> dict[str, Any]:
    jwt, disclosures = sd_jwt_credential(ISSUER, WALLET, claims=claims)
    vp = sd_jwt_presentation(jwt, disclosures, WALLET, nonce=nonce)
    return {"protocol": "openid4vp-v1-unsigned", "data": {"vp_token": {"age_sd_jwt": [vp]}}}


async def present(client: httpx.AsyncClient, body: dict[str, Any], cookie: str) -> httpx.Response:
    response = await client.post("/agegate/credential", json=body, headers={**SAME_SITE, "cookie": cookie})
    client.cookies.clear()
    return response


def gate_cookie(response: httpx.Response) -> str | None:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(COOKIE + "="):
            return header.split(";")[0].split("=", 1)[1]
    return None


async def test_the_screen_offers_a_digital_id_without_naming_the_age(client: httpx.AsyncClient) -> None:
    page = await client.get("/agegate", headers=HTML)
    assert page.status_code == 200
    assert 'id="agegate-dc" style="margin-top:1.25rem" hidden' in page.text
    assert '<script src="/agegate/dc.js" defer></script>' in page.text
    assert "age_over" not in page.text and "13" not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    script = await client.get("/agegate/dc.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "DigitalCredential" in script.text


async def test_without_a_verifier_the_screen_has_no_script(gate: AgeGate, shop: Shop) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build(gate, shop)), base_url=ORIGIN) as c:
        page = await c.get("/agegate", headers=HTML)
        assert "agegate-dc" not in page.text and "<script" not in page.text
        assert "script-src" not in page.headers["content-security-policy"]
        # Nor are the endpoints served: the path is the app's.
        assert (await c.get("/agegate/dc.js")).text == "GET 0"


async def test_a_valid_presentation_gives_a_verified_answer(client: httpx.AsyncClient, shop: Shop) -> None:
    nonce, cookie = await ask(client)
    response = await present(client, sd_jwt_answer(nonce), cookie)
    assert response.status_code == 200, response.text
    assert response.json() == {"outcome": "allowed", "verified": True}
    token = gate_cookie(response)
    assert token is not None
    assert f"{NONCE_COOKIE}=; Max-Age=0" in response.headers["set-cookie"]
    passed = await client.post("/verified/checkout", headers={"cookie": f"{COOKIE}={token}"})
    assert passed.status_code == 200 and shop.calls == [("POST", "/verified/checkout")]


async def test_an_mdoc_presentation_gives_a_verified_answer(client: httpx.AsyncClient) -> None:
    nonce, cookie = await ask(client)
    vp = mdoc_presentation(ISSUER, WALLET, nonce=nonce)
    response = await present(client, {"protocol": "x", "data": {"vp_token": {"age_mdoc": [vp]}}}, cookie)
    assert response.json() == {"outcome": "allowed", "verified": True}


async def test_a_reused_or_wrong_nonce_is_a_400_and_never_allowed(client: httpx.AsyncClient) -> None:
    nonce, cookie = await ask(client)
    body = sd_jwt_answer(nonce)
    assert (await present(client, body, cookie)).status_code == 200
    again = await present(client, body, cookie)
    assert again.status_code == 400
    assert again.json()["code"] == "nonce_reused"
    assert gate_cookie(again) is None
    # A presentation made for someone else's request: this visitor's cookie holds another nonce.
    _, mine = await ask(client)
    theirs, _ = await ask(client)
    wrong = await present(client, sd_jwt_answer(theirs), mine)
    assert (wrong.status_code, wrong.json()["code"]) == (400, "wrong_nonce")
    assert gate_cookie(wrong) is None
    # No request at all.
    bare = await present(client, sd_jwt_answer(nonce), "")
    assert (bare.status_code, bare.json()["code"]) == (400, "wrong_nonce")


@pytest.mark.parametrize(
    "body",
    [{"data": "not json"}, {"data": {"vp_token": {"age_sd_jwt": ["x~y~z"]}}}, {"data": []}, {}],
)
async def test_an_unreadable_answer_is_a_clear_400(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    _, cookie = await ask(client)
    response = await present(client, body, cookie)
    assert response.status_code == 400
    assert response.json()["error"] == "credential_refused" and response.json()["message"]
    assert gate_cookie(response) is None


async def test_a_verified_under_age_answer_is_sticky(client: httpx.AsyncClient) -> None:
    nonce, cookie = await ask(client)
    response = await present(client, sd_jwt_answer(nonce, {"age_over_13": False}), cookie)
    assert response.json() == {"outcome": "under_age", "verified": True}
    token = gate_cookie(response)
    typed = await client.post(
        "/agegate", json={"birth_date": "1990-03-04"}, headers={"cookie": f"{COOKIE}={token}"}
    )
    assert typed.json() == {"outcome": "under_age"}


async def test_a_verified_answer_outranks_a_typed_date(client: httpx.AsyncClient, shop: Shop) -> None:
    nonce, cookie = await ask(client)
    verified = gate_cookie(await present(client, sd_jwt_answer(nonce), cookie))
    jar = {"cookie": f"{COOKIE}={verified}"}
    typed = await client.post("/agegate", data=ADULT, headers=jar)
    assert typed.status_code == 200 and gate_cookie(typed) is None  # the verified cookie stays
    # A typed child's date still wins (the lower age): under age, even after a verified answer.
    child = await client.post("/agegate", data=CHILD, headers=jar)
    assert child.json() == {"outcome": "under_age"}
    refused = await client.post("/verified/checkout", headers={"cookie": f"{COOKIE}={gate_cookie(child)}"})
    assert refused.status_code == 403 and shop.calls == []
    # And an under-age visitor's digital ID is answered under age too, without looking at it.
    sticky = await present(client, sd_jwt_answer(nonce), f"{COOKIE}={gate_cookie(child)}")
    assert sticky.json() == {"outcome": "under_age"}


async def test_require_verified_paths_need_a_digital_id(client: httpx.AsyncClient, shop: Shop) -> None:
    none = await client.post("/verified/checkout")
    assert none.status_code == 428
    assert none.json()["error"] == "age_verification_required" and none.json()["hint"]
    typed = gate_cookie(await client.post("/agegate", json={"birth_date": "1990-03-04"}))
    client.cookies.clear()
    jar = {"cookie": f"{COOKIE}={typed}"}
    assert (await client.post("/verified/checkout", headers=jar)).status_code == 428
    page = await client.post("/verified/checkout", headers={**jar, **HTML})
    assert page.status_code == 428 and "digital ID" in page.text
    # Elsewhere a typed date is enough; reading stays open everywhere.
    assert (await client.post("/basket", headers=jar)).status_code == 200
    assert (await client.get("/verified/checkout")).status_code == 200
    assert shop.calls == [("POST", "/basket"), ("GET", "/verified/checkout")]


async def test_the_credential_endpoints_follow_the_cross_site_rule(client: httpx.AsyncClient) -> None:
    foreign = {"origin": "https://evil.example"}
    assert (await client.post("/agegate/credential/request", json={}, headers=foreign)).status_code == 403
    response = await client.post("/agegate/credential", json={}, headers={"sec-fetch-site": "cross-site"})
    assert response.status_code == 403 and gate_cookie(response) is None
    assert (await client.get("/agegate/credential")).status_code == 405
    assert (await client.post("/agegate/dc.js")).status_code == 405
    assert (await client.post("/agegate/credential", content="{}")).status_code == 415


async def test_an_mdoc_that_discloses_more_is_a_400(client: httpx.AsyncClient) -> None:
    nonce, cookie = await ask(client)
    more = {NAMESPACE: {"age_over_13": True, "portrait": b"\x00"}}
    vp = mdoc_presentation(ISSUER, WALLET, nonce=nonce, elements=more)
    response = await present(client, {"data": {"vp_token": {"age_mdoc": [vp]}}}, cookie)
    assert (response.status_code, response.json()["code"]) == (400, "extra_claims")


@pytest.mark.parametrize(
    "options",
    [
        {"require_verified": ["/x/*"]},
        {"credentials": "yes"},
        {"credentials": VERIFIER, "require_verified": "/x"},
    ],
)
async def test_options_set_wrong_are_refused(gate: AgeGate, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        AgeGateMiddleware(PlainTextResponse("x"), gate=gate, **options)


async def test_the_cookie_seals_whether_the_answer_was_verified(gate: AgeGate) -> None:
    now = int(time.time())
    verified = gate.sealer.seal(
        "allowed", gate.policy.name, issued_at=now, expires_at=now + 60, verified=True
    )
    typed = gate.sealer.seal("allowed", gate.policy.name, issued_at=now, expires_at=now + 60)
    assert gate.sealer.open(verified).verified is True
    assert gate.sealer.open(typed).verified is False
    assert gate.sealer.open(verified).outcome == gate.sealer.open(typed).outcome == "allowed"


async def test_a_websocket_on_a_require_verified_path_needs_a_verified_answer() -> None:
    async with AgeGate(keys=MIDDLEWARE_KEYS, store=MemoryStore()) as gate:
        middleware = AgeGateMiddleware(
            PlainTextResponse("x"), gate=gate, credentials=VERIFIER, require_verified=["/ws/*"]
        )
        sent, called, _ = await websocket(middleware, sealed(gate, "allowed"))
        assert sent == closed("age_verification_required") and not called
        now = int(time.time())
        verified = gate.sealer.seal(
            "allowed", gate.policy.name, issued_at=now, expires_at=now + 60, verified=True
        )
        sent, called, _ = await websocket(middleware, verified)
        assert sent == [{"type": "websocket.accept"}] and called
