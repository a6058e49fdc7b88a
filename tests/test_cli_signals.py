"""``agegate signals list|clear``: the accounts an under-age age signal flagged, through the real
command line, as support uses them with ``agegate purge``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import purge_app
import pytest
import test_cli_purge
from test_cli_purge import KEYS

from agegate import AgeSignal
from agegate.cli import main

BASE = ["--app", "purge_app:gate"]
#: The purge command-line tests' data directory and environment (keys: KEYS).
app_dir = test_cli_purge.app_dir


def flag(directory: Path, *subjects: str) -> None:
    async def go() -> None:
        gate = purge_app.build_gate(directory, keys=KEYS)
        try:
            for subject in subjects:
                await gate.record_signal(subject, AgeSignal.from_ab1043("under-13"))
        finally:
            await gate.aclose()

    asyncio.run(go())


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out


def test_support_lists_purges_and_clears_flagged_accounts(
    app_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, "signals", "list", *BASE) == (0, "No accounts flagged by an age signal.\n")
    flag(app_dir, purge_app.CHILD, "acct-1002")
    code, out = cli(capsys, "signals", "list", *BASE, "--json")
    listed = json.loads(out)
    assert code == 0 and {f["subject"] for f in listed} == {purge_app.CHILD, "acct-1002"}
    code, out = cli(capsys, "signals", "list", *BASE)
    assert code == 0 and purge_app.CHILD in out and "2 account(s) to purge" in out
    # Support purges the first one with the id the list gave them: it drops off the list.
    purge = ["purge", *BASE, "--subject", purge_app.CHILD, "--ticket", "SIG-1", "--operator", "sam", "--yes"]
    assert cli(capsys, *purge)[0] == 0
    code, out = cli(capsys, "signals", "list", *BASE, "--json")
    remaining = json.loads(out)
    assert [f["subject"] for f in remaining] == ["acct-1002"]
    # The other is handled another way: cleared, and still blocked.
    ref = remaining[0]["ref"]
    assert cli(capsys, "signals", "clear", ref, *BASE) == (0, f"Cleared flag {ref}.\n")
    assert cli(capsys, "signals", "clear", ref, *BASE)[0] == 1
    assert cli(capsys, "signals", "list", *BASE, "--json") == (0, "[]\n")
    # The store never held the ids in the clear.
    stored = b"".join(p.read_bytes() for p in app_dir.glob("agegate.sqlite3*"))
    assert b"acct-1002" not in stored and purge_app.CHILD.encode() not in stored


def test_a_malformed_reference_is_refused(app_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = cli(capsys, "signals", "clear", "xyz", *BASE, "--json")
    assert code == 2 and "reference" in json.loads(out)["error"]
