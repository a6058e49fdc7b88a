"""The command line: keygen and check, exit statuses, readable errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agegate import Keyring
from agegate.cli import main

SCRIPT = Path(sys.executable).parent / "agegate"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agegate", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_keygen_prints_a_usable_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen"]) == 0
    line = capsys.readouterr().out.strip()
    assert Keyring.from_string(line).active_kid == line.split(":")[0]
    assert main(["keygen", "--kid", "2026a"]) == 0
    assert capsys.readouterr().out.startswith("2026a:")


@pytest.mark.parametrize(
    ("args", "status", "out"),
    [
        (["--birth-date", "2013-06-01", "--on", "2026-06-01"], 0, "allowed"),
        (["--birth-date", "2013-06-02", "--on", "2026-06-01"], 1, "under_age"),
        (["--birth-date", "2012-02-29", "--on", "2025-02-28"], 1, "under_age"),
        (["--birth-date", "2012-02-29", "--on", "2025-03-01"], 0, "allowed"),
        (["--birth-date", "2010", "--on", "2026-06-01", "--min-age", "16"], 1, "under_age"),
        (["--birth-date", "05/04/2013", "--on", "2026-04-30", "--date-order", "DMY"], 0, "allowed"),
        (["--birth-date", "05/04/2013", "--on", "2026-04-30"], 1, "under_age"),  # MDY: 4 May
    ],
)
def test_check(args: list[str], status: int, out: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", *args]) == status
    assert capsys.readouterr().out.strip() == out


def test_check_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--birth-date", "1990-01-01", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"outcome": "allowed", "policy": "min-age-13"}
    assert main(["check", "--birth-date", "2013-02-30", "--json"]) == 2
    body = json.loads(capsys.readouterr().out)
    assert body["error"] == "invalid_birth_date" and body["code"] == "impossible"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "--birth-date", "2013-02-30"], "does not exist"),
        (["check", "--birth-date", "x" * 100], "too long"),
        (["check", "--birth-date", "2013-01-01", "--on", "June 1"], "--on takes a date"),
        (["check", "--birth-date", "2013-01-01", "--min-age", "0"], "min_age"),
        (["check"], "--birth-date"),
        (["nonsense"], "invalid choice"),
        (["check", "--birth-date", "2013-01-01", "--on", "9999-12-31"], "between the years"),
        (["check", "--birth-date", "2013-01-01", "--on", "2026-W22-7"], "--on takes a date"),
        (["check", "--birth-date", "2013-01-01", "--on", "20260601"], "--on takes a date"),
        (["keygen", "--kid", "bad/id"], "key id"),
        (["keygen", "--kid", ""], "key id"),
    ],
)
def test_bad_input_is_one_readable_line_with_status_2(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_console_script_is_installed() -> None:
    if not SCRIPT.exists():
        pytest.skip("the agegate console script is not installed next to this interpreter")
    result = subprocess.run(
        [str(SCRIPT), "check", "--birth-date", "2000-01-01"], capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout.strip()) == (0, "allowed")


def test_a_reader_that_stops_early_gets_no_traceback() -> None:
    """`agegate policies | head -1`: the pipe closes before the table is written (here, at once:
    the reader reads nothing)."""
    import subprocess
    import sys

    run = subprocess.run(
        f"{sys.executable} -m agegate.cli policies | true",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in run.stderr and "BrokenPipeError" not in run.stderr, run.stderr
