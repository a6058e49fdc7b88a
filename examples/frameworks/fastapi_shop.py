"""The small shop on FastAPI: ``uvicorn examples.frameworks.fastapi_shop:app``.

The logged-in user comes from Starlette's ``AuthenticationMiddleware`` (``scope["user"]``),
read with ``user_subject``; the gate is added first, so it runs inside sessions and
authentication. The app's lifespan also does ``async with gate``: the store is opened once.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser, SimpleUser
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import HTTPConnection

from agegate import AgeGateMiddleware, InvalidBirthDate, InvalidSignupForm, UnderAgeError, signup_form
from agegate.signup import read_form
from agegate.subjects import user_subject
from examples.frameworks.common import DEV, make_shop, new_account_id

gate, orders = make_shop()


class SessionUser(AuthenticationBackend):
    """The user named in the session, if any."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        account = conn.session.get("user_id")
        return (AuthCredentials(["authenticated"]), SimpleUser(account)) if account else None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with gate:  # the gate's middleware opened the store already: this does not reopen it
        yield


app = FastAPI(lifespan=lifespan)


@app.post("/signup")
async def signup(request: Request) -> JSONResponse:
    account = new_account_id()
    try:
        await signup_form(request, gate, subject=account)
    except (InvalidBirthDate, InvalidSignupForm):
        return JSONResponse({"error": "invalid_signup"}, status_code=400)
    except UnderAgeError:
        return JSONResponse({"error": "age_restricted"}, status_code=403)
    request.session["user_id"] = account
    return JSONResponse({"account": account}, status_code=201)


@app.post("/login")
async def login(request: Request) -> dict[str, bool]:
    request.session["user_id"] = (await read_form(request))["account"]  # a demo: no password
    return {"ok": True}


@app.post("/orders", status_code=201)
async def place_order(request: Request) -> dict[str, int]:
    product = (await read_form(request)).get("product", "kite")
    account = request.user.username if request.user.is_authenticated else "guest"
    return {"order": await anyio.to_thread.run_sync(orders.place, account, product)}


app.add_middleware(
    AgeGateMiddleware,
    gate=gate,
    signup_paths=["/signup"],
    exempt=["/login"],
    subject=user_subject("username"),
    secure_cookies=not DEV,
)
app.add_middleware(AuthenticationMiddleware, backend=SessionUser())
app.add_middleware(SessionMiddleware, secret_key=os.environ["SHOP_SESSION_SECRET"], https_only=not DEV)
