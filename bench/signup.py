"""What ``gate.signup`` costs against the one write it has to make, in the same run.

SQLite: ``gate.signup`` (a birth date and an email, a new account each time) on the embedded
store against one raw ``INSERT`` of a row of the same shape (the same table and index) on a
connection with the same settings (WAL, ``synchronous = FULL``, the store's other pragmas), in
autocommit, on a thread of its own as the store runs its calls. PostgreSQL (when
``AGEGATE_TEST_POSTGRES_URL`` is set): against one raw autocommit ``INSERT`` over a connection
of its own. Interleaved rounds; the ratio is the median of the paired ratios (wall time: the
commit's flush to disk is most of both).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import count
from pathlib import Path
from typing import Any

from agegate import AgeGate, Keyring

ADULT = {"birth_date": "1990-03-04"}
_TABLE = (
    "CREATE TABLE IF NOT EXISTS raw "
    "(subject_hash BLOB PRIMARY KEY, kid TEXT, mac BLOB, policy TEXT, at INTEGER)"
)
_INDEX = "CREATE INDEX raw_kid ON raw (kid)"  # as the store's attestations table has
_numbers = count()


def _row() -> tuple[bytes, str, bytes, str, int]:
    return (secrets.token_bytes(32), "bench", secrets.token_bytes(32), "default", time.time_ns() // 1000)


async def _paired(
    ours: Callable[[], Awaitable[None]], anchor: Callable[[], Awaitable[None]], rounds: int, n: int
) -> tuple[float, float, float]:
    """``(median seconds per signup, per anchor write, median paired ratio)``."""

    async def batch(op: Callable[[], Awaitable[None]]) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await op()
        return (time.perf_counter() - start) / n

    await batch(ours)  # warm up
    await batch(anchor)
    a, b, r = [], [], []
    for round_no in range(rounds):
        if round_no % 2:
            x, y = await batch(ours), await batch(anchor)
        else:
            y, x = await batch(anchor), await batch(ours)
        a.append(x)
        b.append(y)
        r.append(x / y)
    return statistics.median(a), statistics.median(b), statistics.median(r)


async def sqlite_case(rounds: int, n: int) -> tuple[float, float, float]:
    loop = asyncio.get_running_loop()
    writer = ThreadPoolExecutor(max_workers=1)
    with tempfile.TemporaryDirectory(dir=os.environ.get("AGEGATE_BENCH_DIR")) as folder:
        raw = sqlite3.connect(f"{folder}/raw.sqlite3", isolation_level=None, check_same_thread=False)
        raw.execute("PRAGMA journal_mode = WAL")
        raw.execute("PRAGMA synchronous = FULL")
        raw.execute("PRAGMA secure_delete = ON")
        raw.execute("PRAGMA journal_size_limit = 4194304")
        raw.execute(_TABLE + " WITHOUT ROWID")
        raw.execute(_INDEX)
        try:
            async with AgeGate(
                keys=Keyring.generate("bench"), store=f"sqlite:///{folder}/gate.sqlite3"
            ) as gate:

                async def signup() -> None:
                    i = next(_numbers)
                    await gate.signup(ADULT, subject=f"acct-{i}", identifiers={"email": f"u{i}@example.org"})

                async def insert() -> None:
                    # On a thread of its own, as the store runs every call: the event loop
                    # never waits on the disk.
                    await loop.run_in_executor(
                        writer, raw.execute, "INSERT INTO raw VALUES (?, ?, ?, ?, ?)", _row()
                    )

                return await _paired(signup, insert, rounds, n)
        finally:
            raw.close()
            writer.shutdown()


async def postgres_case(url: str, rounds: int, n: int) -> tuple[float, float, float]:
    import psycopg

    schema = "agegate_bench_" + secrets.token_hex(6)
    sep = "&" if "?" in url else "?"
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.execute(
            _TABLE.replace("raw", f'"{schema}".raw').replace("BLOB", "bytea").replace("INTEGER", "bigint")
        )
        await conn.execute(_INDEX.replace("ON raw", f'ON "{schema}".raw'))
        async with AgeGate(keys=Keyring.generate("bench"), store=f"{url}{sep}schema={schema}") as gate:

            async def signup() -> None:
                i = next(_numbers)
                await gate.signup(ADULT, subject=f"acct-{i}", identifiers={"email": f"u{i}@example.org"})

            async def insert() -> None:
                await conn.execute(f'INSERT INTO "{schema}".raw VALUES (%s, %s, %s, %s, %s)', _row())

            return await _paired(signup, insert, rounds, n)
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


async def main(rounds: int, n: int) -> list[tuple[str, str, float, float, str]]:
    """Rows for ``bench/run``: (case, shown value, value, limit, unit)."""
    rows = []
    cases: list[tuple[str, Any, float]] = [("SQLite", sqlite_case(rounds, n), 1.5)]
    url = os.environ.get("AGEGATE_TEST_POSTGRES_URL")
    if url:
        cases.append(("PostgreSQL", postgres_case(url, rounds, n), 2.0))
    for name, case, limit in cases:
        ours, anchor, ratio = await case
        print(f"signup, {name}: {ours * 1e6:.0f} µs; one raw INSERT {anchor * 1e6:.0f} µs")
        rows.append((f"signup vs raw INSERT, {name}", f"{ratio:.3f}x", ratio, limit, "x"))
    if not url:
        print("(signup on PostgreSQL: skipped, AGEGATE_TEST_POSTGRES_URL is not set)")
    return rows


if __name__ == "__main__":
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    from bench.rows import print_rows

    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    sys.exit(0 if print_rows(asyncio.run(main(rounds, 30))) else 1)
