"""The rental shop of :mod:`relational_schema` behind a gate, for crash tests through the CLI.

``--app relational_app:gate`` builds it from the environment: ``PURGE_APP_DIR`` holds the shop
(``shop.sqlite3``, or, with ``PURGE_APP_POSTGRES`` set to a URL, the PostgreSQL schema named
by ``PURGE_APP_SCHEMA``) and the store (``agegate.sqlite3``); ``PURGE_APP_PAUSE`` and
``PURGE_APP_MARKER`` stop the purge at a point, as in :mod:`purge_app`, and these points lie
inside the relational handler: ``mid:customers`` (rows deleted, transaction open, nothing
journalled), ``journalled:customers`` (count journalled, not committed) and
``committed:customers`` (committed, step not yet recorded).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import relational_schema as rs
from purge_app import _pause, pause_at_boundaries

from agegate import AgeGate, Keyring
from agegate.handlers import PostgresDatabase, SQLiteDatabase
from agegate.purge.relational import AccountRows

CHILD = "351"


def seed(directory: Path, *, postgres: str = "", schema: str = "") -> None:
    """The shop's rows, in ``directory``'s SQLite file or in a new PostgreSQL ``schema``."""
    directory.mkdir(parents=True, exist_ok=True)
    if postgres:
        import psycopg

        with psycopg.connect(postgres, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
            conn.execute(rs.POSTGRES_DDL.format(s=schema))
        with psycopg.connect(postgres) as conn:
            rs.seed(conn, schema=schema)
        return
    with contextlib.closing(sqlite3.connect(directory / "shop.sqlite3")) as conn, conn:
        conn.executescript(rs.SQLITE_DDL)
        rs.seed(conn)


class PausingAccountRows(AccountRows):
    """The relational handler with pause points inside its transaction."""

    async def run_journalled(self, subject: str, planned: Callable[[int], Awaitable[None]]) -> int:
        async def journal(rows: int) -> None:
            await asyncio.to_thread(_pause, "mid:customers")
            await planned(rows)
            await asyncio.to_thread(_pause, "journalled:customers")

        rows = await super().run_journalled(subject, journal)
        await asyncio.to_thread(_pause, "committed:customers")
        return rows


def build_gate(directory: Path, *, keys: Keyring, postgres: str = "", schema: str = "") -> AgeGate:
    gate = AgeGate(keys=keys, store=f"sqlite:///{directory / 'agegate.sqlite3'}")
    db = PostgresDatabase(postgres) if postgres else SQLiteDatabase(directory / "shop.sqlite3")
    table = f"{schema}.customer" if postgres else "customer"
    gate.purger.add(
        PausingAccountRows(db, table, "customer_id", owns=rs.OWNS, set_null=rs.SET_NULL, name="customers")
    )

    gate.purger.listen(pause_at_boundaries)
    return gate


def __getattr__(name: str) -> Any:
    if name == "gate":
        return build_gate(
            Path(os.environ["PURGE_APP_DIR"]),
            keys=Keyring.from_env(),
            postgres=os.environ.get("PURGE_APP_POSTGRES", ""),
            schema=os.environ.get("PURGE_APP_SCHEMA", ""),
        )
    raise AttributeError(name)
