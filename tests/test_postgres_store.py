"""The store contract on the PostgreSQL store, and what only the PostgreSQL store promises.

Needs ``AGEGATE_TEST_POSTGRES_URL`` (for example ``postgresql://postgres@127.0.0.1:5432/test``);
each test gets a fresh schema, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import quote

import pytest
from store_contract import HOUR, T0, StoreContract, h, job, record

from agegate import AgeGate, Keyring, StoreError, open_store
from agegate.purge import PurgeError
from agegate.stores import KeyUse, Store
from agegate.stores.postgres import SCHEMA_VERSION, PostgresStore, PostgresURL

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

POSTGRES_URL = os.environ.get("AGEGATE_TEST_POSTGRES_URL")
ADULT = {"birth_date": "1990-01-01"}


def _with_query(url: str, **params: str) -> str:
    sep = "&" if "?" in url else "?"
    return url + sep + "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())


def _admin(sql: str) -> None:
    import psycopg

    assert POSTGRES_URL
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture
def schema(postgres_schema: str) -> str:
    return postgres_schema  # conftest's: a fresh one, dropped afterwards


@pytest.fixture
def url(postgres_url: str) -> str:
    return postgres_url


async def until(condition: Callable[[], bool | Awaitable[bool]], *, within: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail after ``within`` seconds (a bound, not a sync)."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "the condition did not hold in time"
        await asyncio.sleep(0.01)


class TestPostgresStore(StoreContract):
    persistent = True

    @pytest.fixture
    async def store(self, url: str) -> AsyncIterator[Store]:
        store = PostgresStore(url)
        await store.open()
        yield store
        await store.close()
        await store.close()

    async def reopen(self, store: Store) -> Store:
        await store.close()
        again = PostgresStore(store.url)  # the test URL has no password
        await again.open()
        return again


# -- URLs and errors that need no server ---------------------------------------------------------


def test_urls_keep_the_password_out_of_sight() -> None:
    store = open_store("postgresql://app:s3cret-pw@db.example:6543/shop?sslmode=require&schema=agegate")
    assert isinstance(store, PostgresStore)
    assert store.url == "postgresql://app@db.example:6543/shop?sslmode=require&schema=agegate"
    assert "s3cret" not in repr(store)
    parsed = PostgresURL("postgres://app@h/db?password=pw2&pool_max_size=3&pool_min_size=0&connect_timeout=2")
    assert parsed.conninfo == "postgres://app@h/db?password=pw2&connect_timeout=2"
    assert parsed.safe == "postgres://app@h/db?pool_max_size=3&pool_min_size=0&connect_timeout=2"
    assert (parsed.pool_min_size, parsed.pool_max_size, parsed.schema) == (0, 3, None)
    assert isinstance(open_store("postgres://h/db"), PostgresStore)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("postgresql://h/db?schema=Bad-Name", r"the \?schema= of a PostgreSQL store URL is a lower-case"),
        ("postgresql://h/db?schema=a;drop", r"the \?schema= of a PostgreSQL store URL is a lower-case"),
        ("postgresql://h/db?pool_max_size=0", r"pool_max_size in a PostgreSQL store URL is a whole number"),
        ("postgresql://h/db?pool_min_size=5&pool_max_size=2", r"pool_max_size must not be smaller than"),
        ("postgresql://h/db?pool_timeout=soon", r"pool_timeout in a PostgreSQL store URL is a whole number"),
        ("postgresql://h/db#frag", r"a PostgreSQL store URL has no '#' part: postgresql://user@host"),
        ("postgresql://h/db?nosuchlibpqoption=1", r"the PostgreSQL store URL .* cannot be parsed by libpq$"),
    ],
)
def test_bad_urls_are_refused_clearly(bad: str, message: str) -> None:
    # agegate's own error and message: a psycopg error passed on would fail here.
    with pytest.raises(StoreError, match=f"^{message}"):
        open_store(bad)


def test_without_psycopg_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(StoreError, match=r"pip install 'agegate\[postgres\]'"):
        open_store("postgresql://postgres@127.0.0.1/test")
    monkeypatch.delitem(sys.modules, "psycopg")
    monkeypatch.setitem(sys.modules, "psycopg_pool", None)
    with pytest.raises(StoreError, match=r"agegate\[postgres\]"):
        open_store("postgresql://postgres@127.0.0.1/test")


async def test_an_unreachable_server_is_a_store_error_without_the_password() -> None:
    with socket.socket() as sock:  # a port that was just free and now has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = PostgresStore(f"postgresql://agegate:s3cret-pw@127.0.0.1:{port}/test?connect_timeout=3")
    with pytest.raises(StoreError) as caught:
        await store.open()
    message = str(caught.value)
    assert "s3cret-pw" not in message and "s3cret-pw" not in repr(store)
    assert f"127.0.0.1:{port}" in message and "connecting failed" in message
    with pytest.raises(StoreError, match="not open"):
        await store.get_attestation([h("a")])
    await store.close()


async def test_a_missing_database_is_a_store_error_without_the_password() -> None:
    if not POSTGRES_URL:
        pytest.skip("AGEGATE_TEST_POSTGRES_URL is not set")
    import psycopg

    params = psycopg.conninfo.conninfo_to_dict(POSTGRES_URL)
    user, host, port = (
        params.get("user", "postgres"),
        params.get("host", "127.0.0.1"),
        params.get("port", 5432),
    )
    store = PostgresStore(f"postgresql://{user}:pw-9f8e7d@{host}:{port}/agegate_no_such_db")
    with pytest.raises(StoreError) as caught:
        await store.open()
    assert "pw-9f8e7d" not in str(caught.value)
    assert "agegate_no_such_db" in str(caught.value)


# -- schema ------------------------------------------------------------------------------------


async def test_tables_are_prefixed_and_typed(url: str, schema: str) -> None:
    import psycopg

    async with PostgresStore(url):
        pass
    assert POSTGRES_URL
    with psycopg.connect(POSTGRES_URL) as conn:
        tables = {
            name
            for (name,) in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
            )
        }
        assert tables == {
            "agegate_meta",
            "agegate_attestations",
            "agegate_identifier_blocks",
            "agegate_purge_jobs",
            "agegate_purge_steps",
            "agegate_key_checks",
            "agegate_reports",
            "agegate_signal_flags",
        }
        types = dict(
            conn.execute(
                "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = %s",
                (schema,),
            ).fetchall()
        )
        assert types["agegate_attestations.subject_hash"] == "bytea"
        assert types["agegate_attestations.checked_at"] == "timestamp with time zone"
        assert types["agegate_identifier_blocks.blocked_until"] == "timestamp with time zone"
        assert types["agegate_reports.sealed"] == "bytea"
        assert types["agegate_reports.due_at"] == "timestamp with time zone"
        assert types["agegate_purge_jobs.lease_until"] == "timestamp with time zone"
        assert conn.execute(
            f'SELECT application, schema_version FROM "{schema}".agegate_meta'
        ).fetchall() == [("agegate", SCHEMA_VERSION)]


async def test_a_version_1_schema_is_migrated_and_keeps_its_records(url: str, schema: str) -> None:
    from agegate.stores.postgres import schema as postgres_schema

    # The schema as the first release made it, with an attestation and a block in it.
    _admin(f'CREATE SCHEMA "{schema}"')
    for statement in postgres_schema.MIGRATIONS[0]:
        _admin(f'SET search_path TO "{schema}"; {statement}')
    _admin(
        f'CREATE TABLE "{schema}".agegate_meta (singleton boolean PRIMARY KEY DEFAULT true '
        "CHECK (singleton), application text NOT NULL, schema_version integer NOT NULL)"
    )
    _admin(f"""INSERT INTO "{schema}".agegate_meta (application, schema_version) VALUES ('agegate', 1)""")
    _admin(
        f'INSERT INTO "{schema}".agegate_attestations VALUES '
        f"('\\x{h('a').hex()}', 'k1', '\\x{b'mac-a'.hex()}', 'min-age-13', '{T0.isoformat()}')"
    )
    _admin(
        f'INSERT INTO "{schema}".agegate_identifier_blocks VALUES '
        f"('\\x{h('e').hex()}', '{(T0 + HOUR).isoformat()}')"
    )
    async with PostgresStore(url) as store:
        assert await store.get_attestation([h("a")]) == record("a")
        assert await store.key_uses(now=T0) == [KeyUse("k1", attestations=1)]
        await store.register_keys({"k1": b"check"})
        assert await store.key_uses(now=T0) == [
            KeyUse("k1", attestations=1, blocks=1, blocked_until=T0 + HOUR)
        ]
    assert POSTGRES_URL
    import psycopg

    with psycopg.connect(POSTGRES_URL) as conn:
        assert conn.execute(f'SELECT schema_version FROM "{schema}".agegate_meta').fetchall() == [
            (SCHEMA_VERSION,)
        ]


async def test_many_instances_opening_at_once_make_one_schema(url: str) -> None:
    stores = [PostgresStore(url) for _ in range(4)]
    try:
        opened = await asyncio.gather(*(s.open() for s in stores), return_exceptions=True)
        assert opened == [None] * len(stores)
        await stores[0].put_attestation(record("a"))
        assert await stores[3].get_attestation([h("a")]) == record("a")
    finally:
        for s in stores:
            await s.close()


async def test_tables_that_are_not_agegates_are_refused(schema: str) -> None:
    assert POSTGRES_URL
    _admin(f'CREATE SCHEMA "{schema}"')
    _admin(f'CREATE TABLE "{schema}".agegate_attestations (id serial PRIMARY KEY, name text)')
    # This time through the search_path (libpq options), not ?schema=.
    url = _with_query(POSTGRES_URL, options=f"-csearch_path={schema}")
    store = PostgresStore(url)
    with pytest.raises(StoreError, match="not made by agegate"):
        await store.open()
    _admin(f'CREATE TABLE "{schema}".agegate_meta (name text, version int)')
    with pytest.raises(StoreError, match="not made by agegate"):
        await store.open()
    _admin(f'DROP TABLE "{schema}".agegate_meta')
    _admin(f"""CREATE TABLE "{schema}".agegate_meta (application text, schema_version int)""")
    _admin(f"""INSERT INTO "{schema}".agegate_meta VALUES ('someone-else', 1)""")
    with pytest.raises(StoreError, match="not made by agegate"):
        await store.open()
    # The foreign table was left alone.
    import psycopg

    with psycopg.connect(POSTGRES_URL) as conn:
        assert conn.execute(f'SELECT count(*) FROM "{schema}".agegate_attestations').fetchone() == (0,)


async def test_an_apps_own_tables_beside_agegates_are_fine(schema: str) -> None:
    assert POSTGRES_URL
    _admin(f'CREATE SCHEMA "{schema}"')
    _admin(f'CREATE TABLE "{schema}".users (id serial PRIMARY KEY, email text)')
    async with PostgresStore(_with_query(POSTGRES_URL, schema=schema)) as store:
        await store.put_attestation(record("a"))
        assert await store.get_attestation([h("a")]) == record("a")


async def test_a_newer_schema_is_refused(url: str, schema: str) -> None:
    async with PostgresStore(url):
        pass
    _admin(f'UPDATE "{schema}".agegate_meta SET schema_version = {SCHEMA_VERSION + 1}')
    with pytest.raises(StoreError, match="upgrade agegate"):
        async with PostgresStore(url):
            pass


# -- several instances ----------------------------------------------------------------------------


async def test_instances_see_each_others_bump_revision(url: str) -> None:
    async with PostgresStore(url) as a, PostgresStore(url) as b:
        seen_by_b = b.revision()
        await a.bump_revision()
        await until(lambda: b.revision() != seen_by_b)
        seen_by_a = a.revision()
        await b.bump_revision()
        await until(lambda: a.revision() != seen_by_a)


async def test_a_store_in_another_schema_is_not_disturbed(url: str, schema: str) -> None:
    assert POSTGRES_URL
    other_schema = schema + "_other"
    try:
        async with (
            PostgresStore(url) as a,
            PostgresStore(_with_query(POSTGRES_URL, schema=other_schema)) as b,
        ):
            before = b.revision()
            await a.bump_revision()
            # Twenty signals for a's schema, then one for b's, committed together: b counts one.
            statements = "; ".join([f"NOTIFY agegate_revision, '{schema}'"] * 20)
            _admin(f"BEGIN; {statements}; NOTIFY agegate_revision, '{other_schema}'; COMMIT")
            await until(lambda: b.revision() != before)
            assert b.revision() == before + 1
    finally:
        _admin(f'DROP SCHEMA IF EXISTS "{other_schema}" CASCADE')


async def test_a_dropped_listen_connection_reconnects_and_drops_caches(url: str) -> None:
    async with PostgresStore(url) as a, PostgresStore(url) as b:
        old_pid = b._listener_pid
        before = b.revision()
        _admin(f"SELECT pg_terminate_backend({old_pid})")
        await until(lambda: b.revision() != before)  # caches dropped while it is down
        await until(lambda: b._listening and b._listener_pid != old_pid)
        settled = b.revision()
        assert b.revision() == settled  # listening again: the counter holds still
        await a.bump_revision()
        await until(lambda: b.revision() != settled)  # notifications arrive again


async def test_a_server_side_disconnect_costs_no_failed_call(url: str) -> None:
    name = "agegate-test-" + secrets.token_hex(4)  # only this test's connections are cut
    async with PostgresStore(_with_query(url, application_name=name, pool_min_size="2")) as store:
        await store.put_attestation(record("a"))
        _admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{name}'")
        for _ in range(3):  # every pooled connection is dead: each is replaced before use
            assert await store.get_attestation([h("a")]) == record("a")
        await until(lambda: store._listening)


async def test_concurrent_create_and_claim_from_two_instances_have_one_winner(url: str) -> None:
    name = "agegate-test-" + secrets.token_hex(4)  # to find b's connections in pg_stat_activity
    async with PostgresStore(url) as a, PostgresStore(_with_query(url, application_name=name)) as b:
        made = await asyncio.gather(
            *(s.create_job(job("s1", job_id=f"job-{i}")) for i, s in enumerate([a, b] * 4))
        )
        assert sum(created for _, created in made) == 1
        (winner,) = {j.job_id for j, _ in made}
        won = await asyncio.gather(
            *(s.claim_job(winner, owner=f"w{i}", until=T0 + HOUR, now=T0) for i, s in enumerate([a, b] * 4))
        )
        assert sum(won) == 1
        got = await b.get_job(winner)
        assert got is not None and got.lease_owner == f"w{won.index(True)}"
        owner = got.lease_owner
        assert owner is not None
        expired = T0 + 2 * HOUR  # the lease has run out: anyone may claim, unless the row is busy
        import psycopg

        assert POSTGRES_URL
        schema = a.url.rsplit("schema=", 1)[1]
        async with await psycopg.AsyncConnection.connect(POSTGRES_URL) as busy:
            # Another transaction is working on the job row (as the holder does while it
            # journals a step): a rival's claim skips the locked row and is refused at once...
            await busy.execute(
                f'SELECT 1 FROM "{schema}".agegate_purge_jobs WHERE job_id = %s FOR UPDATE', (winner,)
            )
            rival = a.claim_job(winner, owner="rival", until=expired + HOUR, now=expired)
            assert not await asyncio.wait_for(rival, timeout=10)
            # ...while the holder renewing its own lease waits for the row instead.
            renewal = asyncio.create_task(b.claim_job(winner, owner=owner, until=expired + HOUR, now=expired))
            await until(lambda: _waiting_for_a_lock(name))
            assert not renewal.done()
            await busy.commit()
        assert await renewal
        got = await a.get_job(winner)
        assert got is not None and (got.lease_owner, got.lease_until) == (owner, expired + HOUR)


def _waiting_for_a_lock(application_name: str) -> bool:
    import psycopg

    assert POSTGRES_URL
    with psycopg.connect(POSTGRES_URL) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
            "AND wait_event_type = 'Lock' AND query LIKE %s",
            (application_name, "%agegate_purge_jobs%FOR UPDATE"),
        ).fetchone()
    return bool(row and row[0])


# -- the gate end to end ------------------------------------------------------------------------


async def test_signup_status_purge_and_resume_on_postgres(url: str, keyring: Keyring) -> None:
    broken = True
    deleted: list[str] = []
    async with AgeGate(keys=keyring, store=url) as gate, AgeGate(keys=keyring, store=url) as other:

        @gate.purger.handler("orders")
        async def orders(subject: str) -> int:
            if broken:
                raise OSError("the orders database is down")
            deleted.append(subject)
            return 3

        await gate.signup(ADULT, subject="acct-7", identifiers={"email": "kid@example.org"})
        assert await gate.status_of("acct-7") == "allowed"
        assert await other.cached_status("acct-7") == "allowed"
        assert other.peek_status("acct-7") == "allowed"

        with pytest.raises(PurgeError, match="'orders'"):
            await gate.purge("acct-7", ticket="T-1", operator="ops", identifiers={"email": "kid@example.org"})
        # The account is frozen at once, and the other instance's cache is dropped.
        assert await gate.status_of("acct-7") == "under_age"
        await until(lambda: other.peek_status("acct-7") is None)
        assert await other.cached_status("acct-7") == "under_age"
        (job_,) = await gate.purger.jobs()
        assert job_.state == "failed" and job_.sealed_subject is not None

        broken = False
        (report,) = await gate.purger.resume()
        assert report.state == "done" and report.deleted == {"orders": 3}
        assert deleted == ["acct-7"]
        assert await gate.purger.resume() == []
        assert await other.is_blocked({"email": "kid@example.org"})
        (done,) = await other.purger.jobs()
        assert done.state == "done" and done.sealed_subject is None and done.identifier_hashes == ()

    # Nothing stored names the person.
    import psycopg

    assert POSTGRES_URL
    schema = url.rsplit("schema=", 1)[1]
    with psycopg.connect(POSTGRES_URL) as conn:
        dump = repr(
            [
                conn.execute(f'SELECT * FROM "{schema}".{table}').fetchall()
                for table in ("agegate_attestations", "agegate_identifier_blocks", "agegate_purge_jobs")
            ]
        )
    assert "acct-7" not in dump and "kid@example.org" not in dump and "1990" not in dump
