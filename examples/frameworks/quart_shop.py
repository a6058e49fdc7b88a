"""The small shop on Quart: ``uvicorn examples.frameworks.quart_shop:app`` (or ``quart run``).

The extension wraps ``app.asgi_app``, so the gate is in front under every server and in
``app.test_client()``; ``session_subject`` reads Quart's signed session with the app's own key.
"""

from __future__ import annotations

import os
from typing import Any

import anyio.to_thread
from quart import Quart, request, session

from agegate import InvalidBirthDate, InvalidSignupForm, UnderAgeError, signup_form
from agegate.quart import AgeGate, session_subject
from agegate.signup import read_form
from examples.frameworks.common import DEV, make_shop, new_account_id

gate, orders = make_shop()
app = Quart(__name__)
app.secret_key = os.environ["SHOP_SESSION_SECRET"]
app.config["SESSION_COOKIE_SECURE"] = not DEV


@app.post("/signup")
async def signup() -> Any:
    account = new_account_id()
    try:
        await signup_form(request, gate, subject=account)
    except (InvalidBirthDate, InvalidSignupForm):
        return {"error": "invalid_signup"}, 400
    except UnderAgeError:
        return {"error": "age_restricted"}, 403
    session["user_id"] = account
    return {"account": account}, 201


@app.post("/login")
async def login() -> Any:
    session["user_id"] = (await read_form(request))["account"]  # a demo: no password
    return {"ok": True}


@app.post("/orders")
async def place_order() -> Any:
    product = (await read_form(request)).get("product", "kite")
    account = session.get("user_id", "guest")
    return {"order": await anyio.to_thread.run_sync(orders.place, account, product)}, 201


AgeGate(
    app,
    gate,
    signup_paths=["/signup"],
    exempt=["/login"],
    subject=session_subject(app, "user_id"),
    secure_cookies=not DEV,
)
