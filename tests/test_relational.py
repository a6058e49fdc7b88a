"""The relational account handler (``db.account``) on real SQLite and real PostgreSQL.

The schema is :mod:`relational_schema`'s rental shop: unindexed foreign keys without cascades,
a chain payment -> rental -> customer, a household's shared address, another party's messages,
referrals, a monthly partitioned table and an inheritance child (PostgreSQL), integer and uuid
keys. What a purge must leave is worked out in plain Python and compared with every row.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import relational_schema as rs
from hypothesis import given
from hypothesis import strategies as st

from agegate import AgeGate, ConfigurationError, InvalidAccountId
from agegate.connections import run_transaction
from agegate.errors import InvalidInput
from agegate.handlers import PostgresDatabase, SQLiteDatabase
from agegate.purge.catalog import partition_parents
from agegate.purge.request import check_key_form

pytestmark = pytest.mark.anyio

POSTGRES_URL = os.environ.get("AGEGATE_TEST_POSTGRES_URL")
BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.skipif(not POSTGRES_URL, reason="no PostgreSQL")),
]


@dataclass
class Shop:
    """One seeded shop database: its handler factory and a raw connection to check it with."""

    db: SQLiteDatabase | PostgresDatabase
    schema: str  # "" on SQLite
    connect: Callable[[], Any]

    def name(self, table: str) -> str:
        return f"{self.schema}.{table}" if self.schema else table

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        with contextlib.closing(self.connect()) as conn:
            return rs.snapshot(conn, schema=self.schema)

    def execute(self, *statements: str) -> None:
        with contextlib.closing(self.connect()) as conn:
            for statement in statements:
                conn.execute(statement)
            conn.commit()

    def customers(self, **options: Any) -> Any:
        options.setdefault("owns", rs.OWNS)
        options.setdefault("set_null", rs.SET_NULL)
        return self.db.account(self.name("customer"), "customer_id", name="customers", **options)


@contextlib.contextmanager
def _sqlite_shop(directory: Path) -> Iterator[Shop]:
    path = directory / "shop.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(rs.SQLITE_DDL)
        rs.seed(conn)
    db = SQLiteDatabase(path)
    try:
        yield Shop(db, "", lambda: sqlite3.connect(path))
    finally:
        db.close()


@contextlib.contextmanager
def _postgres_shop() -> Iterator[Shop]:
    import psycopg

    assert POSTGRES_URL is not None
    schema = "shop_" + secrets.token_hex(4)
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(rs.POSTGRES_DDL.format(s=schema))
    with psycopg.connect(POSTGRES_URL) as conn:
        rs.seed(conn, schema=schema)
    db = PostgresDatabase(POSTGRES_URL)
    try:
        yield Shop(db, schema, lambda: psycopg.connect(POSTGRES_URL))
    finally:
        db.close()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=BACKENDS)
def shop(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shop]:
    with _sqlite_shop(tmp_path) if request.param == "sqlite" else _postgres_shop() as built:
        yield built


async def test_a_purge_removes_exactly_the_accounts_rows(shop: Shop, gate: AgeGate) -> None:
    gate.purger.add(shop.customers())
    before = shop.snapshot()
    report = await gate.purge("351", ticket="T-1", operator="ops")
    after = shop.snapshot()
    assert after == rs.expected_after(before, 351)
    removed = sum(len(before[t]) - len(after[t]) for t in rs.TABLES)
    assert report.deleted == {"customers": removed} and removed == 9
    # The household's address stays while 352 lives there; purging 352 takes it.
    report = await gate.purge("352", ticket="T-2", operator="ops")
    assert shop.snapshot() == rs.expected_after(after, 352)
    assert 1 not in [a[0] for a in shop.snapshot()["address"]]
    again = await gate.purge("352", ticket="T-2", operator="ops")
    assert again.already_done and shop.snapshot() == rs.expected_after(after, 352)


async def test_every_account_of_the_shop_purged_leaves_only_other_data(shop: Shop, gate: AgeGate) -> None:
    gate.purger.add(shop.customers())
    expected = shop.snapshot()
    for customer in (353, 356, 351, 355, 354, 352):
        expected = rs.expected_after(expected, customer)
        await gate.purge(str(customer), ticket=f"T-9{customer}", operator="ops")
        assert shop.snapshot() == expected
    assert expected["customer"] == expected["address"] == expected["message"] == []
    assert len(expected["score"]) == 9  # the players are another account model


async def test_a_uuid_keyed_account(shop: Shop, gate: AgeGate) -> None:
    gate.purger.add(shop.db.account(shop.name("player"), "player_id", name="players"))
    before = shop.snapshot()
    player = rs.PLAYERS[1]
    # SQLite keeps a uuid as the text it was given (no form to insist on); PostgreSQL's uuid type
    # reads all these as the same uuid.
    for wrong in (
        ()
        if not shop.schema
        else (player.upper(), player.replace("-", ""), "{" + player + "}", f"urn:uuid:{player}")
    ):
        with pytest.raises(InvalidInput, match="a UUID in lower case with hyphens") as caught:
            await gate.purge(wrong, ticket="T-1", operator="ops")
        assert wrong not in str(caught.value)
    assert await gate.purger.jobs() == []
    report = await gate.purge(player, ticket="T-1", operator="ops")
    assert report.deleted == {"players": 4}
    assert shop.snapshot() == rs.expected_player_after(before, player)


@pytest.mark.parametrize("wrong", ["+351", "0351", "351.0", "3.51e2", "-0", "351 ", "99999999999999999999"])
async def test_an_id_the_key_column_would_convert_is_refused_before_the_freeze(
    shop: Shop, gate: AgeGate, wrong: str
) -> None:
    gate.purger.add(shop.customers())
    before = shop.snapshot()
    # Spaces around an id break the one account-id rule; the rest, the key column's form.
    refusal = InvalidAccountId if wrong != wrong.strip() else InvalidInput
    with pytest.raises(refusal) as caught:
        await gate.purge(wrong, ticket="T-1", operator="ops")
    assert wrong.strip() not in str(caught.value)
    assert shop.snapshot() == before
    assert await gate.purger.jobs() == []  # nothing journalled
    if wrong == wrong.strip():  # spaces around an id are refused everywhere (one account-id rule)
        assert await gate.status_of(wrong) == "unknown"
    assert await gate.status_of("351") == "unknown"
    with pytest.raises(refusal):
        await gate.purge(wrong, ticket="T-1", operator="ops", dry_run=True)
    await gate.purge("351", ticket="T-1", operator="ops")
    assert await gate.status_of("351") == "under_age"
    assert shop.snapshot() == rs.expected_after(before, 351)


async def test_sql_rows_on_an_integer_column_refuses_a_converted_id(shop: Shop, gate: AgeGate) -> None:
    gate.purger.add(shop.db.rows(shop.name("review"), "customer_id"))
    with pytest.raises(InvalidInput, match="integer with no sign"):
        await gate.purge("+351", ticket="T-1", operator="ops")
    assert await gate.purger.jobs() == []


@given(st.from_regex(r"[ +\-0-9.eE]{1,8}", fullmatch=True) | st.integers(-(2**64), 2**64).map(str))
def test_an_accepted_integer_id_is_the_one_form_of_its_number(text: str) -> None:
    canonical = re.fullmatch(r"-?(0|[1-9][0-9]*)", text) is not None and text != "-0"
    canonical = canonical and -(2**63) <= int(text) < 2**63
    for dialect, type_name in (("postgresql", "bigint"), ("sqlite", "INTEGER")):
        try:
            check_key_form(text, type_name, dialect, "t.id")
            accepted = True
        except InvalidInput:
            accepted = False
        if dialect == "postgresql":
            assert accepted == canonical
        else:  # SQLite leaves text that it does not read as a number alone: ask SQLite
            with contextlib.closing(sqlite3.connect(":memory:")) as conn:
                conn.execute("CREATE TABLE t (id INTEGER)")
                conn.execute("INSERT INTO t VALUES (?)", (text,))
                converted = conn.execute("SELECT typeof(id) FROM t").fetchone()[0] != "text"
            assert accepted == (canonical or not converted)


async def test_the_dry_run_plan_names_each_table_its_path_action_and_count(shop: Shop, gate: AgeGate) -> None:
    gate.purger.add(shop.customers())
    before = shop.snapshot()
    report = await gate.purge("351", ticket="T-1", operator="ops", dry_run=True)
    assert shop.snapshot() == before  # rolled back
    plan = {
        (s.table.rpartition(".")[2], s.path.replace(shop.name(""), ""), s.action): s.count
        for s in report.plan
    }
    assert plan == {
        ("message", "customer <- message.recipient_id", "set null"): 3,
        ("message", "customer <- message.sender_id", "delete"): 2,
        ("payment", "customer <- payment.customer_id", "delete"): 3,
        ("payment", "customer <- rental.customer_id <- payment.rental_id", "delete"): 0,
        ("review", "customer <- review.customer_id", "delete"): 1,
        ("rental", "customer <- rental.customer_id", "delete"): 2,
        ("customer", "customer <- customer.referred_by", "set null"): 1,
        ("customer", "customer", "delete"): 1,
        ("address", "customer -> address (customer.address_id)", "delete if unreferenced"): 0,
    }
    assert {s.handler for s in report.plan} == {"customers"}
    assert report.deleted == {"customers": 9}
    # Children come before the tables they reference.
    tables = [s.table.rpartition(".")[2] for s in report.plan]
    assert (
        tables.index("payment") < tables.index("rental") < tables.index("customer") < tables.index("address")
    )


async def test_a_failure_before_the_commit_rolls_the_whole_account_back(shop: Shop) -> None:
    handler = shop.customers()
    before = shop.snapshot()
    journalled: list[int] = []

    async def journal_down(rows: int) -> None:
        journalled.append(rows)
        raise RuntimeError("the journal is down")

    with pytest.raises(RuntimeError, match=r"^the journal is down$"):
        await handler.run_journalled("351", journal_down)
    assert journalled == [9]  # the deletes' own row count, journalled before the commit
    assert shop.snapshot() == before  # nothing half-deleted
    assert await handler.run_journalled("351", _record(journalled)) == 9
    assert journalled == [9, 9] and shop.snapshot() == rs.expected_after(before, 351)


def _record(into: list[int]) -> Callable[[int], Any]:
    async def record(rows: int) -> None:
        into.append(rows)

    return record


async def test_a_table_or_partition_added_later_is_purged_too(shop: Shop, gate: AgeGate) -> None:
    handler = shop.customers()
    gate.purger.add(handler)
    await handler.prepare()  # the plan is made before the schema changes
    extra = [f"CREATE TABLE {shop.name('wishlist')} (id integer PRIMARY KEY, customer_id integer REFERENCES "
             f"{shop.name('customer')}(customer_id))",
             f"INSERT INTO {shop.name('wishlist')} VALUES (1, 351), (2, 353)"]  # fmt: skip
    if shop.schema:
        extra += [
            f"CREATE TABLE {shop.name('payment_2026_04')} PARTITION OF {shop.name('payment')} "
            "FOR VALUES FROM ('2026-04-01') TO ('2026-05-01')",
            f"INSERT INTO {shop.name('payment')} VALUES (9001, NULL, 351, 5, '2026-04-02')",
            f"INSERT INTO {shop.name('payment')} VALUES (9002, NULL, 353, 5, '2026-04-02')",
        ]
    shop.execute(*extra)
    report = await gate.purge("351", ticket="T-1", operator="ops")
    with contextlib.closing(shop.connect()) as conn:
        left = conn.execute(f"SELECT id FROM {shop.name('wishlist')} ORDER BY id").fetchall()
        payments = conn.execute(
            f"SELECT customer_id FROM {shop.name('payment')} WHERE customer_id = 351"
        ).fetchall()
    assert [r[0] for r in left] == [2] and payments == []
    assert report.deleted == {"customers": 10 + (1 if shop.schema else 0)}


async def test_partition_parents_map_partitions_and_inheritance_children(shop: Shop) -> None:
    parents = await partition_parents(shop.db)
    if not shop.schema:
        assert parents == {}
        return
    mine = {k: v for k, v in parents.items() if k.startswith(shop.schema + ".")}
    assert mine == {
        shop.name("payment_2026_01"): shop.name("payment"),
        shop.name("payment_2026_02"): shop.name("payment"),
        shop.name("payment_2026_03"): shop.name("payment"),
        shop.name("review_archive"): shop.name("review"),
    }


async def test_choices_the_handler_cannot_follow_are_configuration_errors(shop: Shop, gate: AgeGate) -> None:
    cases = {
        "leads back to": {"set_null": {"message.recipient_id"}},  # customer.referred_by not chosen
        "is not a foreign key": {"set_null": {*rs.SET_NULL, "message.body"}},
        "cannot hold NULL": {"set_null": {*rs.SET_NULL, "rental.customer_id"}},
        "is not a table": {"owns": ["addresses"]},
        "list of names": {"owns": "address"},
    }
    for message, options in cases.items():
        with pytest.raises(ConfigurationError, match=message):
            await shop.customers(**options).check_id("351")
    with pytest.raises(ConfigurationError, match="has no column"):
        await shop.db.account(shop.name("customer"), "id").prepare()


async def test_concurrent_purges_of_a_household_leave_no_orphan(shop: Shop) -> None:
    for first, second in ((351, 352), (354, 356)):
        handlers = [shop.customers(), shop.customers()]
        await asyncio.gather(handlers[0](str(first)), handlers[1](str(second)))
    addresses = [a[0] for a in shop.snapshot()["address"]]
    assert addresses == [2]


async def test_a_purge_holding_the_shared_address_makes_the_other_wait(shop: Shop) -> None:
    """One household member's purge is half-way (its address locked, its row deleted, not yet
    committed) when the other's starts: the second waits for the lock, then sees the first's
    delete and removes the address. Without the lock both would keep it: an orphan."""
    if not shop.schema:
        pytest.skip("SQLite's BEGIN IMMEDIATE serialises whole transactions")
    import psycopg

    assert POSTGRES_URL is not None
    first = psycopg.connect(POSTGRES_URL)
    try:
        first.execute(f"SELECT address_id FROM {shop.name('address')} WHERE address_id = 1 FOR UPDATE")
        for table, column in (
            ("message", "sender_id"),
            ("payment", "customer_id"),
            ("review", "customer_id"),
        ):
            first.execute(f"DELETE FROM {shop.name(table)} WHERE {column} = 352")
        first.execute(f"UPDATE {shop.name('message')} SET recipient_id = NULL WHERE recipient_id = 352")
        first.execute(f"UPDATE {shop.name('customer')} SET referred_by = NULL WHERE referred_by = 352")
        first.execute(f"DELETE FROM {shop.name('rental')} WHERE customer_id = 352")
        first.execute(f"DELETE FROM {shop.name('customer')} WHERE customer_id = 352")
        second = asyncio.create_task(shop.customers()("351"))
        await _until_a_backend_waits_for_a_lock(shop)
        assert not second.done()
        # The first sees 351 still living there (its purge is not committed): it keeps the address.
        first.execute(
            f"DELETE FROM {shop.name('address')} a WHERE address_id = 1 AND NOT EXISTS "
            f"(SELECT 1 FROM {shop.name('customer')} c WHERE c.address_id = a.address_id)"
        )
        first.commit()
        await asyncio.wait_for(second, 30)
    finally:
        first.close()
    assert [a[0] for a in shop.snapshot()["address"]] == [2, 3]


async def _until_a_backend_waits_for_a_lock(shop: Shop) -> None:
    for _ in range(600):  # bounded: at most ~30 s
        with contextlib.closing(shop.connect()) as conn:
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
                (f"%{shop.schema}%FOR UPDATE%",),
            ).fetchone()[0]
        if waiting:
            return
        await asyncio.sleep(0.05)
    pytest.fail("the second purge never waited for the address lock")


async def test_connections_are_reused(shop: Shop, gate: AgeGate) -> None:
    handler = shop.customers()
    gate.purger.add(handler)
    opened: list[object] = []
    connect = shop.db._pool._connect

    def counting() -> object:
        opened.append(None)
        return connect()

    shop.db._pool._connect = counting
    for customer in (351, 353, 355):
        await gate.purge(str(customer), ticket=f"T-9{customer}", operator="ops")
    assert len(opened) <= 1


async def test_sql_rows_on_a_partition_named_directly_still_purges(shop: Shop, gate: AgeGate) -> None:
    table = shop.name("payment_2026_01") if shop.schema else "payment"
    gate.purger.add(shop.db.rows(table, "customer_id", name="payments"))
    report = await gate.purge("351", ticket="T-1", operator="ops")
    assert report.deleted == {"payments": 1 if shop.schema else 3}


async def test_a_purge_cancelled_mid_transaction_rolls_back_and_frees_the_connection(shop: Shop) -> None:
    entered, release = threading.Event(), threading.Event()

    def delete_then_wait(conn: Any) -> int:
        rows = int(conn.execute(f"DELETE FROM {shop.name('review')} WHERE customer_id = 353").rowcount)
        entered.set()
        release.wait(30)
        return rows

    async def nothing(rows: int) -> None:
        return None

    before = shop.snapshot()
    task = asyncio.create_task(run_transaction(shop.db, delete_then_wait, before_commit=nothing))
    await asyncio.to_thread(entered.wait, 30)
    task.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The abandoned transaction was rolled back (its connection closed, not pooled with the
    # transaction open), and the database is free for the next purge.
    expected = rs.expected_after(before, 353)
    removed = sum(len(before[t]) - len(expected[t]) for t in rs.TABLES)
    assert await asyncio.wait_for(shop.customers()("353"), 30) == removed
    assert shop.snapshot() == expected


def test_the_postgres_plan_check_sees_a_table_renamed_or_swapped(postgres_schema: str) -> None:
    # A name that comes to mean another table (a step table renamed away, the account table
    # swapped for a new one that others reference) must make the plan again, even when no
    # trigger of the old tables changed.
    import psycopg

    from agegate.purge.catalog import postgres_watch

    s = postgres_schema
    assert POSTGRES_URL is not None
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(
            f'CREATE SCHEMA "{s}"; CREATE TABLE "{s}".customer (id int PRIMARY KEY);'
            f'CREATE TABLE "{s}".orders (id int PRIMARY KEY, customer_id int REFERENCES "{s}".customer(id))'
        )
        tables = [(s, "customer"), (s, "orders")]
        for change in (
            f'ALTER TABLE "{s}".orders RENAME TO orders_old',
            f'ALTER TABLE "{s}".customer RENAME TO customer_old;'
            f'CREATE TABLE "{s}".customer (id int PRIMARY KEY);'
            f'CREATE TABLE "{s}".posts (id int, customer_id int REFERENCES "{s}".customer(id))',
        ):
            check = postgres_watch(conn, tables)
            before = conn.execute(check).fetchone()
            conn.execute(change)
            assert conn.execute(check).fetchone() != before, change
            tables = [(s, "customer"), (s, "orders_old")]  # the second change starts from the first
