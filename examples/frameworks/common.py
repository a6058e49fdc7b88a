"""What the small per-framework shops share: the gate and an orders table with its purge handler.

Each shop has the same four endpoints, so one test suite drives them all over real HTTP:
``POST /signup`` (username and birth date, screened inline; logs the new account in),
``POST /login`` (account; exempt from the gate, so a new device can sign in),
``POST /orders`` (product; needs a screen result) and the gate's own ``/agegate``.

Configuration comes from the environment: ``AGEGATE_SECRET_KEYS`` (``agegate keygen``),
``AGEGATE_STORE`` (default ``sqlite:///agegate.sqlite3``), ``SHOP_DB`` (default
``shop.sqlite3``) and ``SHOP_DEV=1`` for plain-http development (no ``Secure`` cookies).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from contextlib import closing

import anyio.to_thread

from agegate import AgeGate, Keyring

#: Plain-http development: cookies without ``Secure`` (never in production).
DEV = os.environ.get("SHOP_DEV") == "1"


def make_shop() -> tuple[AgeGate, Orders]:
    """The shop's gate, with the orders purge handler registered, and its orders."""
    gate = AgeGate(
        keys=Keyring.from_env(), store=os.environ.get("AGEGATE_STORE", "sqlite:///agegate.sqlite3")
    )
    orders = Orders(os.environ.get("SHOP_DB", "shop.sqlite3"))

    @gate.purger.handler("orders")
    async def purge_orders(account: str) -> int:
        return await anyio.to_thread.run_sync(orders.delete, account)

    return gate, orders


def new_account_id() -> str:
    """A fresh account id (the shops keep no other account data)."""
    return "acct-" + secrets.token_hex(8)


class Orders:
    """The shop's one table, in a SQLite file."""

    def __init__(self, path: str) -> None:
        self.path = path
        with closing(sqlite3.connect(path)) as db, db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, account TEXT, product TEXT)"
            )

    def place(self, account: str, product: str) -> int:
        with closing(sqlite3.connect(self.path)) as db, db:
            cursor = db.execute("INSERT INTO orders (account, product) VALUES (?, ?)", (account, product))
            return int(cursor.lastrowid or 0)

    def delete(self, account: str) -> int:
        with closing(sqlite3.connect(self.path)) as db, db:
            return db.execute("DELETE FROM orders WHERE account = ?", (account,)).rowcount
