"""Trail Shop on FastAPI, behind agegate: the same shop as ``starlette_app.py``.

Run it::

    export AGEGATE_SECRET_KEYS="$(agegate keygen)"
    uvicorn examples.fastapi_app:app --no-access-log --log-level warning

No access log and warnings only, so that no visitor's address reaches a log (uvicorn logs each
websocket it accepts, refused ones included, with the address at INFO). Behind a proxy that
strips a path prefix, add ``--root-path /shop``: the shop's links and redirects follow it.

``app`` is built on first use from ``AGEGATE_SECRET_KEYS`` and ``SHOP_DATA_DIR`` (default
``./shop-data``); ``agegate purge --app examples.fastapi_app:app`` finds its gate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from agegate import AgeGateMiddleware, Keyring
from examples.shop import Shop


def create_app(
    *,
    keys: Keyring | None = None,
    data_dir: str | Path | None = None,
    store: str | None = None,
    secure_cookies: bool = True,
) -> FastAPI:
    """Build the shop (see :class:`~examples.shop.Shop` for the options)."""
    shop = Shop(keys=keys, data_dir=data_dir, store=store, secure_cookies=secure_cookies)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with shop.gate:
            yield

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.gate = shop.gate
    app.add_middleware(
        AgeGateMiddleware,
        gate=shop.gate,
        signup_paths=["/signup"],
        exempt=["/logout"],
        subject=shop.sessions.account_of,
        secure_cookies=secure_cookies,
    )
    # The handlers take a Starlette Request and return a Response, which FastAPI passes through.
    for path, endpoint, method in [
        ("/", shop.home, "GET"),
        ("/signup", shop.signup_form, "GET"),
        ("/signup", shop.signup, "POST"),
        ("/profile", shop.profile, "GET"),
        ("/profile", shop.save_profile, "POST"),
        ("/checkout", shop.checkout, "GET"),
        ("/checkout", shop.place_order, "POST"),
        ("/logout", shop.logout, "POST"),
    ]:
        app.add_api_route(path, endpoint, methods=[method], include_in_schema=False)
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

    uvicorn.run(create_app(), host="127.0.0.1", port=8000, access_log=False, log_level="warning")
