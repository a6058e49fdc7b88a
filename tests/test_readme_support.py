"""The support runbook's examples for batches and vacuum, run as written against a
small ``myshop.main:gate``."""

from __future__ import annotations

import contextlib
import re
import shlex
import sqlite3
import sys
from pathlib import Path

import pytest

from agegate import Keyring
from agegate.cli import main
from agegate.cli.batch import parse_subjects

PAGE = Path(__file__).resolve().parent.parent / "docs" / "support-runbook.md"
MYSHOP = """
from agegate import AgeGate, Keyring
from agegate.handlers import SQLiteDatabase

gate = AgeGate(keys=Keyring.from_env(), store="sqlite:///agegate.sqlite3")
db = SQLiteDatabase("shop.sqlite3")
gate.purger.add(db.rows("profiles", "account_id"))
"""


def paragraph(title: str) -> str:
    text = PAGE.read_text(encoding="utf-8")
    return text.split(f"**{title}**", 1)[1].split("\n**", 1)[0]


def blocks(title: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", paragraph(title), re.DOTALL)


@pytest.fixture
def myshop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "myshop").mkdir()
    (tmp_path / "myshop" / "__init__.py").write_text("")
    (tmp_path / "myshop" / "main.py").write_text(MYSHOP)
    with contextlib.closing(sqlite3.connect(tmp_path / "shop.sqlite3")) as conn, conn:
        conn.execute("CREATE TABLE profiles (account_id TEXT, email TEXT)")
        conn.executemany(
            "INSERT INTO profiles VALUES (?, 'x@example.org')", [("48213",), ("48214",), ("acct-77",)]
        )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGEGATE_SECRET_KEYS", Keyring.generate("readme").to_string())
    monkeypatch.setattr(sys, "path", [*sys.path])
    for name in ("myshop", "myshop.main"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


def test_the_batch_file_example_reads_as_documented() -> None:
    (example,) = blocks("Many accounts at once.", "text")
    accounts, errors = parse_subjects(example.splitlines())
    assert errors == []
    assert [(a.subject, a.ticket, a.identifiers) for a in accounts] == [
        ("48213", None, {}),
        ("48214", "SUP-1301", {"email": "kid@example.org", "phone": "+15550100"}),
        ("acct-77", None, {"username": "skater77"}),
    ]


def test_the_batch_and_vacuum_commands_run_as_written(
    myshop: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (example,) = blocks("Many accounts at once.", "text")
    (myshop / "reported.txt").write_text(example)
    (batch,) = blocks("Many accounts at once.", "sh")
    argv = shlex.split(batch)
    assert argv[:2] == ["agegate", "purge"]
    assert main(argv[1:]) == 0
    out = capsys.readouterr()[0]
    assert out.splitlines()[-1] == "Total: 3 account(s): 3 done, 0 already done, 0 failed, 0 matched nothing."
    with contextlib.closing(sqlite3.connect(myshop / "shop.sqlite3")) as conn:
        assert conn.execute("SELECT count(*) FROM profiles").fetchone()[0] == 0
    (vacuum,) = blocks("What a purge leaves on disk.", "sh")
    sys.modules.pop("myshop.main", None)
    assert main(shlex.split(vacuum)[1:]) == 0
    assert "Vacuumed sqlite:" in capsys.readouterr()[0]
