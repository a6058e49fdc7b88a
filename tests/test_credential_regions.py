"""Digital IDs with regions and languages: the age asked for is the request's region's, a verified
answer counts only under policies no stricter than its own, and the option and the "verified
first" page speak the visitor's language without naming an age."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from test_credential_http import (
    ADULT,
    COOKIE,
    HTML,
    SAME_SITE,
    VERIFIER,
    gate_cookie,
    sd_jwt_answer,
)
from test_middleware import Shop, build
from wallet import ORIGIN

from agegate import AgeGate, region_from_header
from agegate.i18n import CATALOGS, choose
from agegate.stores import MemoryStore

pytest.importorskip("babel", reason="agegate[i18n] (Babel) is not installed")

pytestmark = pytest.mark.anyio

US = {"cf-ipcountry": "US"}
DE = {"cf-ipcountry": "DE"}  # 16 in the built-in table


@pytest.fixture
def shop() -> Shop:
    return Shop()


@pytest.fixture
async def client(shop: Shop) -> AsyncIterator[httpx.AsyncClient]:
    from test_credential_http import KEYS

    async with AgeGate(keys=KEYS, store=MemoryStore()) as gate:
        app = build(
            gate,
            shop,
            credentials=VERIFIER,
            require_verified=["/verified/*"],
            region=region_from_header("cf-ipcountry"),
        )
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ORIGIN) as c:
            yield c


async def ask_in(client: httpx.AsyncClient, region: dict[str, str]) -> tuple[str, str, str]:
    """``ask`` from ``region``: the nonce, its cookie, and the claim the request names."""
    response = await client.post("/agegate/credential/request", json={}, headers={**SAME_SITE, **region})
    claims = set(re.findall(r"age_over_\d+", response.text))
    assert len(claims) == 1, response.text
    client.cookies.clear()
    sealed = response.headers["set-cookie"].split(";")[0]
    return response.json()["data"]["nonce"], sealed, claims.pop()


async def test_the_age_asked_for_is_the_regions(client: httpx.AsyncClient) -> None:
    assert (await ask_in(client, US))[2] == "age_over_13"
    assert (await ask_in(client, DE))[2] == "age_over_16"
    assert (await ask_in(client, {}))[2] == "age_over_13"  # no region: the gate's own policy
    # Over 13 is no answer where 16 is asked: refused, nothing set.
    nonce, cookie, _ = await ask_in(client, DE)
    response = await client.post(
        "/agegate/credential", json=sd_jwt_answer(nonce), headers={**SAME_SITE, **DE, "cookie": cookie}
    )
    assert (response.status_code, response.json()["code"]) == (400, "no_age_claim")
    assert gate_cookie(response) is None


async def test_a_verified_answer_counts_only_where_its_age_is_enough(
    client: httpx.AsyncClient, shop: Shop
) -> None:
    nonce, cookie, _ = await ask_in(client, US)
    us = gate_cookie(
        await client.post(
            "/agegate/credential", json=sd_jwt_answer(nonce), headers={**SAME_SITE, **US, "cookie": cookie}
        )
    )
    jar = {"cookie": f"{COOKIE}={us}"}
    assert (await client.post("/verified/checkout", headers={**jar, **US})).status_code == 200
    # The same verified cookie on a German request: no result at all, so not verified either.
    stricter = await client.post("/verified/checkout", headers={**jar, **DE})
    assert (stricter.status_code, stricter.json()["error"]) == (428, "age_verification_required")
    elsewhere = await client.post("/basket", headers={**jar, **DE})
    assert (elsewhere.status_code, elsewhere.json()["error"]) == (428, "age_screen_required")
    # Verified under 16: counts, still verified, under 16 and under 13.
    nonce, cookie, _ = await ask_in(client, DE)
    answer = sd_jwt_answer(nonce, {"age_over_16": True})
    de = gate_cookie(
        await client.post("/agegate/credential", json=answer, headers={**SAME_SITE, **DE, "cookie": cookie})
    )
    for region in (DE, US):
        passed = await client.post("/verified/checkout", headers={"cookie": f"{COOKIE}={de}", **region})
        assert passed.status_code == 200
        assert shop.scopes[-1]["agegate"].verified is True
    # A typed date that agrees keeps the verified cookie (under the region where it counts).
    typed = await client.post("/agegate", data=ADULT, headers={"cookie": f"{COOKIE}={de}", **DE, **HTML})
    assert typed.status_code == 303 and gate_cookie(typed) is None


async def test_a_typed_answer_does_not_replace_a_verified_one_that_does_not_count_here(
    client: httpx.AsyncClient,
) -> None:
    nonce, cookie, _ = await ask_in(client, US)
    us = gate_cookie(
        await client.post(
            "/agegate/credential", json=sd_jwt_answer(nonce), headers={**SAME_SITE, **US, "cookie": cookie}
        )
    )
    # Under 16 the US answer is no answer: the typed date is screened and sealed under 16.
    typed = await client.post("/agegate", data=ADULT, headers={"cookie": f"{COOKIE}={us}", **DE, **HTML})
    assert typed.status_code == 303 and gate_cookie(typed) is not None


@pytest.mark.parametrize("catalog", CATALOGS)
async def test_the_option_and_the_verified_page_speak_each_language(
    client: httpx.AsyncClient, catalog: str
) -> None:
    tag = catalog.replace("_", "-")
    words = choose(tag).gettext
    headers = {**HTML, "accept-language": tag}
    page = await client.get("/agegate", headers=headers)
    assert page.status_code == 200
    for message in ("Use a digital ID", "Or, if your device holds a digital ID:"):
        assert words(message) != message and words(message) in page.text
    failed = "That digital ID could not be used. Please enter your date of birth instead."
    assert f'data-failed="{words(failed)}"' in page.text.replace("&#x27;", "'")
    # Still neutral: no age, and no number a threshold could be.
    assert "age_over" not in page.text and "13" not in page.text and "16" not in page.text
    required = await client.post("/verified/checkout", headers={**headers, **DE})
    assert required.status_code == 428
    wanted = "Please confirm your age with a digital ID before you continue."
    assert words(wanted) != wanted and words(wanted) in required.text
    assert f'lang="{choose(tag).tag}"' in required.text
