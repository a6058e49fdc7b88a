"""Each gate's cookie has a name of its own: two gated apps on one host never overwrite each
other's answer, and a key rotation drops no cookie the keys can still open."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request, cookie_parser
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route

from agegate import AgeGate, AgeGateMiddleware, ConfigurationError, Keyring
from agegate.asgi.cookie import cookie_name, read_cookies
from agegate.stores import MemoryStore

pytestmark = pytest.mark.anyio

ADULT = {"birth_year": "1990", "birth_month": "3", "birth_day": "4"}
CHILD = {"birth_year": str(time.gmtime().tm_year - 8), "birth_month": "1", "birth_day": "1"}
HTML = {"accept": "text/html"}


def gated(gate: AgeGate, **options: Any) -> AgeGateMiddleware:
    async def checkout(request: Request) -> Response:
        return PlainTextResponse("ordered")

    app = Starlette(routes=[Route("/checkout", checkout, methods=["POST"])])
    return AgeGateMiddleware(app, gate=gate, **options)


def host(shop: AgeGateMiddleware, forum: AgeGateMiddleware) -> Starlette:
    return Starlette(routes=[Mount("/shop", app=shop), Mount("/forum", app=forum)])


def browser(app: Any) -> httpx.AsyncClient:
    """One browser: one cookie jar for the whole host."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://apps.example")


@pytest.mark.parametrize("named", [False, True])
async def test_a_refusal_at_one_app_survives_an_adult_answer_at_another(named: bool) -> None:
    shop_gate = AgeGate(keys=Keyring.generate("shop"), store=MemoryStore())
    forum_gate = AgeGate(keys=Keyring.generate("forum"), store=MemoryStore())
    shop = gated(shop_gate, **({"cookie_name": "shop"} if named else {}))
    forum = gated(forum_gate, **({"cookie_name": "forum"} if named else {}))
    assert shop.cookie_name != forum.cookie_name
    assert all(name.startswith("__Host-") for name in (shop.cookie_name, forum.cookie_name))
    async with browser(host(shop, forum)) as child:
        refused = await child.post("/shop/agegate", data=CHILD, headers=HTML, follow_redirects=True)
        assert refused.status_code == 200 and "keep looking around" in refused.text
        assert (await child.post("/shop/checkout")).status_code == 403
        # The child answers as an adult at the forum, which cannot read the shop's cookie.
        answered = await child.post("/forum/agegate", data={**ADULT, "next": "/forum/"}, headers=HTML)
        assert answered.status_code == 303
        assert (await child.post("/forum/checkout")).status_code == 200
        # Back at the shop: still refused, and the screen is still sticky.
        assert (await child.post("/shop/checkout")).status_code == 403
        again = await child.post("/shop/agegate", json={"birth_date": "1990-03-04"})
        assert again.json() == {"outcome": "under_age"} and "set-cookie" not in again.headers
        assert (await child.post("/shop/checkout")).status_code == 403
        assert {cookie.name for cookie in child.cookies.jar} == {shop.cookie_name, forum.cookie_name}


async def test_the_name_is_the_keys_own_and_reveals_nothing_of_them() -> None:
    keys = Keyring.generate("a")
    name = cookie_name(keys)
    assert name == cookie_name(Keyring.from_string(keys.to_string()))  # stable across restarts
    assert name != cookie_name(Keyring.generate("a"))
    tag = name.removeprefix("__Host-agegate-")
    assert re.fullmatch(r"[0-9a-f]{12}", tag), name
    for purpose in ("cookie", "attestation", "subject", "identifier"):
        assert tag not in keys.purpose_key(purpose).hex()  # type: ignore[arg-type]
    assert tag not in keys.to_string()
    assert cookie_name(keys, secure=False) == f"agegate-{tag}"


async def test_a_key_rotation_keeps_cookies_under_the_old_name() -> None:
    old = Keyring.generate("old")
    new = Keyring.from_string(f"{Keyring.generate('new').to_string()},{old.to_string()}")
    before = AgeGate(keys=old, store=MemoryStore())
    after = AgeGate(keys=new, store=MemoryStore())
    async with browser(gated(before)) as child:
        await child.post("/agegate", json={"birth_date": "2020-01-01"})
        jar = child.cookies
    assert cookie_name(old) in jar
    rotated = gated(after)
    assert rotated.cookie_name == cookie_name(new) != cookie_name(old)
    async with browser(rotated) as child:
        child.cookies = jar
        assert (await child.post("/checkout")).status_code == 403  # still refused
        again = await child.post("/agegate", json={"birth_date": "1990-01-01"})
        assert again.json() == {"outcome": "under_age"}
    # A gate that names its cookie still reads the names its keys gave before.
    async with browser(gated(after, cookie_name="shop")) as child:
        child.cookies = jar
        assert (await child.post("/checkout")).status_code == 403
    # Once the old key is dropped its cookies open no more, under any name (as before).
    async with browser(gated(AgeGate(keys=Keyring.generate("new"), store=MemoryStore()))) as child:
        child.cookies = jar
        assert (await child.post("/checkout")).status_code == 428


async def test_under_age_under_any_of_the_gates_names_wins() -> None:
    old = Keyring.generate("old")
    new = Keyring.from_string(f"{Keyring.generate('new').to_string()},{old.to_string()}")
    gate = AgeGate(keys=new, store=MemoryStore())
    now = int(time.time())

    def token(outcome: str) -> str:
        return gate.sealer.seal(outcome, gate.policy.name, issued_at=now, expires_at=now + 60)  # type: ignore[arg-type]

    app = gated(gate)
    for first, second in [("allowed", "under_age"), ("under_age", "allowed")]:
        header = f"{cookie_name(new)}={token(first)}; {cookie_name(old)}={token(second)}"
        async with browser(app) as client:
            response = await client.post("/checkout", headers={"cookie": header})
            assert response.status_code == 403


@pytest.mark.parametrize(
    "bad", ["", "__Host-x", "__Secure-x", "a b", "a;b", "a=b", "é", "x" * 65, b"shop", 5, "a,b"]
)
def test_a_bad_cookie_name_is_a_configuration_error(bad: Any) -> None:
    gate = AgeGate(keys=Keyring.generate(), store=MemoryStore())
    with pytest.raises(ConfigurationError, match="cookie_name"):
        AgeGateMiddleware(PlainTextResponse("x"), gate=gate, cookie_name=bad)


def test_a_chosen_name_gets_the_host_prefix_only_when_secure() -> None:
    gate = AgeGate(keys=Keyring.generate(), store=MemoryStore())
    app = PlainTextResponse("x")
    assert AgeGateMiddleware(app, gate=gate, cookie_name="shop").cookie_name == "__Host-shop"
    assert AgeGateMiddleware(app, gate=gate, cookie_name="shop", secure_cookies=False).cookie_name == "shop"


names = st.sampled_from(["a", "__Host-a", "b", "ab"])
cookie_text = st.text(alphabet=st.sampled_from('ab_-=; "\\\t,%HQ'), max_size=30)


@given(pairs=st.lists(st.tuples(names | cookie_text, cookie_text), max_size=5), wanted=st.sets(names))
def test_reading_several_names_agrees_with_starlette(pairs: list[tuple[str, str]], wanted: set[str]) -> None:
    header = "; ".join(f"{key}={value}" for key, value in pairs)
    parsed = cookie_parser(header)
    expected = sorted(parsed[name] for name in wanted if name in parsed)
    assert sorted(read_cookies(header, frozenset(wanted))) == expected
