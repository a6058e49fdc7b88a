"""The small shop on Starlette: ``uvicorn examples.frameworks.starlette_shop:app``.

The gate sits inside ``SessionMiddleware`` (added first, so it runs after it) and reads the
logged-in account from the session with ``session_subject``; it owns the lifespan, so the
store opens and closes with the server. See :mod:`examples.frameworks.common`.
"""

from __future__ import annotations

import os

import anyio.to_thread
from starlette.applications import Starlette
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agegate import AgeGateMiddleware, InvalidBirthDate, InvalidSignupForm, UnderAgeError, signup_form
from agegate.signup import read_form
from agegate.subjects import session_subject
from examples.frameworks.common import DEV, make_shop, new_account_id

gate, orders = make_shop()


async def signup(request: Request) -> JSONResponse:
    account = new_account_id()
    try:
        await signup_form(request, gate, subject=account)
    except (InvalidBirthDate, InvalidSignupForm):
        return JSONResponse({"error": "invalid_signup"}, status_code=400)
    except UnderAgeError:
        return JSONResponse({"error": "age_restricted"}, status_code=403)
    request.session["user_id"] = account  # created and logged in, only now
    return JSONResponse({"account": account}, status_code=201)


async def login(request: Request) -> JSONResponse:
    request.session["user_id"] = (await read_form(request))["account"]  # a demo: no password
    return JSONResponse({"ok": True})


async def place_order(request: Request) -> JSONResponse:
    product = (await read_form(request)).get("product", "kite")
    account = request.session.get("user_id", "guest")
    order = await anyio.to_thread.run_sync(orders.place, account, product)
    return JSONResponse({"order": order}, status_code=201)


app = Starlette(
    routes=[
        Route("/signup", signup, methods=["POST"]),
        Route("/login", login, methods=["POST"]),
        Route("/orders", place_order, methods=["POST"]),
    ]
)
app.add_middleware(
    AgeGateMiddleware,
    gate=gate,
    signup_paths=["/signup"],
    exempt=["/login"],
    subject=session_subject("user_id"),
    secure_cookies=not DEV,
)
app.add_middleware(SessionMiddleware, secret_key=os.environ["SHOP_SESSION_SECRET"], https_only=not DEV)
