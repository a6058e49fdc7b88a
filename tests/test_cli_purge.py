"""``agegate purge``, ``audit``, ``keys public`` and ``receipt``, run through the real command line."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import select
import subprocess
import sys
import textwrap
from pathlib import Path

import purge_app
import pytest

from agegate import Keyring
from agegate.cli import main
from agegate.purge.receipts import verify_receipt

KEYS = Keyring.generate("cli")
BASE = ["--app", "purge_app:gate"]
PURGE = [
    "purge", *BASE, "--subject", purge_app.CHILD, "--ticket", "T-88", "--operator", "sam",
    "--identifier", f"email={purge_app.CHILD_EMAIL}",
]  # fmt: skip
SECRETS = (purge_app.CHILD, purge_app.CHILD_EMAIL)

pytestmark = pytest.mark.time_limit(60)


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    purge_app.seed(tmp_path)
    for var in ("PURGE_APP_PAUSE", "PURGE_APP_FAIL", "PURGE_APP_STORE", "AGEGATE_APP"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PURGE_APP_DIR", str(tmp_path))
    monkeypatch.setenv("AGEGATE_SECRET_KEYS", KEYS.to_string())
    # --app imports from the working directory and adds it to sys.path: undo both per test.
    monkeypatch.setattr(sys, "path", [*sys.path])
    for name in ("starlette_shop", "leaky_app"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    for secret in SECRETS:
        assert secret not in out and secret not in err
    assert "Traceback" not in err
    return code, out, err


def jobs(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    code, out, _ = run(capsys, "audit", *BASE, "--json")
    assert code == 0
    result: list[dict[str, object]] = json.loads(out)
    return result


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_purge_without_a_terminal_needs_yes(app_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, *PURGE)
    assert code == 2 and "pass --yes" in err
    assert jobs(capsys) == []
    assert (app_dir / "files" / purge_app.CHILD / "notes.txt").exists()


@pytest.mark.parametrize(("answer", "expected"), [("yes\n", 0), ("no\n", 1), ("\n", 1)])
def test_interactive_confirmation(
    app_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    expected: int,
) -> None:
    monkeypatch.setattr(sys, "stdin", FakeTerminal(answer))
    code, out, err = run(capsys, *PURGE)
    assert code == expected
    assert "About to purge the account for ticket T-88" in err
    assert "profiles (1), orders (6), files (3)" in err and "1 identifier(s)" in err
    if expected == 0:
        assert "Purge done for ticket T-88" in out
        assert not (app_dir / "files" / purge_app.CHILD).exists()
    else:
        assert "nothing was done" in err
        assert jobs(capsys) == []
        assert (app_dir / "files" / purge_app.CHILD).exists()


def test_purge_text_output_rerun_and_audit(app_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, *PURGE, "--yes")
    assert code == 0
    assert "Purge done for ticket T-88" in out and "frozen (under_age)" in out
    assert "profiles                     1" in out and "orders                       6" in out
    assert "1 identifier(s) are blocked" in out
    code, out, _ = run(capsys, *PURGE, "--yes")
    assert code == 0 and out.startswith("Already done: this account was purged by job")
    code, out, _ = run(capsys, "audit", *BASE)
    assert code == 0
    header, line = out.splitlines()
    assert header.split()[:4] == ["JOB", "TICKET", "OPERATOR", "STATE"]
    assert " T-88 " in line and " sam " in line and " done " in line
    assert "profiles=1 orders=6 files=3 block_identifiers=1" in line and "planned:" not in line
    (job,) = jobs(capsys)
    assert set(job) == {
        "job_id", "ticket", "operator", "state", "handlers", "steps", "planned", "policy",
        "created_at", "updated_at", "finished_at", "error",
    }  # fmt: skip
    assert job["policy"] == "min-age-13"
    assert job["handlers"] == ["profiles", "orders", "files"]
    assert job["steps"] == {"freeze": 1, "profiles": 1, "orders": 6, "files": 3, "block_identifiers": 1}
    assert job["planned"] == {"profiles": 1, "orders": 6, "files": 3}


def test_dry_run_json(app_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, *PURGE, "--dry-run", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["state"] == "dry_run" and report["deleted"] == {"profiles": 1, "orders": 6, "files": 3}
    assert jobs(capsys) == []
    assert (app_dir / "files" / purge_app.CHILD).exists()


def test_app_from_the_environment(
    app_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGEGATE_APP", "purge_app:gate")
    code, out, _ = run(capsys, "audit")
    assert (code, out) == (0, "No purge jobs.\n")


def test_receipt_round_trip(app_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    receipt = tmp_path / "receipt.json"
    code, out, _ = run(capsys, *PURGE, "--yes", "--json", "--receipt", str(receipt))
    assert code == 0 and json.loads(out)["receipt"] == str(receipt)
    text = receipt.read_text()
    for secret in (*SECRETS, "kid.1001"):
        assert secret not in text
    payload = verify_receipt(text, KEYS)
    assert payload["ticket"] == "T-88" and payload["policy"] == "min-age-13"
    assert payload["handlers"] == [
        {"name": "profiles", "deleted": 1},
        {"name": "orders", "deleted": 6},
        {"name": "files", "deleted": 3},
    ]
    code, public, _ = run(capsys, "keys", "public")
    assert code == 0
    code, out, _ = run(capsys, "receipt", "verify", str(receipt), "--public-key", public.strip())
    assert code == 0 and out.startswith("Valid receipt: job ") and "ticket T-88" in out
    code, out, _ = run(capsys, "receipt", "verify", str(receipt))  # the key from AGEGATE_SECRET_KEYS
    assert code == 0
    # Reissuing gives the very same document.
    code, out, _ = run(capsys, "receipt", "issue", *BASE, "--ticket", "T-88")
    assert code == 0 and out == text
    # A changed count, or another app's key, does not verify.
    receipt.write_text(text.replace('"deleted": 6', '"deleted": 60'))
    code, out, _ = run(capsys, "receipt", "verify", str(receipt), "--public-key", public.strip())
    assert code == 1 and out.startswith("INVALID")
    receipt.write_text(text)
    other = Keyring.generate("other")
    from agegate.purge.receipts import public_key_text

    code, out, _ = run(capsys, "receipt", "verify", str(receipt), "--public-key", public_key_text(other))
    assert code == 1 and "does not verify" in out
    code, out, err = run(capsys, "receipt", "verify", str(tmp_path / "missing.json"))
    assert code == 1 and "cannot read" in err
    receipt.write_text("not json")
    code, out, _ = run(capsys, "receipt", "verify", str(receipt), "--json")
    assert code == 1 and json.loads(out)["valid"] is False


def test_keys_public_lists_every_key(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = Keyring.from_string(Keyring.generate("new").to_string() + "," + KEYS.to_string())
    monkeypatch.setenv("AGEGATE_SECRET_KEYS", keys.to_string())
    code, out, _ = run(capsys, "keys", "public", "--all")
    assert code == 0 and [line.split(":")[0] for line in out.splitlines()] == ["new", "cli"]
    monkeypatch.delenv("AGEGATE_SECRET_KEYS")
    code, _, err = run(capsys, "keys", "public")
    assert code == 1 and "AGEGATE_SECRET_KEYS is not set" in err


def test_a_purge_under_a_new_key_is_refused_naming_the_key_ids(
    app_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, _ = run(capsys, *PURGE, "--yes")
    assert code == 0
    # What the old message told support staff to do: make a new key and purge with it.
    fresh = Keyring.generate()
    monkeypatch.setenv("AGEGATE_SECRET_KEYS", fresh.to_string())
    code, out, err = run(
        capsys, "purge", *BASE, "--subject", "acct-1002", "--ticket", "T-9", "--operator", "sam", "--yes"
    )
    assert code == 1 and "shares no key id" in err and "'cli'" in err and repr(fresh.active_kid) in err
    assert fresh.to_string().partition(":")[2] not in err + out and "keygen" not in err
    code, out, err = run(capsys, "purge", *BASE, "--resume", "--json")
    assert code == 1 and json.loads(out)["exit"] == 1 and "'cli'" in json.loads(out)["error"]
    monkeypatch.setenv("AGEGATE_SECRET_KEYS", KEYS.to_string())
    assert [job["ticket"] for job in jobs(capsys)] == ["T-88"]


def test_keys_status_shows_what_each_key_id_holds(
    app_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, _ = run(capsys, *PURGE, "--yes")
    assert code == 0
    code, out, _ = run(capsys, "keys", "status", *BASE)
    assert code == 0 and out.splitlines()[0].split() == [
        "KEY", "ID", "RECORDS", "ATTESTATIONS", "BLOCKS", "JOBS", "REPORTS", "NEEDED", "UNTIL", "STATE"
    ]  # fmt: skip
    assert out.splitlines()[1].split() == ["cli", "2", "1", "1", "0", "0", "indefinitely", "active"]
    assert out.splitlines()[-1] == "The keyring fits the store."
    # Rotated: the new key first, the old one behind it, still needed.
    new = Keyring.generate("new")
    monkeypatch.setenv("AGEGATE_SECRET_KEYS", f"{new.to_string()},{KEYS.to_string()}")
    monkeypatch.setenv("AGEGATE_APP", "purge_app:gate")
    code, out, _ = run(capsys, "keys", "status", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["fits"] is True and report["error"] is None
    by_kid = {key["kid"]: key for key in report["keys"]}
    assert list(by_kid) == ["new", "cli"]
    assert by_kid["new"]["active"] and by_kid["new"]["records"] == 0
    assert by_kid["cli"] == by_kid["cli"] | {
        "listed": True,
        "records": 2,
        "attestations": 1,
        "identifier_blocks": 1,
        "purge_jobs": 0,
        "needed_until": "indefinitely",
    }
    assert by_kid["cli"]["blocks_until"] is not None
    # Without the old key the app (once it ran with the new key) would refuse to start: status
    # says so, with exit status 1.
    assert jobs(capsys)  # the app opens its store with the rotated keyring
    monkeypatch.setenv("AGEGATE_SECRET_KEYS", new.to_string())
    code, out, _ = run(capsys, "keys", "status")
    assert (
        code == 1 and "NOT LISTED, still needed" in out and "REFUSED: the keyring drops key id 'cli'" in out
    )
    code, out, _ = run(capsys, "keys", "status", "--json")
    assert code == 1 and json.loads(out)["fits"] is False and "'cli'" in json.loads(out)["error"]
    monkeypatch.delenv("AGEGATE_APP")
    code, _, err = run(capsys, "keys", "status")
    assert code == 2 and "--app MODULE:ATTR" in err


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["purge", "--resume"], 2, "--app MODULE:ATTR, or set AGEGATE_APP"),
        (["purge", "--app", "purge_app", "--resume"], 2, "MODULE:ATTR"),
        (
            ["purge", "--app", "no_such_module:gate", "--resume"],
            2,
            "cannot find the app module 'no_such_module'",
        ),
        (["purge", "--app", "purge_app:nothing", "--resume"], 2, "has no 'nothing'"),
        (["purge", "--app", "purge_app:seed", "--resume"], 2, "is not an AgeGate"),
        (["purge", *BASE, "--subject", "x"], 2, "needs --ticket, --operator"),
        (["purge", *BASE, "--resume", "--coverage"], 2, "cannot be used together"),
        ([*PURGE, "--identifier", "email"], 2, "KIND=VALUE"),
        (
            ["purge", *BASE, "--subject", " acct-1", "--ticket", "T", "--operator", "o", "--yes"],
            2,
            "spaces around it",
        ),
        (
            ["purge", *BASE, "--subject", "acct-1001", "--ticket", "acct-1001", "--operator", "o", "--yes"],
            2,
            "must not contain",
        ),
    ],
)
def test_readable_errors(
    app_dir: Path, capsys: pytest.CaptureFixture[str], args: list[str], code: int, message: str
) -> None:
    got, _, err = run(capsys, *args)
    assert got == code and message in err, err
    assert err.startswith("agegate: ") and err.count("\n") == 1


def test_missing_keys_is_a_clear_error(
    app_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGEGATE_SECRET_KEYS")
    code, _, err = run(capsys, "purge", *BASE, "--resume")
    # The app cannot be built: bad usage (exit 2), one line, agegate's own message.
    assert code == 2 and "AGEGATE_SECRET_KEYS is not set" in err and err.count("\n") == 1


def test_a_failing_handler_is_named_and_resumable(
    app_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PURGE_APP_FAIL", "files")
    code, _, err = run(capsys, *PURGE, "--yes")
    assert code == 1 and "handler 'files' failed (RuntimeError)" in err and "--resume" in err
    code, out, _ = run(capsys, "purge", *BASE, "--resume")
    assert code == 1 and "failed again: handler 'files' failed (RuntimeError)" in out
    monkeypatch.delenv("PURGE_APP_FAIL")
    code, out, _ = run(capsys, "purge", *BASE, "--resume")
    assert code == 0 and "Purge done for ticket T-88" in out
    code, out, _ = run(capsys, "purge", *BASE, "--resume")
    assert code == 0 and out == "Nothing to resume: every purge job has finished.\n"


def test_coverage(
    app_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run(capsys, "purge", *BASE, "--coverage")
    assert code == 0 and "Covered: every personal-looking column in 4 table(s)" in out
    module = tmp_path / "leaky_app.py"
    module.write_text(
        textwrap.dedent(
            f"""
            import sqlite3
            from agegate import AgeGate, Keyring
            from agegate.handlers import SQLiteDatabase
            from agegate.stores import MemoryStore

            with sqlite3.connect({str(app_dir / "app.sqlite3")!r}) as conn:
                conn.execute("CREATE TABLE IF NOT EXISTS newsletter (id INTEGER PRIMARY KEY, email TEXT)")
            conn.close()
            gate = AgeGate(keys=Keyring.from_env(), store=MemoryStore())
            db = SQLiteDatabase({str(app_dir / "app.sqlite3")!r})
            gate.purger.add(db.rows("profiles", "account_id"))
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "purge", "--app", "leaky_app:gate", "--coverage")
    assert code == 1
    assert "  newsletter\n      email                        looks like email\n" in out
    assert "  orders\n      account_id                   looks like account id\n" in out
    code, out, _ = run(capsys, "purge", "--app", "leaky_app:gate", "--coverage", "--json")
    assert code == 1
    report = json.loads(out)
    assert {"database", "table", "column", "looks_like"} == set(report["uncovered"][0])


@pytest.mark.parametrize("attr", ["app", "wrapped", "gate"])
def test_app_may_name_the_gate_an_app_with_state_gate_or_the_middleware(
    app_dir: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    attr: str,
) -> None:
    (tmp_path / "starlette_shop.py").write_text(
        textwrap.dedent(
            """
            from starlette.applications import Starlette
            from agegate import AgeGate, AgeGateMiddleware, Keyring
            from agegate.stores import MemoryStore

            gate = AgeGate(keys=Keyring.from_env(), store=MemoryStore())
            app = Starlette()
            app.state.gate = gate
            wrapped = AgeGateMiddleware(app, gate=gate)
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "audit", "--app", f"starlette_shop:{attr}")
    assert (code, out) == (0, "No purge jobs.\n")


def test_progress_is_shown_per_handler_on_a_terminal(app_dir: Path) -> None:
    controller, terminal = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "agegate.cli", *PURGE, "--yes"],
            cwd=Path(__file__).parent,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=terminal,
            timeout=60,
            check=False,
        )
        os.close(terminal)
        terminal = -1
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if terminal != -1:
            os.close(terminal)
        os.close(controller)
    assert done.returncode == 0
    text = shown.decode()
    for step, count in (
        ("freeze", 1),
        ("profiles", 1),
        ("orders", 6),
        ("files", 3),
        ("block_identifiers", 1),
    ):
        assert f"\r  {step:<28} {count}" in text
    assert purge_app.CHILD.encode() not in shown + done.stdout


def _failed_job(app_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PURGE_APP_FAIL", "orders")
    code, _, _ = run(capsys, *PURGE, "--yes")
    assert code == 1
    monkeypatch.delenv("PURGE_APP_FAIL")


@pytest.mark.parametrize(
    ("flags", "unfit"),
    [
        (["--resume", "--dry-run"], "--dry-run"),
        (["--resume", "--ticket", "T-9"], "--ticket"),
        (["--resume", "--operator", "sam"], "--operator"),
        (["--resume", "--identifier", "email=a@b.c"], "--identifier"),
        (["--resume", "--receipt", "r.json"], "--receipt"),
        (["--coverage", "--dry-run"], "--dry-run"),
        (["--coverage", "--ticket", "T-9", "--yes"], "--ticket, --yes"),
    ],
)
def test_flags_that_do_not_fit_the_mode_are_refused(
    app_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    flags: list[str],
    unfit: str,
) -> None:
    _failed_job(app_dir, capsys, monkeypatch)
    code, _, err = run(capsys, "purge", *BASE, *flags)
    assert code == 2 and f"does not take {unfit}" in err, err
    # In particular `--resume --dry-run` did not resume: the orders are still there.
    ((job),) = jobs(capsys)
    assert job["state"] == "failed"
    assert (app_dir / "files" / purge_app.CHILD / "notes.txt").exists()


@pytest.mark.parametrize(
    ("identifier", "message"),
    [
        ("mail=kid@example.org", "unknown identifier kind 'mail': use one of email, phone, username"),
        ("phone=abc", "the phone identifier is empty (a phone number needs digits)"),
        ("username=  ", "KIND=VALUE"),
    ],
)
def test_unknown_or_empty_identifiers_are_refused(
    app_dir: Path, capsys: pytest.CaptureFixture[str], identifier: str, message: str
) -> None:
    code, _, err = run(capsys, *PURGE, "--identifier", identifier, "--yes")
    assert code == 2 and message in err, err
    assert "kid@example.org" not in err and "abc" not in err
    assert jobs(capsys) == []


def test_the_prompt_counts_the_identifiers_really_blocked(
    app_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", FakeTerminal("no\n"))
    # The same email spelt twice (other case, spaces) is one identifier; the phone is another.
    args = [*PURGE, "--identifier", "PHONE=+1 (555) 010-0100", "--identifier", "username=Kid1001"]
    code, _, err = run(capsys, *args)
    assert code == 1 and "block 3 identifier(s)" in err


def test_the_account_id_and_identifiers_can_come_from_stdin(
    app_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{purge_app.CHILD}\n{purge_app.CHILD_EMAIL}\n"))
    args = ["purge", *BASE, "--subject", "-", "--ticket", "T-88", "--operator", "sam"]
    code, out, _ = run(capsys, *args, "--identifier", "email=-", "--yes", "--json")
    assert code == 0, out
    report = json.loads(out)
    assert (
        report["deleted"] == {"profiles": 1, "orders": 6, "files": 3} and report["identifiers_blocked"] == 1
    )
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _, err = run(capsys, *args, "--yes")
    assert code == 2 and "the account id was given as '-' but none was read" in err


def test_json_mode_prints_failures_as_json(app_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "purge", "--app", "purge_app:nothing", "--resume", "--json")
    assert code == 2 and err.startswith("agegate: ")
    assert json.loads(out) == {"error": "the app module 'purge_app' has no 'nothing'", "exit": 2}
    code, out, _ = run(capsys, "audit", "--app", "no_such_module:gate", "--json")
    assert code == 2 and json.loads(out)["exit"] == 2


def test_a_bad_public_key_is_a_usage_error(app_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    receipt = app_dir / "r.json"
    receipt.write_text("{}")
    code, _, err = run(capsys, "receipt", "verify", str(receipt), "--public-key", "not a key!")
    assert code == 2 and "--public-key: the public key is not a base64 Ed25519 key" in err


def test_an_app_failing_on_import_is_named_without_its_message(
    app_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "leaky_app.py").write_text(
        'raise RuntimeError("cannot connect to postgresql://shop:hunter2@db/shop")\n'
    )
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "audit", "--app", "leaky_app:gate")
    assert code == 2 and "failed with RuntimeError" in err
    assert "hunter2" not in err and "postgresql" not in err


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("import sys\nsys.exit(3)\n", "exited (status 3) while being imported"),
        ("def __getattr__(name):\n    import os\n    return os.environ['NO_SUCH_VAR_X']\n", "KeyError"),
        ("from agegate import Keyring\nKeyring.from_string('nonsense')\n", "cannot start: "),
        ("def f(:\n", "failed with SyntaxError"),
    ],
)
def test_an_app_failing_to_load_is_one_line_and_exit_2(
    app_dir: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    message: str,
) -> None:
    (tmp_path / "leaky_app.py").write_text(source)
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "purge", "--app", "leaky_app:gate", "--resume")
    assert code == 2 and message in err and err.count("\n") == 1 and out == ""


def test_usage_errors_are_one_line_under_python_m_agegate_cli(app_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agegate.cli", "purge", *BASE, "--resume", "--dry-run"],
        cwd=Path(__file__).parent,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr == "agegate: --resume does not take --dry-run\n"


def test_a_handler_registered_after_the_purge_runs_when_purged_again(
    app_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, _ = run(capsys, *PURGE, "--yes")
    assert code == 0
    (tmp_path / "grown_app.py").write_text(
        textwrap.dedent(
            """
            import purge_app
            from pathlib import Path
            import os
            from agegate import Keyring

            gate = purge_app.build_gate(Path(os.environ["PURGE_APP_DIR"]), keys=Keyring.from_env())

            @gate.purger.handler("chat_logs")
            async def chat_logs(subject):
                return 1
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    args = ["purge", "--app", "grown_app:gate", *PURGE[3:], "--yes"]
    code, out, _ = run(capsys, *args, "--dry-run")
    assert code == 0 and "NOT RUN yet: chat_logs" in out
    code, out, _ = run(capsys, *args)
    assert code == 0 and "Purge done" in out and "chat_logs" in out
    code, out, _ = run(capsys, *args, "--json")
    assert code == 0 and json.loads(out)["already_done"] and json.loads(out)["not_run"] == []


def test_a_dash_asks_on_the_terminal_without_echo(app_dir: Path) -> None:
    controller, terminal = pty.openpty()
    # A new session whose controlling terminal is the pty, as in a real login; getpass then
    # reads from /dev/tty with echo off.
    take_terminal = (
        "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
        "os.execv(sys.executable, [sys.executable, '-m', 'agegate.cli', *sys.argv[1:]])"
    )
    args = ["purge", *BASE, "--subject", "-", "--ticket", "T-88", "--operator", "sam", "--dry-run", "--json"]
    proc = subprocess.Popen(
        [sys.executable, "-c", take_terminal, *args],
        cwd=Path(__file__).parent,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        text=True,
    )
    os.close(terminal)
    shown = b""
    try:
        while b"not shown" not in shown:
            ready, _, _ = select.select([controller], [], [], 30)
            assert ready, shown
            shown += os.read(controller, 1024)
        os.write(controller, f"{purge_app.CHILD}\n".encode())
        out, err = proc.communicate(timeout=60)
        with contextlib.suppress(OSError):
            while select.select([controller], [], [], 0.2)[0]:
                chunk = os.read(controller, 1024)
                if not chunk:
                    break
                shown += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(controller)
    assert proc.returncode == 0, err
    assert b"Enter the account id (not shown)" in shown
    assert purge_app.CHILD.encode() not in shown  # typed, but never echoed
    assert json.loads(out)["deleted"] == {"profiles": 1, "orders": 6, "files": 3}
