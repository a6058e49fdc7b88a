"""Shared fixtures. Async tests use anyio's pytest plugin (``@pytest.mark.anyio``) on asyncio.

The one ``gate`` fixture: an open :class:`AgeGate` over ``keyring`` and ``gate_store``. A module
whose gate differs overrides only what differs: ``keyring`` (its cookie names come from its own
``KEYS``), ``gate_store`` (the gate runs over other stores) or ``gate_options``; ``memory_gate``
stays in memory whatever a module's ``gate_store`` is.

``@pytest.mark.time_limit(seconds)`` fails a sync test that runs longer (see
:func:`purge_app.time_limit`); async tests bound their own waits.

Hypothesis runs without its per-example deadline: these machines are shared, and a cold first
example (imports, a regex compiled) can take longer than 200 ms with nothing wrong.

PostgreSQL: ``postgres_url`` is ``AGEGATE_TEST_POSTGRES_URL`` with a schema of the test's own,
dropped afterwards; the test is skipped when the variable is not set.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import secrets
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import settings

from agegate import AgeGate, Keyring
from agegate.stores import MemoryStore, Store

if TYPE_CHECKING:
    from agegate.handlers import SQLiteDatabase

settings.register_profile("agegate", deadline=None)
settings.load_profile("agegate")

#: The shared PostgreSQL server's URL ("" when the PostgreSQL tests are to be skipped).
POSTGRES_URL = os.environ.get("AGEGATE_TEST_POSTGRES_URL", "")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "time_limit(seconds): fail a sync test that runs longer (a purge waiting forever)"
    )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate("test")


@pytest.fixture
def gate_store() -> Store | str:
    """What the ``gate`` fixture stores in: memory, unless a module overrides this fixture."""
    return MemoryStore()


@pytest.fixture
def gate_options() -> dict[str, Any]:
    """Further keyword arguments of the ``gate`` fixture's :class:`AgeGate`."""
    return {}


@pytest.fixture
async def gate(
    keyring: Keyring, gate_store: Store | str, gate_options: dict[str, Any]
) -> AsyncIterator[AgeGate]:
    async with AgeGate(keys=keyring, store=gate_store, **gate_options) as gate:
        yield gate


@pytest.fixture
async def memory_gate(keyring: Keyring) -> AsyncIterator[AgeGate]:
    async with AgeGate(keys=keyring, store=MemoryStore()) as gate:
        yield gate


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL: once in memory, once a SQLite file (for a module's ``gate_store`` over both)."""
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/agegate.sqlite3"


@pytest.fixture(autouse=True)
def _time_limit(request: pytest.FixtureRequest) -> Iterator[None]:
    marker = request.node.get_closest_marker("time_limit")
    if marker is None or inspect.iscoroutinefunction(request.function):
        yield  # see purge_app.time_limit: async tests bound their waits themselves
        return
    import purge_app

    with purge_app.time_limit(*marker.args):
        yield


@pytest.fixture
def postgres_schema() -> Iterator[str]:
    """A fresh schema name (the store creates it on open), dropped afterwards."""
    if not POSTGRES_URL:
        pytest.skip("AGEGATE_TEST_POSTGRES_URL is not set (e.g. postgresql://postgres@127.0.0.1:5432/test)")
    name = "agegate_test_" + secrets.token_hex(6)
    try:
        yield name
    finally:
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def postgres_url(postgres_schema: str) -> str:
    """``AGEGATE_TEST_POSTGRES_URL`` with ``?schema=`` this test's own schema."""
    return f"{POSTGRES_URL}{'&' if '?' in POSTGRES_URL else '?'}schema={postgres_schema}"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SQLiteDatabase]:
    """An app's SQLite database with a table ``t`` of three rows, for transaction tests."""
    from agegate.handlers import SQLiteDatabase  # not at import: the purge code loads lazily

    path = tmp_path / "app.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        conn.executemany("INSERT INTO t VALUES (?)", [(1,), (2,), (3,)])
    database = SQLiteDatabase(path)
    yield database
    database.close()
