"""What the relational purge handler costs per account, against the same deletes written by hand.

For each size (100, 1,000 and 10,000 accounts by default) two identical copies of the rental shop
(tests/relational_schema.py, with its foreign key columns indexed, as a production schema has
them) are seeded; every account is then purged from one copy by ``db.account(...)`` and from the
other by hand-written SQL: the same statements, in one transaction per account, on one
connection. The handler runs as a purge runs it: its row count handed to the journal before the
commit (by default as to a SQLite store: the transaction's worker thread sends it to the store's
thread and waits; with ``--journal event-loop``, as to a store without a blocking journal: a
coroutine on the event loop). The two run in interleaved chunks of 10 accounts and the ratio
is the median of the chunks' ratios, so a burst of load on a busy machine skews one pair only. Also
shown: the whole ``gate.purge`` (freeze, journal, identifier block on a SQLite store) per account,
for the smallest size.

Prints µs per account and ratios; PASS/FAIL for the targets: the handler within 1.5x of the
hand-written transactions, and its cost per account flat (the largest size within 1.5x of the
smallest). Exits 1 on a miss. PostgreSQL runs when AGEGATE_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import os
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import relational_schema as rs

from agegate import AgeGate, Keyring
from agegate.connections import BeforeCommit
from agegate.handlers import PostgresDatabase, SQLiteDatabase

RATIO_TARGET = 1.5
FLAT_TARGET = 1.5
CHUNK = 10
WARM_UP = 20  # accounts purged, unmeasured, before each measurement
FIRST = 1000  # account ids start here (the seed gives each its own address)
INDEXES = [
    "CREATE INDEX {p}rental_customer ON {s}rental (customer_id)",
    "CREATE INDEX {p}payment_customer ON {s}payment (customer_id)",
    "CREATE INDEX {p}payment_rental ON {s}payment (rental_id)",
    "CREATE INDEX {p}review_customer ON {s}review (customer_id)",
    "CREATE INDEX {p}message_sender ON {s}message (sender_id)",
    "CREATE INDEX {p}message_recipient ON {s}message (recipient_id)",
    "CREATE INDEX {p}customer_address ON {s}customer (address_id)",
    "CREATE INDEX {p}customer_referred ON {s}customer (referred_by)",
]
#: The hand-written purge of one account: what an integrator would write for this schema.
BY_HAND = [
    "UPDATE {s}message SET recipient_id = NULL WHERE recipient_id = {x}",
    "DELETE FROM {s}message WHERE sender_id = {x}",
    "DELETE FROM {s}payment WHERE customer_id = {x}",
    "DELETE FROM {s}payment WHERE rental_id IN (SELECT rental_id FROM {s}rental WHERE customer_id = {x})",
    "DELETE FROM {s}review WHERE customer_id = {x}",
    "DELETE FROM {s}rental WHERE customer_id = {x}",
    "UPDATE {s}customer SET referred_by = NULL WHERE referred_by = {x}",
    "DELETE FROM {s}customer WHERE customer_id = {x}",
]


class Backend:
    """One database engine: seeds a shop copy, runs the hand-written purge on it."""

    name = ""
    param = "?"

    def copy(self, accounts: int) -> tuple[Any, Callable[[], Any], str]:
        """A seeded copy: (database for the handler, raw connection factory, table prefix)."""
        raise NotImplementedError

    def begin(self, conn: Any) -> None:
        raise NotImplementedError

    def by_hand(self, conn: Any, prefix: str, subject: int) -> None:
        self.begin(conn)
        lock = " FOR UPDATE" if self.name == "postgresql" else ""
        row = conn.execute(
            f"SELECT a.address_id FROM {prefix}address a JOIN {prefix}customer c "
            f"ON c.address_id = a.address_id WHERE c.customer_id = {self.param}{lock}",
            (subject,),
        ).fetchone()
        for statement in BY_HAND:
            conn.execute(statement.format(s=prefix, x=self.param), (subject,))
        if row is not None:
            conn.execute(
                f"DELETE FROM {prefix}address AS a WHERE address_id = {self.param} AND NOT EXISTS "
                f"(SELECT 1 FROM {prefix}customer c WHERE c.address_id = a.address_id)",
                (row[0],),
            )
        conn.commit() if self.name == "postgresql" else conn.execute("COMMIT")

    def cleanup(self) -> None:
        pass


def _seed(conn: Any, prefix: str, accounts: int, param: str) -> None:
    data = rs.rows(tuple(range(FIRST, FIRST + accounts + WARM_UP)))
    for table, values in data.items():
        if values:
            marks = ", ".join([param] * len(values[0]))
            conn.cursor().executemany(f"INSERT INTO {prefix}{table} VALUES ({marks})", values)


class SQLite(Backend):
    name = "sqlite"

    def __init__(self) -> None:
        # In memory where the machine has it: an fsync per commit would be most of both sides'
        # time and hide what the handler itself costs (PostgreSQL gets synchronous_commit=off).
        shm = Path("/dev/shm")
        self.directory = tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None)

    def copy(self, accounts: int) -> tuple[Any, Callable[[], Any], str]:
        path = Path(self.directory.name) / f"shop-{secrets.token_hex(4)}.sqlite3"
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute("PRAGMA journal_mode = WAL")  # as an app serving requests would have it
            with conn:
                conn.executescript(rs.SQLITE_DDL)
                for index in INDEXES:
                    conn.execute(index.format(p="", s=""))
                _seed(conn, "", accounts, "?")

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA foreign_keys = ON")  # as the handler's connections have it
            return conn

        return SQLiteDatabase(path), connect, ""

    def begin(self, conn: Any) -> None:
        conn.execute("BEGIN IMMEDIATE")

    def cleanup(self) -> None:
        self.directory.cleanup()


class Postgres(Backend):
    name = "postgresql"
    param = "%s"

    def __init__(self, url: str) -> None:
        import psycopg

        # Both sides commit without waiting for the WAL flush: the disk's fsync would otherwise
        # be most of either side's time, and hide what the handler itself costs.
        params = psycopg.conninfo.conninfo_to_dict(url)
        params["options"] = (params.get("options", "") + " -c synchronous_commit=off").strip()
        self.psycopg, self.url, self.schemas = psycopg, psycopg.conninfo.make_conninfo(**params), []

    def copy(self, accounts: int) -> tuple[Any, Callable[[], Any], str]:
        schema = "bench_" + secrets.token_hex(4)
        self.schemas.append(schema)
        with self.psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
            conn.execute(rs.POSTGRES_DDL.format(s=schema))
            for index in INDEXES:
                conn.execute(index.format(p="", s=f"{schema}."))
        with self.psycopg.connect(self.url) as conn:
            _seed(conn, f"{schema}.", accounts, "%s")
        with self.psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"ANALYZE {schema}.customer, {schema}.rental, {schema}.payment, {schema}.message")
        return PostgresDatabase(self.url), lambda: self.psycopg.connect(self.url), f"{schema}."

    def begin(self, conn: Any) -> None:
        pass  # psycopg opens the transaction with the first statement

    def cleanup(self) -> None:
        with self.psycopg.connect(self.url, autocommit=True) as conn:
            for schema in self.schemas:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")


async def _journal_on_loop(rows: int) -> None:
    return None


_STORE_THREAD = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-store")


def _journal_in_thread(rows: int) -> None:
    _STORE_THREAD.submit(int).result()


#: The journal the handler hands its row count to before the commit, as a purge on a SQLite store
#: does it (``in_thread``: the worker thread sends the write to the store's thread and waits), or
#: on a store without a blocking journal (``on_loop``: a coroutine on the event loop). The write
#: itself is left out: the hand-written transactions journal nothing.
JOURNALS = {
    "store-thread": BeforeCommit(_journal_on_loop, _journal_in_thread),
    "event-loop": BeforeCommit(_journal_on_loop),
}


def _chunks(accounts: int) -> Iterator[range]:
    for start in range(FIRST, FIRST + accounts, CHUNK):
        yield range(start, min(start + CHUNK, FIRST + accounts))


async def measure(
    backend: Backend, accounts: int, journal: BeforeCommit[int], *, full: bool
) -> dict[str, float]:
    """µs per account: the handler, the hand-written transactions, and (``full``) gate.purge."""
    handler_db, _, prefix = backend.copy(accounts)
    _, connect, hand_prefix = backend.copy(accounts)
    handler = handler_db.account(f"{prefix}customer", "customer_id", owns=rs.OWNS, set_null=rs.SET_NULL)
    spent = {"handler": 0.0, "by hand": 0.0}
    with contextlib.closing(connect()) as conn:
        # Warm up both sides (plan, pool, prepared statements) on accounts not measured.
        for subject in range(FIRST + accounts, FIRST + accounts + WARM_UP):
            await asyncio.to_thread(backend.by_hand, conn, hand_prefix, subject)
            await handler.run_journalled(str(subject), journal)
        ratios = []
        for n, chunk in enumerate(_chunks(accounts)):
            took = {}
            # Either side goes first in turn, so neither always runs on a cache the other warmed.
            for side in ("by hand", "handler") if n % 2 else ("handler", "by hand"):
                started = time.perf_counter()
                for subject in chunk:
                    if side == "by hand":
                        await asyncio.to_thread(backend.by_hand, conn, hand_prefix, subject)
                    else:  # as a purge runs it: the row count journalled (here, nowhere) before the commit
                        await handler.run_journalled(str(subject), journal)
                took[side] = time.perf_counter() - started
                spent[side] += took[side]
            ratios.append(took["handler"] / took["by hand"])
    handler_db.close()
    out = {k: v / accounts * 1e6 for k, v in spent.items()}
    out["ratio"] = statistics.median(ratios)  # of paired chunks: a burst of load hits one pair only
    if full:
        out["gate.purge"] = await _full_purges(backend, min(accounts, 1000))
    return out


async def _full_purges(backend: Backend, accounts: int) -> float:
    database, _, prefix = backend.copy(accounts)
    with tempfile.TemporaryDirectory() as directory:
        store = f"sqlite:///{Path(directory) / 'agegate.sqlite3'}"
        async with AgeGate(keys=Keyring.generate("bench"), store=store) as gate:
            gate.purger.add(
                database.account(f"{prefix}customer", "customer_id", owns=rs.OWNS, set_null=rs.SET_NULL)
            )
            started = time.perf_counter()
            for subject in range(FIRST, FIRST + accounts):
                await gate.purge(str(subject), ticket="BENCH-1", operator="bench")
            elapsed = time.perf_counter() - started
    database.close()
    return elapsed / accounts * 1e6


async def main(sizes: list[int], journal: BeforeCommit[int]) -> int:
    backends: list[Backend] = [SQLite()]
    url = os.environ.get("AGEGATE_TEST_POSTGRES_URL")
    if url:
        backends.append(Postgres(url))
    else:
        print("PostgreSQL: skipped (set AGEGATE_TEST_POSTGRES_URL to include it)")
    failed = False
    for backend in backends:
        try:
            per_size = {}
            for size in sizes:
                per_size[size] = result = await measure(backend, size, journal, full=size == sizes[0])
                ratio = result["ratio"]
                ok = ratio <= RATIO_TARGET
                failed |= not ok
                line = (
                    f"{backend.name:<10} {size:>6} accounts: handler {result['handler']:8.0f} µs/account, "
                    f"by hand {result['by hand']:8.0f} µs/account, ratio {ratio:4.2f}x  "
                    f"{'PASS' if ok else 'FAIL'}: <= {RATIO_TARGET}x"
                )
                print(line, flush=True)
                if "gate.purge" in result:
                    print(
                        f"{'':<10} whole gate.purge (freeze, journal, block; SQLite store): "
                        f"{result['gate.purge']:8.0f} µs/account, "
                        f"{result['gate.purge'] / result['by hand']:4.1f}x "
                        "the hand-written transaction (informational)",
                        flush=True,
                    )
            if len(sizes) > 1:
                small, large = per_size[min(sizes)]["handler"], per_size[max(sizes)]["handler"]
                flat = large / small
                ok = flat <= FLAT_TARGET
                failed |= not ok
                # The sizes run minutes apart: on a shared machine, load shifts both sides alike.
                hand = per_size[max(sizes)]["by hand"] / per_size[min(sizes)]["by hand"]
                print(
                    f"{backend.name:<10} cost per account at {max(sizes)} / at {min(sizes)}: {flat:4.2f}x  "
                    f"{'PASS' if ok else 'FAIL'}: <= {FLAT_TARGET}x (flat); by hand {hand:4.2f}x "
                    "(informational)",
                    flush=True,
                )
        finally:
            backend.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="100,1000,10000", help="account counts, comma-separated (default: %(default)s)"
    )
    parser.add_argument("--quick", action="store_true", help="only 100 and 1,000 accounts")
    parser.add_argument(
        "--journal",
        choices=sorted(JOURNALS),
        default="store-thread",
        help="the handler's journal: the SQLite store's (default) or one on the event loop (other stores)",
    )
    args = parser.parse_args()
    sizes = [100, 1000] if args.quick else sorted(int(s) for s in args.sizes.split(","))
    sys.exit(asyncio.run(main(sizes, JOURNALS[args.journal])))
