"""Operator safety of ``agegate purge``: ids that match nothing, short ids in tickets, a receipt
that is part of the job, Ctrl-C, and clearing deleted rows from the databases' files."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import string
import sys
from pathlib import Path

import purge_app
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_cli_purge import BASE, KEYS, PURGE, app_dir, run  # noqa: F401  (app_dir is a fixture)
from test_purge_crash import TESTS, _env, agegate, start, wait_for_file

from agegate.cli import main
from agegate.errors import InvalidInput
from agegate.purge.receipts import verify_receipt
from agegate.purge.request import contains_secret, refuse_pii_in_labels
from agegate.reports.service import new_reference

# -- the ticket must not hold the account id, short ids included -----------------------------


@pytest.mark.parametrize(
    ("ticket", "subject", "refused"),
    [
        ("SUP-42", "42", True),
        ("acct42 reported", "42", True),
        ("child 7 reported by mum", "7", True),
        ("Kid AB", "ab", True),
        ("SUP-1423", "42", False),  # an ordinary ticket number that merely holds the digits
        ("SUP-1234", "7", False),
        ("2026-07-15 report", "7", False),
        ("SUP-1234", "a-1", False),
        ("ticket x a-1 y", "a-1", True),
        ("SUP-1234", "acct-1001", False),
        ("SUP acct-1001", "ACCT-1001", True),  # long ids: anywhere, whatever the case
    ],
)
def test_the_ticket_check_covers_short_ids(ticket: str, subject: str, refused: bool) -> None:
    assert contains_secret(ticket, subject) is refused
    if refused:
        with pytest.raises(InvalidInput, match="must not contain the account id"):
            refuse_pii_in_labels(subject, {}, {"ticket": ticket})


short_ids = st.text(string.ascii_letters + string.digits, min_size=1, max_size=4)
words = st.text(string.ascii_letters, min_size=0, max_size=8)
separators = st.sampled_from([" ", "-", "_", "/", ":", "#", ". "])


@given(short_ids, words, words, separators, separators)
def test_a_short_id_standing_as_a_word_is_always_found(
    subject: str, before: str, after: str, left: str, right: str
) -> None:
    assert contains_secret(f"{before}{left}{subject}{right}{after}", subject)


@given(st.integers(min_value=0, max_value=9999), st.integers(min_value=1, max_value=99999))
def test_a_numeric_ticket_never_refuses_another_number(subject: int, ticket: int) -> None:
    if str(subject) != str(ticket):
        assert not contains_secret(f"SUP-{ticket}", str(subject))


@given(short_ids)
def test_a_report_reference_as_ticket_never_refuses_a_short_id(subject: str) -> None:
    # References are drawn at random: one ending "6X4A" holds the word "a" by chance, and
    # `purge --report` (whose ticket is the reference) must not refuse account "a" for it.
    for reference in ("R-0FAN-WNQ9-6X4A", "R-0042-7AB0-0000", new_reference()):
        refuse_pii_in_labels(subject, {}, {"ticket": reference})
    # Anywhere else the reference's shape earns nothing: an operator is still checked, and a
    # longer id is still looked for in the reference itself.
    with pytest.raises(InvalidInput, match="operator must not contain"):
        refuse_pii_in_labels("7", {}, {"ticket": "R-0042-7AB0-0000", "operator": "R-0042-7AB0-0000"})
    with pytest.raises(InvalidInput, match="ticket must not contain"):
        refuse_pii_in_labels("ACCT-1234", {}, {"ticket": "R-ACCT-1234-0000"})
    with pytest.raises(InvalidInput, match="ticket must not contain"):
        refuse_pii_in_labels("7", {}, {"ticket": "R-0042-7AB0-0000 acct 7"})  # not a reference


# -- an id that matches nothing --------------------------------------------------------------


def test_an_id_matching_nothing_is_refused_before_anything_is_done(
    app_dir: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    typo = ["purge", *BASE, "--subject", "acct-1010", "--ticket", "T-1", "--operator", "sam", "--yes"]
    code, out, err = run(capsys, *typo)
    assert code == 1 and out == ""
    assert "nothing matched this account id" in err and "--allow-no-match" in err
    assert err.count("\n") == 1 and "acct-1010" not in err
    code, out, _ = run(capsys, "audit", *BASE, "--json")
    assert json.loads(out) == []  # no job, nothing frozen
    code, _, err = run(capsys, *typo, "--dry-run")
    assert code == 1 and "nothing matched" in err
    # Said explicitly, it is purged (and frozen, so an account created later with it is blocked).
    code, out, _ = run(capsys, *typo, "--allow-no-match")
    assert code == 0 and "Purge done for ticket T-1" in out
    # A purged account matches its job: purging it again says "already done".
    code, out, _ = run(capsys, *typo)
    assert code == 0 and "Already done" in out


def test_an_id_known_only_to_the_gate_matches(
    app_dir: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    from agegate import AgeGate, Keyring

    async def screened() -> None:
        async with AgeGate(keys=Keyring.from_env(), store=f"sqlite:///{app_dir / 'agegate.sqlite3'}") as gate:
            await gate.signup({"birth_date": "2000-01-01"}, subject="acct-2000")

    import asyncio

    asyncio.run(screened())
    code, out, _ = run(
        capsys, "purge", *BASE, "--subject", "acct-2000", "--ticket", "T-2", "--operator", "sam", "--yes"
    )
    assert code == 0 and "Purge done" in out


# -- the receipt is part of the job ----------------------------------------------------------


def test_a_requested_receipt_is_written_when_resume_finishes_the_job(
    app_dir: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    receipt = tmp_path / "receipts" / "SUP-88.json"
    receipt.parent.mkdir()
    monkeypatch.setenv("PURGE_APP_FAIL", "files")
    code, _, err = run(capsys, *PURGE, "--yes", "--receipt", str(receipt))
    assert code == 1 and "handler 'files' failed" in err and not receipt.exists()
    monkeypatch.delenv("PURGE_APP_FAIL")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # resume runs from another directory
    monkeypatch.syspath_prepend(str(TESTS))
    code, out, _ = run(capsys, "purge", *BASE, "--resume")
    assert code == 0 and f"Signed receipt written to {receipt} (asked for when the purge began)" in out
    payload = verify_receipt(receipt.read_bytes(), KEYS)
    assert payload["ticket"] == "T-88"
    assert [h["name"] for h in payload["handlers"]] == ["profiles", "orders", "files"]
    # The note is not a step: the audit log does not list it.
    code, out, _ = run(capsys, "audit", *BASE, "--json")
    assert not any(step.startswith("receipt:") for step in json.loads(out)[0]["steps"])


def test_a_receipt_that_cannot_be_written_on_resume_is_a_failure_that_says_so(
    app_dir: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    receipt = tmp_path / "gone" / "r.json"
    receipt.parent.mkdir()
    monkeypatch.setenv("PURGE_APP_FAIL", "files")
    assert run(capsys, *PURGE, "--yes", "--receipt", str(receipt))[0] == 1
    monkeypatch.delenv("PURGE_APP_FAIL")
    receipt.parent.rmdir()
    code, out, err = run(capsys, "purge", *BASE, "--resume")
    assert code == 1 and "Purge done for ticket T-88" in out
    assert "is done, but its receipt was not written" in err and "agegate receipt issue --job" in err


def test_a_receipt_path_holding_the_account_id_is_refused(
    app_dir: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, *PURGE, "--yes", "--receipt", f"receipt-{purge_app.CHILD}.json")
    assert code == 2 and "the receipt file name must not contain the account id" in err


# -- Ctrl-C ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_ctrl_c_says_how_to_resume(tmp_path: Path) -> None:
    purge_app.seed(tmp_path)
    marker, release = tmp_path / "paused", tmp_path / "release"
    receipt = tmp_path / "r.json"
    env = _env(
        tmp_path,
        PURGE_APP_PAUSE="before:orders",
        PURGE_APP_MARKER=str(marker),
        PURGE_APP_RELEASE=str(release),
    )
    env["AGEGATE_SECRET_KEYS"] = KEYS.to_string()
    proc = start([*PURGE, "--yes", "--receipt", str(receipt)], env)
    wait_for_file(marker, proc)
    proc.send_signal(signal.SIGINT)
    release.write_text("go")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("agegate: interrupted: purge job ") and "stopped part-way" in last
    assert last.endswith("Finish it with: agegate purge --app purge_app:gate --resume")
    assert "Traceback" not in err and purge_app.CHILD not in err + out
    del env["PURGE_APP_PAUSE"]
    done = agegate(["purge", *BASE, "--resume"], env)
    assert done.returncode == 0 and "Purge done for ticket T-88" in done.stdout, done.stderr
    assert verify_receipt(receipt.read_bytes(), KEYS)["ticket"] == "T-88"


def test_ctrl_c_before_anything_started_says_so(
    app_dir: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agegate.purge import Purger

    async def interrupted(self: Purger, subject: str) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(Purger, "find_match", interrupted)
    code, _, err = run(capsys, *PURGE, "--yes")
    assert code == 130 and err == "agegate: interrupted: nothing was purged\n"


# -- what a delete leaves on disk ------------------------------------------------------------


def test_vacuum_clears_deleted_rows_from_the_sqlite_file(
    app_dir: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    database = app_dir / "app.sqlite3"
    code, _, _ = run(capsys, *PURGE, "--yes")
    assert code == 0
    # Whether a DELETE overwrites the row depends on how SQLite was built (secure_delete's
    # default): delete one more row with it off, as many builds do, to have a leftover to clear.
    with contextlib.closing(sqlite3.connect(database)) as conn, conn:
        conn.execute("PRAGMA secure_delete = OFF")
        conn.execute("INSERT INTO profiles VALUES ('acct-9', 'left.over@example.org', 'x', NULL)")
    with contextlib.closing(sqlite3.connect(database)) as conn, conn:
        conn.execute("PRAGMA secure_delete = OFF")
        conn.execute("DELETE FROM profiles WHERE account_id = 'acct-9'")
    assert b"left.over@example.org" in database.read_bytes()  # gone from queries, not from the file
    code, out, _ = run(capsys, "purge", *BASE, "--vacuum")
    assert code == 0 and f"Vacuumed sqlite:{database.resolve()}: the whole file." in out
    assert b"left.over@example.org" not in database.read_bytes()
    assert purge_app.CHILD_EMAIL.encode() not in database.read_bytes()
    assert b"kid.1002@example.org" in database.read_bytes()  # the others' rows stay


def bare_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An app module, ``bare_app:gate``, that registers no purge handler."""
    (tmp_path / "bare_app.py").write_text(
        "from agegate import AgeGate, Keyring\nfrom agegate.stores import MemoryStore\n"
        "gate = AgeGate(keys=Keyring.from_env(), store=MemoryStore())\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "bare_app", raising=False)


def test_vacuum_without_a_database_is_a_usage_error(
    app_dir: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bare_app(tmp_path, monkeypatch)
    code, _, err = run(capsys, "purge", "--app", "bare_app:gate", "--vacuum")
    assert code == 2 and "nothing to vacuum" in err
    assert main(["purge", *BASE, "--vacuum", "--dry-run"]) == 2


def test_a_purge_with_no_handlers_says_so(
    app_dir: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An app that registers no handler: the purge freezes agegate's own records only, and says
    # so instead of printing an empty list under "Deleted:".
    bare_app(tmp_path, monkeypatch)
    args = [
        "purge",
        "--app",
        "bare_app:gate",
        "--subject",
        "acct-9",
        "--ticket",
        "SUP-1",
        "--operator",
        "ops",
    ]
    args.append("--allow-no-match")  # nothing of acct-9 is anywhere: no handler, no record
    for extra in (["--dry-run"], ["--yes"]):
        code, out, _ = run(capsys, *args, *extra)
        assert code == 0 and "nothing: the app registers no purge handler" in out
