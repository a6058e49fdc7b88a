"""Trail Shop on Starlette, behind agegate: a signup form, a profile form and a checkout.

Run it (``agegate demo`` does this with ephemeral keys and a temporary folder)::

    export AGEGATE_SECRET_KEYS="$(agegate keygen)"
    uvicorn examples.starlette_app:app --no-access-log

``app`` is built on first use from ``AGEGATE_SECRET_KEYS`` and ``SHOP_DATA_DIR`` (default
``./shop-data``), so ``agegate purge --app examples.starlette_app:app`` finds its gate and purge
handlers. Browsing stays open to everyone; signing up screens the birth date inline; saving a
profile or placing an order needs a screen result (the middleware answers 428 and links to the
screen otherwise) and is refused to anyone the screen turned away.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from agegate import AgeGate, AgeGateMiddleware, InvalidBirthDate, Keyring, UnderAgeError
from agegate.pages import Pages
from agegate.signup import InvalidSignupForm, read_form, signup_fields
from examples import shop


def create_app(
    *,
    keys: Keyring | None = None,
    data_dir: str | Path | None = None,
    store: str | None = None,
    secure_cookies: bool = True,
) -> Starlette:
    """Build the shop. ``store`` defaults to an SQLite file in ``data_dir``."""
    folder = Path(data_dir or os.environ.get("SHOP_DATA_DIR", "shop-data"))
    folder.mkdir(parents=True, exist_ok=True)
    gate = AgeGate(
        keys=keys or Keyring.from_env(),
        store=store or f"sqlite:///{(folder / 'agegate.sqlite3').resolve()}",
    )
    db = shop.ShopDB(folder / "shop.sqlite3")
    sessions = shop.Sessions(secure=secure_cookies)
    refused = Pages().under_age()

    # -- purge handlers: everything the shop keeps about an account -----------------------------

    @gate.purger.handler("orders")
    async def purge_orders(subject: str) -> int:
        return await db.delete("orders", "account_id", subject)

    @gate.purger.handler("profiles")
    async def purge_profiles(subject: str) -> int:
        return await db.delete("profiles", "account_id", subject)

    @gate.purger.handler("accounts")
    async def purge_accounts(subject: str) -> int:
        return await db.delete("accounts", "id", subject) + sessions.end_all(subject)

    # -- pages ----------------------------------------------------------------------------------

    async def current(request: Request) -> dict[str, Any] | None:
        account_id = sessions.account_of(request.scope)
        return await db.account(account_id) if account_id else None

    async def home(request: Request) -> Response:
        return HTMLResponse(shop.home_page(await current(request)))

    async def signup(request: Request) -> Response:
        if request.method == "GET":
            return HTMLResponse(shop.signup_page())
        try:
            form = await read_form(request, max_bytes=4096)
        except InvalidSignupForm as exc:
            return HTMLResponse(shop.signup_page(error=exc.message), status_code=exc.status_code)
        username, email = form.get("username", "").strip(), form.get("email", "").strip()
        if not username or "@" not in email or await db.username_taken(username):
            error = "Please choose another username and give a valid email address."
            return HTMLResponse(shop.signup_page(form, error=error), status_code=400)
        account_id = "acct_" + secrets.token_hex(8)
        try:
            # Screens the birth date, stores only a keyed hash of an allowed result and tells the
            # middleware, which sets the browser's cookie. Nothing is stored before this returns.
            await signup_fields(
                request, gate, form, subject=account_id, identifier_fields=("email", "username")
            )
        except InvalidBirthDate as exc:
            return HTMLResponse(shop.signup_page(form, error=exc.message), status_code=400)
        except UnderAgeError:
            return HTMLResponse(refused, status_code=403)
        await db.create_account(account_id, username, email)
        response = RedirectResponse("/profile", status_code=303)
        response.headers.append("set-cookie", sessions.start(account_id))
        return response

    async def profile(request: Request) -> Response:
        account = await current(request)
        account_id = sessions.account_of(request.scope)
        if account is None or account_id is None:
            return RedirectResponse("/signup", status_code=303)
        if request.method == "POST":
            form = await shop.form_fields(request)
            await db.save_profile(account_id, form.get("display_name", ""), form.get("city", ""))
            return RedirectResponse("/profile?saved=1", status_code=303)
        return HTMLResponse(shop.profile_page(account, saved="saved" in request.query_params))

    async def checkout(request: Request) -> Response:
        account = await current(request)
        account_id = sessions.account_of(request.scope)
        if request.method == "POST":
            if account_id is None:
                return RedirectResponse("/signup", status_code=303)
            product = (await shop.form_fields(request)).get("product", "")
            if product in shop.PRODUCTS:
                await db.place_order(account_id, product)
            return RedirectResponse("/checkout?placed=1", status_code=303)
        orders = await db.orders(account_id) if account_id else []
        return HTMLResponse(shop.checkout_page(account, orders, placed="placed" in request.query_params))

    async def logout(request: Request) -> Response:
        response = RedirectResponse("/", status_code=303)
        response.headers.append("set-cookie", sessions.end(request.headers))
        return response

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with gate:
            yield

    app = Starlette(
        routes=[
            Route("/", home),
            Route("/signup", signup, methods=["GET", "POST"]),
            Route("/profile", profile, methods=["GET", "POST"]),
            Route("/checkout", checkout, methods=["GET", "POST"]),
            Route("/logout", logout, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.gate = gate
    app.add_middleware(
        AgeGateMiddleware,
        gate=gate,
        signup_paths=["/signup"],
        exempt=["/logout"],
        subject=sessions.account_of,
        secure_cookies=secure_cookies,
    )
    return app


def __getattr__(name: str) -> Any:
    # ``app`` is built on first access, so importing this module needs no keys.
    if name == "app":
        built = create_app()
        globals()["app"] = built
        return built
    raise AttributeError(name)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(create_app(), host="127.0.0.1", port=8000, access_log=False)
