"""Built-in purge handlers (SQLite, PostgreSQL, per-account files) and the coverage check."""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from agegate import AgeGate, ConfigurationError, Keyring
from agegate.errors import InvalidInput
from agegate.handlers import AccountFiles, PostgresDatabase, SQLiteDatabase
from agegate.purge.coverage import classify
from agegate.stores import MemoryStore

pytestmark = [pytest.mark.anyio, pytest.mark.time_limit(60)]

POSTGRES_URL = os.environ.get("AGEGATE_TEST_POSTGRES_URL")
NASTY = ["acct-1", "x' OR '1'='1", 'a"; DROP TABLE orders; --', "%", "_", "\\", "💥", "1"]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "app.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute('CREATE TABLE "Order Lines" (id INTEGER PRIMARY KEY, "user" TEXT, note BLOB)')
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, account_id TEXT, total INTEGER)")
        conn.execute("CREATE TABLE numbered (account_id INTEGER, v TEXT)")
        for subject in NASTY:
            conn.execute("INSERT INTO orders (account_id, total) VALUES (?, 1), (?, 2)", (subject, subject))
        conn.execute("INSERT INTO numbered VALUES (42, 'a'), (43, 'b')")
    return path


def _rows(path: Path, query: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(query).fetchall()


async def test_sqlite_rows_deletes_only_exact_matches(db_path: Path) -> None:
    handler = SQLiteDatabase(db_path).rows("orders", "account_id")
    assert handler.name == "orders"
    before = _rows(db_path, "SELECT * FROM orders ORDER BY id")
    for subject in NASTY:
        assert await handler.count(subject) == 2
        assert await handler(subject) == 2
        assert await handler(subject) == 0  # idempotent
        remaining = _rows(db_path, "SELECT * FROM orders ORDER BY id")
        assert remaining == [row for row in before if row[1] not in NASTY[: NASTY.index(subject) + 1]]
    assert _rows(db_path, "SELECT count(*) FROM orders") == [(0,)]


async def test_sqlite_integer_column_matches_a_string_account_id(db_path: Path) -> None:
    handler = SQLiteDatabase(f"sqlite:///{db_path}").rows("numbered", "account_id")
    assert await handler("42") == 1
    assert _rows(db_path, "SELECT * FROM numbered") == [(43, "b")]


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("orders; DROP TABLE orders", "account_id"),
        ("orders", "account_id = account_id OR 1"),
        ('or"ders', "account_id"),
        ("Order Lines", "user"),  # a valid name in SQL, but not a plain one: refused rather than guessed
        ("1orders", "account_id"),
        ("", "account_id"),
        ("a.b.c", "account_id"),
    ],
)
def test_sql_names_are_validated(db_path: Path, table: str, column: str) -> None:
    with pytest.raises(ConfigurationError, match="is not a plain SQL name"):
        SQLiteDatabase(db_path).rows(table, column)


async def test_reserved_words_are_quoted(tmp_path: Path) -> None:
    path = tmp_path / "app.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute('CREATE TABLE "order" ("user" TEXT, "select" TEXT)')
        conn.execute("INSERT INTO \"order\" VALUES ('u1', 'x'), ('u2', 'y')")
    handler = SQLiteDatabase(path).rows("order", "user")
    assert await handler("u1") == 1
    assert _rows(path, 'SELECT * FROM "order"') == [("u2", "y")]


async def test_a_missing_sqlite_file_is_a_clear_error_and_not_created(tmp_path: Path) -> None:
    handler = SQLiteDatabase(tmp_path / "nope.sqlite3").rows("orders", "account_id")
    with pytest.raises(ConfigurationError, match="does not exist"):
        await handler("acct-1")
    assert not (tmp_path / "nope.sqlite3").exists()


# -- per-account files ----------------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> Path:
    root = tmp_path / "uploads"
    for account in ("acct-1", "acct-2"):
        (root / account / "sub").mkdir(parents=True)
        (root / account / "a.txt").write_text(account)
        (root / account / "sub" / "b.txt").write_text(account)
        (root / f"{account}.json").write_text("{}")
    return root


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


async def test_account_files_deletes_the_account_files_only(files: Path) -> None:
    handler = AccountFiles(files, names=("{subject}", "{subject}.json"))
    assert await handler.count("acct-1") == 3
    assert await handler("acct-1") == 3
    assert await handler("acct-1") == 0
    assert _tree(files) == ["acct-2", "acct-2.json", "acct-2/a.txt", "acct-2/sub", "acct-2/sub/b.txt"]


@pytest.mark.parametrize("subject", ["..", ".", "../uploads", "acct-2/../acct-2", "a\\b", "a\x00b"])
async def test_account_files_refuses_path_tricks(files: Path, subject: str) -> None:
    before = _tree(files)
    with pytest.raises(InvalidInput, match="cannot name a file"):
        await AccountFiles(files)(subject)
    assert _tree(files) == before


@pytest.mark.parametrize("template", ["/etc/{subject}", "../{subject}", "x/../../{subject}", "static"])
def test_account_files_templates_stay_inside_the_root(files: Path, template: str) -> None:
    with pytest.raises(ConfigurationError, match="template"):
        AccountFiles(files, names=(template,))


async def test_account_files_removes_links_without_following_them(files: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    (files / "acct-3").symlink_to(outside, target_is_directory=True)
    (files / "acct-1" / "link").symlink_to(outside, target_is_directory=True)
    assert await AccountFiles(files)("acct-3") == 1
    assert await AccountFiles(files)("acct-1") == 3
    assert (outside / "keep.txt").read_text() == "keep"
    assert not (files / "acct-3").exists() and not (files / "acct-1").exists()


async def test_account_files_refuses_a_parent_that_links_outside(files: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "acct-1.png").write_text("keep")
    (files / "avatars").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidInput, match="leave the files root"):
        await AccountFiles(files, names=("avatars/{subject}.png",))("acct-1")
    assert (outside / "acct-1.png").exists()


# -- registering built-in handlers with a gate ----------------------------------------------


async def test_built_in_handlers_in_a_purge(db_path: Path, files: Path, keyring: Keyring) -> None:
    async with AgeGate(keys=keyring, store=MemoryStore()) as gate:
        db = SQLiteDatabase(db_path)
        gate.purger.add(db.rows("orders", "account_id"))
        gate.purger.add(db.rows("numbered", "account_id", name="numbered-rows"))
        gate.purger.add(AccountFiles(files, names=("{subject}", "{subject}.json")))
        assert gate.purger.names == ("orders", "numbered-rows", "files")
        dry = await gate.purge("acct-1", ticket="T-1", operator="a", dry_run=True)
        assert dry.deleted == {"orders": 2, "numbered-rows": 0, "files": 3}
        report = await gate.purge("acct-1", ticket="T-1", operator="a")
        assert report.deleted == {"orders": 2, "numbered-rows": 0, "files": 3}
        with pytest.raises(ConfigurationError, match="already registered"):
            gate.purger.add(db.rows("orders", "id"))


# -- coverage -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "column", "kind"),
    [
        ("orders", "account_id", "account id"),
        ("orders", "userId", "account id"),
        ("orders", "customer_uuid", "account id"),
        ("comments", "author", "account id"),
        ("users", "id", "account id"),
        ("orders", "id", None),
        ("newsletter", "email", "email"),
        ("newsletter", "contact_email_address", "email"),
        ("newsletter", "EMail", "email"),
        ("sms", "phone_number", "phone"),
        ("sms", "mobile", "phone"),
        ("profiles", "first_name", "name"),
        ("profiles", "displayName", "name"),
        ("profiles", "username", "name"),
        ("users", "name", "name"),
        ("products", "name", None),
        ("products", "price", None),
        ("events", "created_at", None),
        # PostgreSQL folds an unquoted userId to userid; the person's word is then inside a token.
        ("orders", "userid", "account id"),
        ("orders", "accountid", "account id"),
        ("orders", "customerid", "account id"),
        ("sessions", "uid", "account id"),
        ("messages", "from_user", "account id"),
        ("posts", "created_by", "account id"),
        ("posts", "createdby", "account id"),
        ("reviews", "reviewer_id", "account id"),
        ("events", "actor_id", "account id"),
        ("friendships", "friend_id", "account id"),
        ("orders", "customer_name", "name"),
        ("posts", "author_name", "name"),
        ("messages", "recipient_name", "name"),
        ("orders", "billing_name", "name"),
        ("orders", "shipping_name", "name"),
        ("payments", "cardholder_name", "name"),
        ("orders", "product_name", None),
        ("teams", "team_name", None),
        ("products", "category_name", None),
        ("audit", "table_name", None),
        ("logins", "ip_address", "ip address"),
        ("logs", "remote_addr", "ip address"),
        ("logins", "user_agent", "user agent"),
        ("profiles", "date_of_birth", "birth date"),
        ("profiles", "dob", "birth date"),
        ("orders", "shipping_address", "address"),
        ("users", "postcode", "address"),
        ("orders", "email_address", "email"),
        ("accounts", "account_type", None),
        ("players", "player_score", None),
        ("ledger", "accounting_code", None),
        ("orders", "order_id", None),
    ],
)
def test_classify(table: str, column: str, kind: str | None) -> None:
    assert classify(table, column) == kind


async def test_coverage_lists_uncovered_personal_columns(tmp_path: Path, keyring: Keyring) -> None:
    path = tmp_path / "app.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(
            """
            CREATE TABLE orders (id INTEGER PRIMARY KEY, account_id TEXT, email TEXT);
            CREATE TABLE newsletter (id INTEGER PRIMARY KEY, email TEXT, joined TEXT);
            CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, owner_id TEXT);
            CREATE TABLE audit (id INTEGER PRIMARY KEY, user_id TEXT);
            CREATE TABLE agegate_cache (subject TEXT);
            """
        )
    gate = AgeGate(keys=keyring, store=MemoryStore())
    db = SQLiteDatabase(path)
    gate.purger.add(db.rows("orders", "account_id"))
    uncovered, tables = await gate.purger.coverage()
    assert tables == 4
    assert [(u.table, u.column, u.kind) for u in uncovered] == [
        ("audit", "user_id", "account id"),
        ("newsletter", "email", "email"),
        ("products", "owner_id", "account id"),
    ]
    assert {u.database for u in uncovered} == {f"sqlite:{path.resolve()}"}

    @gate.purger.handler("newsletter", covers=[db.table("newsletter")])
    async def newsletter(subject: str) -> int:
        return 0

    gate.purger.exempt(db.table("products"), "owner_id")
    gate.purger.exempt(db.table("audit"))
    assert await gate.purger.coverage() == ([], 4)


async def test_coverage_checks_other_people_in_a_table_purged_by_one_column(
    tmp_path: Path, keyring: Keyring
) -> None:
    path = tmp_path / "app.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(
            """
            CREATE TABLE messages (id INTEGER PRIMARY KEY, sender_id TEXT, recipient_id TEXT,
                                   recipient_email TEXT, sender_name TEXT, body TEXT);
            CREATE TABLE profiles (account_id TEXT, email TEXT, display_name TEXT, created_by TEXT);
            """
        )
    gate = AgeGate(keys=keyring, store=MemoryStore())
    db = SQLiteDatabase(path)
    gate.purger.add(db.rows("messages", "sender_id"))
    gate.purger.add(db.rows("profiles", "account_id"))
    uncovered, tables = await gate.purger.coverage()
    # The sender's own rows go; the child may still be the recipient of rows that stay.
    assert tables == 2
    assert [(u.table, u.column, u.kind) for u in uncovered] == [
        ("messages", "recipient_id", "account id"),
        ("messages", "recipient_email", "email"),
        ("profiles", "created_by", "account id"),
    ]
    gate.purger.add(db.rows("messages", "recipient_id", name="received"))
    gate.purger.exempt(db.table("messages"), "recipient_email")
    gate.purger.exempt(db.table("profiles"), "created_by")
    assert await gate.purger.coverage() == ([], 2)


async def test_coverage_matches_table_names_as_sqlite_does(tmp_path: Path, keyring: Keyring) -> None:
    path = tmp_path / "app.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(
            """
            CREATE TABLE Orders (id INTEGER PRIMARY KEY, Account_Id TEXT);
            CREATE TABLE carts (id INTEGER PRIMARY KEY, account_id TEXT);
            CREATE VIEW order_owners AS SELECT Account_Id AS user_id FROM Orders;
            """
        )
    gate = AgeGate(keys=keyring, store=MemoryStore())
    db = SQLiteDatabase(path)
    gate.purger.add(db.rows("orders", "account_id"))  # SQLite names ignore case
    gate.purger.add(db.rows("main.carts", "account_id"))  # and main. is the default schema
    assert await gate.purger.coverage() == ([], 2)


async def test_coverage_without_sql_handlers_checks_nothing(keyring: Keyring) -> None:
    gate = AgeGate(keys=keyring, store=MemoryStore())
    assert await gate.purger.coverage() == ([], 0)


# -- PostgreSQL -----------------------------------------------------------------------------


@pytest.fixture
def pg_tables() -> Iterator[tuple[str, str]]:
    if not POSTGRES_URL:
        pytest.skip("AGEGATE_TEST_POSTGRES_URL is not set")
    import psycopg

    schema = "purge_" + secrets.token_hex(4)
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.orders (id serial PRIMARY KEY, account_id text, total int)")
        conn.execute(f"CREATE TABLE {schema}.numbered (account_id bigint, phone text)")
        conn.execute(f'CREATE TABLE {schema}."user" ("select" text, email text)')
        for subject in NASTY:
            conn.execute(
                f"INSERT INTO {schema}.orders (account_id, total) VALUES (%s, 1), (%s, 2)", (subject, subject)
            )
        conn.execute(f"INSERT INTO {schema}.numbered VALUES (42, '555'), (43, '556')")
        conn.execute(f"""INSERT INTO {schema}."user" VALUES ('u1', 'a@b.c'), ('u2', 'd@e.f')""")
    try:
        yield POSTGRES_URL, schema
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.mark.postgres
async def test_postgres_rows(pg_tables: tuple[str, str]) -> None:
    url, schema = pg_tables
    db = PostgresDatabase(url)
    assert "password" not in db.key and db.key.startswith("postgresql://")
    orders = db.rows(f"{schema}.orders", "account_id", name="orders")
    for subject in NASTY:
        assert await orders.count(subject) == 2
        assert await orders(subject) == 2
        assert await orders(subject) == 0
    assert await db.rows(f"{schema}.numbered", "account_id")("42") == 1
    assert await db.rows(f"{schema}.user", "select")("u1") == 1
    import psycopg

    async with await psycopg.AsyncConnection.connect(url) as conn:
        rows = await (await conn.execute(f"SELECT account_id, phone FROM {schema}.numbered")).fetchall()
        assert rows == [(43, "556")]
        rows = await (await conn.execute(f'SELECT "select", email FROM {schema}."user"')).fetchall()
        assert rows == [("u2", "d@e.f")]


@pytest.mark.postgres
async def test_postgres_coverage(pg_tables: tuple[str, str], keyring: Keyring) -> None:
    url, schema = pg_tables
    gate = AgeGate(keys=keyring, store=MemoryStore())
    db = PostgresDatabase(url)
    gate.purger.add(db.rows(f"{schema}.orders", "account_id"))
    uncovered, _ = await gate.purger.coverage()
    mine = [(u.table, u.column, u.kind) for u in uncovered if u.table.startswith(schema + ".")]
    assert mine == [
        (f"{schema}.numbered", "account_id", "account id"),
        (f"{schema}.numbered", "phone", "phone"),
        (f"{schema}.user", "email", "email"),
    ]


def test_postgres_without_psycopg_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'agegate\[postgres\]'"):
        PostgresDatabase("postgresql://postgres@127.0.0.1/test")


@pytest.mark.postgres
async def test_postgres_coverage_ignores_views_and_the_default_schema(
    pg_tables: tuple[str, str], keyring: Keyring
) -> None:
    url, schema = pg_tables
    import psycopg

    public = f"{schema}_orders"  # a table of the public schema, unique to this test
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE public.{public} (id serial PRIMARY KEY, account_id text)")
        conn.execute(
            f'CREATE VIEW {schema}.user_emails AS SELECT "select" AS user_id, email FROM {schema}."user"'
        )
    try:
        gate = AgeGate(keys=keyring, store=MemoryStore())
        db = PostgresDatabase(url)
        gate.purger.add(db.rows(f"public.{public}", "account_id"))
        gate.purger.add(db.rows(f"{schema}.user", "select"))
        gate.purger.add(db.rows(f"{schema}.numbered", "account_id"))
        gate.purger.add(db.rows(f"{schema}.orders", "account_id"))
        uncovered, _ = await gate.purger.coverage()
        mine = [(u.table, u.column) for u in uncovered if schema in u.table]
        assert mine == []
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE public.{public}")
