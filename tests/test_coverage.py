"""The coverage check over a rental shop's schema, on real SQLite and PostgreSQL, and through
``agegate purge --coverage``."""

from __future__ import annotations

import json
import os
import secrets
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import rental_shop

from agegate import AgeGate, Keyring
from agegate.cli import main
from agegate.handlers import AccountFiles, PostgresDatabase, SQLiteDatabase
from agegate.purge.coverage import CoverageReport, NoDatabaseKnown, classify

pytestmark = pytest.mark.anyio
POSTGRES_URL = os.environ.get("AGEGATE_TEST_POSTGRES_URL", "")


@pytest.fixture
def shop(tmp_path: Path) -> SQLiteDatabase:
    return rental_shop.create_sqlite(tmp_path / "shop.sqlite3")


@pytest.fixture
def pg_shop() -> Iterator[tuple[PostgresDatabase, str]]:
    if not POSTGRES_URL:
        pytest.skip("AGEGATE_TEST_POSTGRES_URL is not set")
    import psycopg

    schema = "shop_" + secrets.token_hex(4)
    try:
        yield rental_shop.create_postgres(POSTGRES_URL, schema), schema
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")  # type: ignore[call-overload]


def found(report: CoverageReport, prefix: str = "") -> list[tuple[str, str, str]]:
    return [(u.table.removeprefix(prefix), u.column, u.kind) for u in report.uncovered]


@pytest.mark.parametrize(
    ("column", "kind"),
    [
        ("addresses", "address"),
        ("home_address_line", "address"),
        ("mailing_address_1", "address"),
        ("addressLine2", "address"),
        ("email_addresses", "email"),
        ("phone_numbers", "phone"),
        ("mobile_numbers", "phone"),
        ("ip_addresses", "ip address"),
        ("first_names", "name"),
        ("usernames", "name"),
        ("user_agents", "user agent"),
        ("address_id", None),  # a reference to an address row, checked where the row is
        ("shipping_address_id", None),
        ("postal_code", "address"),
        ("status", None),
        ("statuses", None),
        ("categories", None),
    ],
)
def test_plural_and_compound_names(column: str, kind: str | None) -> None:
    assert classify("orders", column) == kind


async def test_no_database_known_is_an_error_not_a_pass(gate: AgeGate, tmp_path: Path) -> None:
    with pytest.raises(NoDatabaseKnown, match="no SQL database is known"):
        await gate.purger.coverage_report()
    gate.purger.add(AccountFiles(tmp_path))  # files are not a database either
    with pytest.raises(NoDatabaseKnown):
        await gate.purger.coverage_report()


async def test_every_personal_column_is_found_without_handlers(gate: AgeGate, shop: SQLiteDatabase) -> None:
    # Declarations alone name the database: everything of the account holder's is listed.
    rental_shop.declare(gate, shop)
    report = await gate.purger.coverage_report()
    declared = set(rental_shop.NOT_THE_HOLDERS)
    assert sorted(found(report)) == sorted(p for p in rental_shop.PERSONAL if p[0] not in declared)
    assert report.tables_checked == 12
    assert [(e.table, e.columns, e.reason) for e in report.exemptions] == [
        (table, (), reason) for table, reason in rental_shop.NOT_THE_HOLDERS.items()
    ]


async def test_every_personal_column_is_found_with_no_declaration(
    gate: AgeGate, shop: SQLiteDatabase
) -> None:
    gate.purger.add(shop.rows("film", "film_id"))  # any handler names the database
    report = await gate.purger.coverage_report()
    assert sorted(found(report)) == sorted(rental_shop.PERSONAL)
    grouped = report.by_table()
    assert list(grouped)[:2] == [(shop.key, "actor"), (shop.key, "address")]
    assert [u.column for u in grouped[(shop.key, "customer_profile")]] == [
        "customer_id", "addresses", "home_address_line", "mailing_address_1", "email_addresses",
        "phone_numbers",
    ]  # fmt: skip


async def test_zero_findings_with_handlers_and_declarations(gate: AgeGate, shop: SQLiteDatabase) -> None:
    rental_shop.register_handlers(gate, shop)
    rental_shop.declare(gate, shop)
    report = await gate.purger.coverage_report()
    assert report.uncovered == []
    assert report.tables_checked == 12


async def test_zero_findings_with_the_relational_handler(gate: AgeGate, shop: SQLiteDatabase) -> None:
    rental_shop.register_account(gate, shop)
    rental_shop.declare(gate, shop)
    report = await gate.purger.coverage_report()
    assert report.uncovered == []


async def test_a_declaration_names_its_reason_and_column_declarations_stay_distinct(
    gate: AgeGate, shop: SQLiteDatabase
) -> None:
    rental_shop.register_handlers(gate, shop)
    gate.purger.exempt(shop.table("staff"), reason="employees, not customers")
    gate.purger.exempt(shop.table("actor"), "first_name", "last_name", reason="stage names")
    report = await gate.purger.coverage_report()
    # Declaring columns of actor leaves its other personal-looking column listed.
    assert found(report) == [("actor", "actor_id", "account id"), ("film_actor", "actor_id", "account id")]
    assert [(e.table, e.columns, e.reason) for e in report.exemptions] == [
        ("staff", (), "employees, not customers"),
        ("actor", ("first_name", "last_name"), "stage names"),
    ]


@pytest.mark.postgres
async def test_postgres_partitions_are_reported_once_via_their_parent(
    gate: AgeGate, pg_shop: tuple[PostgresDatabase, str]
) -> None:
    db, schema = pg_shop
    rental_shop.declare(gate, db, f"{schema}.")
    report = await gate.purger.coverage_report()
    ours = [(u.table, u.column) for u in report.uncovered if u.table.startswith(f"{schema}.")]
    declared = set(rental_shop.NOT_THE_HOLDERS)
    expected = [p for p in rental_shop.PERSONAL if p[0] not in declared]
    # The rental archive's own archived_by is reported under rental, once.
    expected.append(("rental", "archived_by", "account id"))
    mine = [f for f in found(report, f"{schema}.") if (f"{schema}.{f[0]}", f[1]) in ours]
    assert sorted(mine) == sorted(expected)
    assert not any("payment_2026" in table or "rental_archive" in table for table, _ in ours)
    assert [c for t, c in ours if t == f"{schema}.payment"] == ["customer_id"]
    assert report.partitions[(db.key, f"{schema}.payment")] == 3
    assert report.partitions[(db.key, f"{schema}.rental")] == 1


@pytest.mark.postgres
@pytest.mark.parametrize("register", [rental_shop.register_handlers, rental_shop.register_account])
async def test_postgres_zero_findings_and_future_partitions(
    gate: AgeGate, pg_shop: tuple[PostgresDatabase, str], register: Callable[..., None]
) -> None:
    db, schema = pg_shop
    register(gate, db, f"{schema}.")
    rental_shop.declare(gate, db, f"{schema}.")
    # A column only the archive (an inheritance child) has is declared on the parent.
    gate.purger.exempt(db.table(f"{schema}.rental"), "archived_by", reason="the clerk who archived it")
    report = await gate.purger.coverage_report()
    assert [u for u in report.uncovered if u.table.startswith(f"{schema}.")] == []
    import psycopg

    # Next month's partition is covered by the handler on the parent, with nothing to change.
    async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as conn:
        await conn.execute(
            f"CREATE TABLE {schema}.payment_2026_04 PARTITION OF {schema}.payment "  # type: ignore[arg-type]
            "FOR VALUES FROM ('2026-04-01') TO ('2026-05-01')"
        )
    report = await gate.purger.coverage_report()
    assert [u for u in report.uncovered if u.table.startswith(f"{schema}.")] == []
    assert report.partitions[(db.key, f"{schema}.payment")] == 4


# -- the command line ------------------------------------------------------------------------


@pytest.fixture
def app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGEGATE_SECRET_KEYS", Keyring.generate("cov").to_string())
    monkeypatch.setattr(sys, "path", [*sys.path])
    for name in ("shop_app", "bare_app"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    rental_shop.create_sqlite(tmp_path / "shop.sqlite3")
    tests = Path(__file__).resolve().parent
    (tmp_path / "shop_app.py").write_text(
        textwrap.dedent(
            f"""
            import os, sys
            sys.path.insert(0, {str(tests)!r})
            import rental_shop
            from agegate import AgeGate, Keyring
            from agegate.handlers import SQLiteDatabase
            from agegate.stores import MemoryStore

            gate = AgeGate(keys=Keyring.from_env(), store=MemoryStore())
            db = SQLiteDatabase("shop.sqlite3")
            rental_shop.declare(gate, db)
            if os.environ.get("SHOP_HANDLERS"):
                rental_shop.register_handlers(gate, db)
            """
        )
    )
    (tmp_path / "bare_app.py").write_text(
        "from agegate import AgeGate, Keyring\n"
        "from agegate.stores import MemoryStore\n"
        "gate = AgeGate(keys=Keyring.from_env(), store=MemoryStore())\n"
    )
    return tmp_path


def test_cli_no_database_known_exits_2(app_module: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["purge", "--app", "bare_app:gate", "--coverage"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "no SQL database is known" in err and "Traceback" not in err
    assert main(["purge", "--app", "bare_app:gate", "--coverage", "--json"]) == 2
    out, _ = capsys.readouterr()
    assert json.loads(out)["exit"] == 2


def test_cli_findings_grouped_per_table(
    app_module: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["purge", "--app", "shop_app:gate", "--coverage"]) == 1
    out, _ = capsys.readouterr()
    assert "Declared not the account holder's data: staff: employees, not customers" in out
    assert out.count(" customer_profile\n") == 1
    assert "      home_address_line            looks like address" in out
    assert "21 column(s) in 7 of 12 table(s) not covered." in out
    assert main(["purge", "--app", "shop_app:gate", "--coverage", "--json"]) == 1
    report = json.loads(capsys.readouterr()[0])
    assert report["ok"] is False and report["tables_checked"] == 12
    by_table = {t["table"]: t for t in report["tables"]}
    assert [u["column"] for u in by_table["device"]["uncovered"]] == ["customer_id", "user_agent", "last_ip"]
    assert {"database": report["databases"][0], "table": "staff", "columns": None,
            "reason": "employees, not customers"} in report["exempt"]  # fmt: skip
    assert len(report["uncovered"]) == 21

    monkeypatch.setenv("SHOP_HANDLERS", "1")
    monkeypatch.delitem(sys.modules, "shop_app")
    assert main(["purge", "--app", "shop_app:gate", "--coverage", "--json"]) == 0
    report = json.loads(capsys.readouterr()[0])
    assert report["ok"] is True and report["uncovered"] == [] and report["tables"] == []


@pytest.mark.postgres
async def test_postgres_vacuum_reaches_partitions_and_inheritance_children(
    gate: AgeGate, pg_shop: tuple[PostgresDatabase, str]
) -> None:
    from agegate.purge.vacuum import vacuum

    db, schema = pg_shop
    rental_shop.register_handlers(gate, db, f"{schema}.")
    (done,) = await vacuum(await gate.purger.covered_tables())
    assert done.database == db.key
    assert sorted(t.removeprefix(f"{schema}.") for t in done.tables) == [
        "address", "customer", "customer_profile", "device", "message", "payment", "payment_2026_01",
        "payment_2026_02", "payment_2026_03", "rental", "rental_archive",
    ]  # fmt: skip
