"""Trail Shop on Starlette, behind agegate: a signup form, a profile form and a checkout.

Run it (``agegate demo`` does this with ephemeral keys and a temporary folder)::

    export AGEGATE_SECRET_KEYS="$(agegate keygen)"
    uvicorn examples.starlette_app:app --no-access-log --log-level warning

No access log and warnings only, so that no visitor's address reaches a log (uvicorn logs each
websocket it accepts, refused ones included, with the address at INFO). Behind a proxy that
strips a path prefix, add ``--root-path /shop``: the shop's links and redirects follow it.

``app`` is built on first use from ``AGEGATE_SECRET_KEYS`` and ``SHOP_DATA_DIR`` (default
``./shop-data``), so ``agegate purge --app examples.starlette_app:app`` finds its gate and purge
handlers. Browsing stays open to everyone; signing up screens the birth date inline; saving a
profile or placing an order needs a screen result (the middleware answers 428 and links to the
screen otherwise) and is refused to anyone the screen turned away.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Route

from agegate import AgeGateMiddleware, Keyring
from examples.shop import Shop


def create_app(
    *,
    keys: Keyring | None = None,
    data_dir: str | Path | None = None,
    store: str | None = None,
    secure_cookies: bool = True,
) -> Starlette:
    """Build the shop (see :class:`~examples.shop.Shop` for the options)."""
    shop = Shop(keys=keys, data_dir=data_dir, store=store, secure_cookies=secure_cookies)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with shop.gate:  # opens the gate's store, closes it at shutdown
            yield

    app = Starlette(
        routes=[
            Route("/", shop.home),
            Route("/signup", shop.signup_form, methods=["GET"]),
            Route("/signup", shop.signup, methods=["POST"]),
            Route("/profile", shop.profile, methods=["GET"]),
            Route("/profile", shop.save_profile, methods=["POST"]),
            Route("/checkout", shop.checkout, methods=["GET"]),
            Route("/checkout", shop.place_order, methods=["POST"]),
            Route("/logout", shop.logout, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.gate = shop.gate  # for `agegate purge --app examples.starlette_app:app`
    app.add_middleware(
        AgeGateMiddleware,
        gate=shop.gate,
        signup_paths=["/signup"],  # screened inline by Shop.signup
        exempt=["/logout"],
        subject=shop.sessions.account_of,  # a logged-in account's attestation counts too
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

    uvicorn.run(create_app(), host="127.0.0.1", port=8000, access_log=False, log_level="warning")
