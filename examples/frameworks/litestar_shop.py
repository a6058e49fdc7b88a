"""The small shop on Litestar: ``uvicorn examples.frameworks.litestar_shop:app``.

``AgeGatePlugin`` registers the screen's route, puts the gate after the session middleware
(so ``session_subject`` reads the session) and opens and closes the store with the app.
"""

from __future__ import annotations

import os
from typing import Any

import anyio.to_thread
from litestar import Litestar, Request, post
from litestar.middleware.session.client_side import CookieBackendConfig
from litestar.response import Response

from agegate import InvalidBirthDate, InvalidSignupForm, UnderAgeError, signup_form
from agegate.litestar import AgeGatePlugin, session_subject
from agegate.signup import read_form
from examples.frameworks.common import DEV, make_shop, new_account_id

gate, orders = make_shop()
sessions = CookieBackendConfig(secret=bytes.fromhex(os.environ["SHOP_SESSION_SECRET"]), secure=not DEV)


@post("/signup")
async def signup(request: Request[Any, Any, Any]) -> Response[dict[str, str]]:
    account = new_account_id()
    try:
        await signup_form(request, gate, subject=account)
    except (InvalidBirthDate, InvalidSignupForm):
        return Response({"error": "invalid_signup"}, status_code=400)
    except UnderAgeError:
        return Response({"error": "age_restricted"}, status_code=403)
    request.set_session({"user_id": account})
    return Response({"account": account}, status_code=201)


@post("/login", status_code=200)
async def login(request: Request[Any, Any, Any]) -> dict[str, bool]:
    request.set_session({"user_id": (await read_form(request))["account"]})  # a demo: no password
    return {"ok": True}


@post("/orders")
async def place_order(request: Request[Any, Any, Any]) -> dict[str, int]:
    product = (await read_form(request)).get("product", "kite")
    account = request.session.get("user_id", "guest")
    return {"order": await anyio.to_thread.run_sync(orders.place, account, product)}


app = Litestar(
    route_handlers=[signup, login, place_order],
    middleware=[sessions.middleware],
    plugins=[
        AgeGatePlugin(
            gate,
            signup_paths=["/signup"],
            exempt=["/login"],
            subject=session_subject("user_id"),
            secure_cookies=not DEV,
        )
    ],
)
