"""The screen's "Use a digital ID" option in a real Chromium: shown only where the Digital
Credentials API exists (a stub ``DigitalCredential`` and a stub wallet stand in for it, the
wallet signing a real SD-JWT VC presentation in Python), and the typed date unchanged where it
does not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import uvicorn_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from test_browser import browser as shared_browser  # noqa: F401 - a fixture, as "shared_browser"
from wallet import VCT, Issuer, Wallet, sd_jwt_credential, sd_jwt_presentation

from agegate import AgeGate, AgeGateMiddleware, Keyring
from agegate.credentials import CredentialVerifier, TrustList
from agegate.stores import MemoryStore

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed at /usr/bin/chromium"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

ISSUER = Issuer()
WALLET = Wallet()
#: A browser without the API: whatever this Chromium ships, the page must not see it.
NO_API = "delete window.DigitalCredential;"
#: A browser with the API, whose wallet is the test's ``wallet`` function.
STUB_API = """
window.DigitalCredential = class DigitalCredential {};
Object.defineProperty(navigator.credentials, "get", {
  value: async (options) => {
    const request = options.digital.requests[0];
    const data = JSON.parse(await window.wallet(JSON.stringify(request)));
    if (data === null) { throw new DOMException("closed", "NotAllowedError"); }
    return { protocol: request.protocol, data: data };
  },
});
"""


async def checkout(request: Request) -> Response:
    if request.method == "POST":
        return PlainTextResponse("Thank you for your order!")
    return HTMLResponse('<form method="post"><button>Place order</button></form>')


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    gate = AgeGate(keys=Keyring.generate("b1"), store=MemoryStore())
    app = Starlette(routes=[Route("/checkout", checkout, methods=["GET", "POST"])])
    verifier = CredentialVerifier(TrustList([ISSUER.root]), vct_values=[VCT])
    app.add_middleware(AgeGateMiddleware, gate=gate, secure_cookies=False, credentials=verifier)
    with uvicorn_thread(app) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def chromium(request: pytest.FixtureRequest) -> Any:
    """test_browser.py's Chromium, launched the same way."""
    return request.getfixturevalue("shared_browser")


def new_page(browser: Any, script: str) -> Any:
    context = browser.new_context(viewport={"width": 900, "height": 700})
    context.add_init_script(script)
    return context.new_page()


def test_without_the_api_the_screen_is_unchanged(server: str, chromium: Any) -> None:
    page = new_page(chromium, NO_API)
    try:
        page.goto(f"{server}/agegate?next=/checkout")
        sync_api.expect(page.get_by_label("Year")).to_be_visible()
        assert page.get_by_role("button", name="Use a digital ID").count() == 0  # hidden
        assert not page.locator("#agegate-dc").is_visible()
        page.get_by_label("Year").fill("1980")
        page.get_by_role("button", name="Continue").click()
        page.wait_for_url(f"{server}/checkout")
        page.get_by_role("button", name="Place order").click()
        sync_api.expect(page.get_by_text("Thank you for your order!")).to_be_visible()
    finally:
        page.context.close()


def test_with_the_api_a_digital_id_answers_the_screen(server: str, chromium: Any) -> None:
    page = new_page(chromium, STUB_API)
    asked: list[dict[str, Any]] = []
    fetched: list[str] = []

    def wallet(request_json: str) -> str:
        request = json.loads(request_json)
        asked.append(request)
        jwt, disclosures = sd_jwt_credential(ISSUER, WALLET)
        vp = sd_jwt_presentation(
            jwt, disclosures, WALLET, nonce=request["data"]["nonce"], audience=f"origin:{server}"
        )
        return json.dumps({"vp_token": {"age_sd_jwt": [vp]}})

    try:
        page.expose_function("wallet", wallet)
        page.on("request", lambda request: fetched.append(request.url))
        page.goto(f"{server}/agegate?next=/checkout")
        button = page.get_by_role("button", name="Use a digital ID")
        sync_api.expect(button).to_be_visible()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "screen-digital-id.png"), full_page=True)
        # The request (which names the claim) is fetched only when the visitor chooses it.
        assert not any("/credential" in url for url in fetched)
        assert "age_over" not in page.content()
        button.click()
        page.wait_for_url(f"{server}/checkout")
        (request,) = asked
        (query,) = [q for q in request["data"]["dcql_query"]["credentials"] if q["format"] == "dc+sd-jwt"]
        assert query["claims"] == [{"path": ["age_over_13"]}]
        page.get_by_role("button", name="Place order").click()
        sync_api.expect(page.get_by_text("Thank you for your order!")).to_be_visible()
    finally:
        page.context.close()


def test_a_refused_digital_id_leaves_the_typed_date(server: str, chromium: Any) -> None:
    page = new_page(chromium, STUB_API)
    answers = iter([json.dumps({"vp_token": {"age_sd_jwt": ["not-a-presentation~"]}}), "null"])
    try:
        page.expose_function("wallet", lambda _request: next(answers))
        page.goto(f"{server}/agegate?next=/checkout")
        page.get_by_role("button", name="Use a digital ID").click()
        status = page.locator("#agegate-dc-status")
        sync_api.expect(status).to_contain_text("could not be used")
        # Closing the wallet says nothing; the typed date still works.
        page.get_by_role("button", name="Use a digital ID").click()
        sync_api.expect(status).to_have_text("")
        page.get_by_label("Year").fill("1980")
        page.get_by_role("button", name="Continue").click()
        page.wait_for_url(f"{server}/checkout")
    finally:
        page.context.close()
