"""``mode="all"`` in a real browser (Chromium via Playwright) against a small site on uvicorn: the
first visit goes through the screen and back, and a refused visitor sees the neutral refusal on
every protected page while the exempt ones stay open (issue 13)."""

from __future__ import annotations

from collections.abc import Iterator
from html import escape
from typing import Any

import pytest
import test_browser
from servers import uvicorn_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from test_browser import CHILD_YEAR, enter_birth_date, shoot, sync_api

from agegate import AgeGate, AgeGateMiddleware, InvalidBirthDate, Keyring, UnderAgeError, signup_form
from agegate.stores import MemoryStore

pytestmark = test_browser.pytestmark
#: The shared Chromium and a fresh context per test.
browser, page = test_browser.browser, test_browser.page

EXEMPT = ["/static/*", "/robots.txt", "/healthz", "/privacy"]
PROTECTED = {"/": "Home", "/products": "Products", "/account": "Your account"}


def site(gate: AgeGate) -> Starlette:
    def html(title: str, body: str = "", status: int = 200) -> HTMLResponse:
        return HTMLResponse(
            f"<!doctype html><title>{title}</title><h1>{title}</h1>{body}", status_code=status
        )

    async def protected(request: Request) -> Response:
        return html(PROTECTED[request.url.path], f"<p>{escape(request.url.query)}</p>")

    async def privacy(request: Request) -> Response:
        return html("Privacy policy")

    async def signup_page(request: Request) -> Response:
        # A browser that passed the screen under this policy is not asked again.
        dates = (
            ""
            if gate.passed(request.scope.get("agegate"))
            else '<label>Year <input name="birth_year"></label>'
        )
        username = '<label>Username <input name="username"></label>'
        form = f'<form method="post">{username}{dates}<button>Create account</button></form>'
        return html("Sign up", form)

    async def signup(request: Request) -> Response:
        try:
            fields = await signup_form(request, gate, subject=lambda f: f["username"])
        except (InvalidBirthDate, UnderAgeError):
            return html("Sorry", status=400)
        return html("Welcome", f"<p>{escape(fields['username'])}</p>")

    routes = [Route(path, protected) for path in PROTECTED]
    routes += [
        Route("/privacy", privacy),
        Route("/robots.txt", lambda request: PlainTextResponse("User-agent: *\nDisallow:\n")),
        Route("/healthz", lambda request: PlainTextResponse("ok")),
        Route(
            "/static/site.css", lambda request: PlainTextResponse("body { margin: 0 }", media_type="text/css")
        ),
        Route("/signup", signup_page, methods=["GET"]),
        Route("/signup", signup, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(
        AgeGateMiddleware,
        gate=gate,
        mode="all",
        exempt=EXEMPT,
        signup_paths=["/signup"],
        secure_cookies=False,
    )
    return app


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    gate = AgeGate(keys=Keyring.generate("browser"), store=MemoryStore())
    with uvicorn_thread(site(gate), access_log=False, log_level="warning") as port:
        yield f"http://127.0.0.1:{port}"


def test_a_first_visit_goes_through_the_screen_and_back(server: str, page: Any) -> None:
    page.goto(f"{server}/products?colour=red")
    assert "/agegate?next=" in page.url
    sync_api.expect(page.get_by_label("Year")).to_be_visible()
    enter_birth_date(page, "1985", "6", "20")
    page.wait_for_url(f"{server}/products?colour=red")
    sync_api.expect(page.get_by_role("heading", name="Products")).to_be_visible()
    sync_api.expect(page.get_by_text("colour=red")).to_be_visible()

    for path, title in PROTECTED.items():
        assert page.goto(f"{server}{path}").status == 200
        sync_api.expect(page.get_by_role("heading", name=title)).to_be_visible()

    # Signing up after the screen asks for no birth date.
    page.goto(f"{server}/signup")
    assert page.get_by_label("Year").count() == 0
    page.get_by_label("Username").fill("grown-up")
    page.get_by_role("button", name="Create account").click()
    sync_api.expect(page.get_by_role("heading", name="Welcome")).to_be_visible()


def test_a_refused_visitor_sees_the_refusal_everywhere_but_the_exempt_pages(server: str, page: Any) -> None:
    page.goto(f"{server}/account")
    enter_birth_date(page, CHILD_YEAR, "4", "12")
    sync_api.expect(page.get_by_role("heading", name="This site isn't available to you")).to_be_visible()
    refusal = page.content()
    assert "try again" not in refusal.lower() and "account" not in page.inner_text("body").lower()
    shoot(page, "whole-service-refused")

    for path in [*PROTECTED, "/products?colour=red", "/signup"]:
        response = page.goto(f"{server}{path}")
        assert response.status == 403, path
        sync_api.expect(page.get_by_role("heading", name="This site isn't available to you")).to_be_visible()

    assert page.goto(f"{server}/privacy").status == 200
    sync_api.expect(page.get_by_role("heading", name="Privacy policy")).to_be_visible()
    for path in ["/robots.txt", "/healthz", "/static/site.css"]:
        assert page.goto(f"{server}{path}").status == 200, path

    # The screen shows the refusal again, not a form to answer anew.
    page.goto(f"{server}/agegate?next=/account")
    sync_api.expect(page.get_by_role("heading", name="This site isn't available to you")).to_be_visible()
    assert page.locator("form").count() == 0
    assert page.goto(f"{server}/account").status == 403
