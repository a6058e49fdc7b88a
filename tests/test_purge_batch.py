"""``agegate purge --subjects-from``: many accounts in one run, a failing handler midway, resume."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import purge_app
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agegate import Keyring
from agegate.cli import main
from agegate.cli.batch import parse_subjects

KEYS = Keyring.generate("batch")
APP = ["--app", "batch_app:gate"]
ACCOUNTS = 1000

APP_SOURCE = """
import asyncio, contextlib, os, sqlite3
from pathlib import Path
from agegate import AgeGate, Keyring
from agegate.handlers import SQLiteDatabase

HERE = Path(__file__).parent
gate = AgeGate(keys=Keyring.from_env(), store=f"sqlite:///{HERE / 'agegate.sqlite3'}")
db = SQLiteDatabase(HERE / "shop.sqlite3")
gate.purger.add(db.account("customer", "customer_id"))
orders = db.rows("orders", "customer_id")


@gate.purger.handler("orders", count=orders.count, covers=orders.covers)
async def delete_orders(subject: str) -> int:
    # The orders service is down for some accounts while the file BROKEN exists.
    if (HERE / "BROKEN").exists() and int(subject) % 97 == 0:
        raise ConnectionError("orders service unreachable")
    return await orders(subject)
"""


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    with purge_app.time_limit(300):
        (tmp_path / "batch_app.py").write_text(APP_SOURCE)
        with contextlib.closing(sqlite3.connect(tmp_path / "shop.sqlite3")) as conn, conn:
            conn.execute("CREATE TABLE customer (customer_id INTEGER PRIMARY KEY, email TEXT)")
            conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, total INT)")
            ids = range(1, ACCOUNTS + 11)  # ten accounts that are not in the batch
            conn.executemany("INSERT INTO customer VALUES (?, ?)", [(i, f"c{i}@example.org") for i in ids])
            conn.executemany(
                "INSERT INTO orders (customer_id, total) VALUES (?, ?)", [(i, k) for i in ids for k in (1, 2)]
            )
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("AGEGATE_SECRET_KEYS", KEYS.to_string())
        monkeypatch.delenv("AGEGATE_APP", raising=False)
        monkeypatch.setattr(sys, "path", [*sys.path])
        monkeypatch.delitem(sys.modules, "batch_app", raising=False)
        yield tmp_path


def cli(*args: str) -> int:
    # Each run imports the app afresh, as a new process would: a gate is used by one event loop.
    sys.modules.pop("batch_app", None)
    return main(list(args))


def rows(directory: Path) -> tuple[set[int], set[int]]:
    with contextlib.closing(sqlite3.connect(directory / "shop.sqlite3")) as conn:
        customers = {r[0] for r in conn.execute("SELECT customer_id FROM customer")}
        orders = {r[0] for r in conn.execute("SELECT customer_id FROM orders")}
    return customers, orders


def write_batch(path: Path, ids: range) -> None:
    lines = ["# accounts reported this week", ""]
    for i in ids:
        # Every tenth line names its own ticket and an email to block; the rest use --ticket.
        lines.append(
            f"{i}\tticket=SUP-{i + 5000}\temail=c{i}@example.org" if i % 10 == 0 else f"{i}  # reported"
        )
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_a_thousand_accounts_with_a_handler_failing_midway(
    shop: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_batch(shop / "batch.txt", range(1, ACCOUNTS + 1))
    (shop / "BROKEN").write_text("")
    batch = ["purge", *APP, "--subjects-from", "batch.txt", "--ticket", "BATCH-WK", "--operator", "ops"]
    code = cli(*batch, "--yes", "--concurrency", "8")
    out, err = capsys.readouterr()
    failing = {i for i in range(1, ACCOUNTS + 1) if i % 97 == 0}
    assert code == 1, err
    lines = out.splitlines()
    per_account, totals = lines[:ACCOUNTS], lines[ACCOUNTS:]
    assert len(per_account) == ACCOUNTS and all(line.startswith("line ") for line in per_account)
    failed_lines = [line for line in per_account if " FAILED " in line]
    assert len(failed_lines) == len(failing)
    assert all("handler 'orders' failed (ConnectionError)" in line for line in failed_lines)
    assert totals[0] == f"Total: {ACCOUNTS} account(s): {ACCOUNTS - len(failing)} done, 0 already done, " + (
        f"{len(failing)} failed, 0 matched nothing."
    )
    assert totals[1].endswith("finish them with: agegate purge --app batch_app:gate --resume")
    # The others finished; the failed ones are frozen, their customer row gone, their orders not.
    customers, orders = rows(shop)
    assert customers == set(range(ACCOUNTS + 1, ACCOUNTS + 11))
    assert orders == failing | customers
    # No line names an account id or an email.
    assert "@example.org" not in out + err and "\t" not in out

    (shop / "BROKEN").unlink()
    assert cli("purge", *APP, "--resume") == 0
    out, _ = capsys.readouterr()
    assert out.count("Purge done for ticket") == len(failing)
    assert rows(shop) == (customers, customers)
    assert cli("audit", *APP, "--json") == 0
    jobs = json.loads(capsys.readouterr()[0])
    assert len(jobs) == ACCOUNTS and {job["state"] for job in jobs} == {"done"}
    assert {job["ticket"] for job in jobs if job["ticket"] != "BATCH-WK"} == {
        f"SUP-{i + 5000}" for i in range(10, ACCOUNTS + 1, 10)
    }

    # The same batch again: every account was done already.
    assert cli(*batch, "--yes", "--json") == 0
    report = json.loads(capsys.readouterr()[0])
    assert report["total"]["already_done"] == ACCOUNTS and report["total"]["failed"] == 0


def test_a_malformed_file_purges_nothing(shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (shop / "batch.txt").write_text("5\n6 ticket=T-6 ticket=T-7\n7 colour=blue\n8 nonsense\n5\n9\n")
    code = cli("purge", *APP, "--subjects-from", "batch.txt", "--operator", "ops", "--yes")
    _, err = capsys.readouterr()
    assert code == 2 and err.startswith("agegate: nothing was purged: ")
    for expected in (
        "line 1: no ticket",
        "line 2: a field is given twice",
        "line 3: unknown identifier kind 'colour'",
        "line 4: after the account id, fields are KEY=VALUE",
        "line 5: the same account as line 1",
    ):
        assert expected in err
    assert "blue" not in err and err.count("\n") == 1
    assert len(rows(shop)[0]) == ACCOUNTS + 10


def test_ids_that_match_nothing_fail_alone(shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (shop / "batch.txt").write_text("3\n99999\n4\n+5\n")
    batch = ["purge", *APP, "--subjects-from", "batch.txt", "--ticket", "T", "--operator", "ops", "--yes"]
    assert cli(*batch) == 1
    out, _ = capsys.readouterr()
    assert "line 2      ticket T  NO MATCH: nothing matched this account id" in out
    assert "Matched nothing (lines 2)" in out
    # An id the integer key would read as another text is refused before anything is done.
    assert "line 4      ticket T  FAILED: the account id must be written as" in out
    assert "Refused before anything was done (lines 4): fix those lines" in out
    assert {3, 4}.isdisjoint(rows(shop)[0]) and 5 in rows(shop)[0]
    (shop / "batch.txt").write_text("3\n99999\n4\n")
    assert cli(*batch, "--allow-no-match") == 0
    assert "Total: 3 account(s): 1 done, 2 already done" in capsys.readouterr()[0]


def test_usage(shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (shop / "batch.txt").write_text("3\n")
    base = ["purge", *APP, "--subjects-from", "batch.txt", "--ticket", "T", "--operator", "ops"]
    for extra, message in (
        (["--yes", "--concurrency", "0"], "--concurrency takes 1 to 64"),
        (["--yes", "--subject", "3"], "--subjects-from does not take --subject"),
        (["--yes", "--receipt", "r.json"], "--subjects-from does not take --receipt"),
        (["--yes", "--resume"], "--resume and --subjects-from cannot be used together"),
        ([], "pass --yes"),  # stdin is not a terminal
    ):
        assert main([*base, *extra]) == 2
        assert message in capsys.readouterr()[1]
    assert cli("purge", *APP, "--subject", "3", "--concurrency", "2") == 2
    assert "does not take --concurrency" in capsys.readouterr()[1]


def test_end_to_end_from_stdin(shop: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGEGATE_")}
    env.update(AGEGATE_SECRET_KEYS=KEYS.to_string(), AGEGATE_APP="batch_app:gate")
    done = subprocess.run(
        [sys.executable, "-m", "agegate.cli", "purge", "--subjects-from", "-", "--operator", "ops", "--yes"],
        input="1 ticket=SUP-501\n2 ticket=SUP-502 email=c2@example.org\n# done\n",
        cwd=shop,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.splitlines()[-1]
        == "Total: 2 account(s): 2 done, 0 already done, 0 failed, 0 matched nothing."
    )
    assert {1, 2}.isdisjoint(rows(shop)[0])


# -- the file format -------------------------------------------------------------------------

ids = st.text(
    st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="#"), min_size=1, max_size=20
)
values = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20)
spaces = st.sampled_from([" ", "\t", "  ", " \t "])
kinds = st.dictionaries(st.sampled_from(["email", "phone", "username"]), values)


@given(ids, st.none() | values, kinds, spaces)
def test_every_line_reads_back(
    subject: str, ticket: str | None, identifiers: dict[str, str], sep: str
) -> None:
    fields = [
        subject,
        *([f"ticket={ticket}"] if ticket else []),
        *(f"{k}={v}" for k, v in identifiers.items()),
    ]
    accounts, errors = parse_subjects(["# header", "", sep + sep.join(fields) + sep + "# note"])
    assert errors == []
    (account,) = accounts
    assert (account.number, account.subject, account.ticket, account.identifiers) == (
        3, subject, ticket, identifiers,
    )  # fmt: skip
