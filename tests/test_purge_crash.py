"""Crash and concurrency acceptance tests: real processes, a SQLite store, SQLite app tables, files.

A purge runs in a subprocess (``python -m agegate.cli purge``) over the test app in
``purge_app.py``, which stops at a chosen point and signals it with a marker file. The test then
kills it with SIGKILL (or releases it), runs ``agegate purge --resume``, and compares everything
with an uninterrupted purge of identical data.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import purge_app
import pytest

from agegate import AgeGate, Keyring

pytestmark = [pytest.mark.slow, pytest.mark.time_limit(180)]

TESTS = Path(__file__).parent
KEYS = Keyring.generate("crash").to_string()
TICKET = "T-4242"
PURGE = [
    "purge", "--app", "purge_app:gate", "--subject", purge_app.CHILD, "--ticket", TICKET,
    "--operator", "support-7", "--identifier", f"email={purge_app.CHILD_EMAIL}", "--yes", "--json",
]  # fmt: skip
POINTS = [
    "before:freeze",
    "after:freeze",
    "before:profiles",
    "committed:profiles",
    "after:profiles",
    "entered:orders",
    "mid:orders",
    "after:orders",
    "entered:files",
    "mid:files",
    "after:files",
    "before:block_identifiers",
    "after:block_identifiers",
]


def _env(directory: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PURGE_APP_", "AGEGATE_"))}
    env.update(AGEGATE_SECRET_KEYS=KEYS, PURGE_APP_DIR=str(directory), PYTHONPATH=str(TESTS), **extra)
    return env


def agegate(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agegate.cli", *args],
        cwd=TESTS,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agegate.cli", *args],
        cwd=TESTS,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_file(path: Path, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    """Wait until the paused process has written ``path``: bounded, fails fast if it exited."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the purge exited ({proc.returncode}) before its pause point: {out} {err}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.communicate()
            pytest.fail("the purge never reached its pause point")
        time.sleep(0.01)


def snapshot(directory: Path) -> dict[str, Any]:
    """Everything the app keeps: a full SQL dump of its database and every file's bytes."""
    with contextlib.closing(sqlite3.connect(directory / "app.sqlite3")) as conn:
        dump = list(conn.iterdump())
    root = directory / "files"
    files = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    return {"dump": dump, "files": files}


def others(directory: Path) -> dict[str, Any]:
    """The rows and files of the accounts that were not purged, exactly as stored."""
    with contextlib.closing(sqlite3.connect(directory / "app.sqlite3")) as conn:
        rows = {
            "profiles": conn.execute(
                "SELECT * FROM profiles WHERE account_id != ? ORDER BY 1", (purge_app.CHILD,)
            ).fetchall(),
            "orders": conn.execute(
                "SELECT * FROM orders WHERE account_id != ? ORDER BY 1", (purge_app.CHILD,)
            ).fetchall(),
            "order_items": conn.execute(
                "SELECT i.* FROM order_items i JOIN orders o ON o.id = i.order_id "
                "WHERE o.account_id != ? ORDER BY 1",
                (purge_app.CHILD,),
            ).fetchall(),
            "products": conn.execute("SELECT * FROM products ORDER BY 1").fetchall(),
        }
    files = {k: v for k, v in snapshot(directory)["files"].items() if purge_app.CHILD not in k}
    return {"rows": rows, "files": files}


def audit(directory: Path) -> list[dict[str, Any]]:
    done = agegate(["audit", "--app", "purge_app:gate", "--json"], _env(directory))
    assert done.returncode == 0, done.stderr
    jobs: list[dict[str, Any]] = json.loads(done.stdout)
    return jobs


def store_state(directory: Path) -> tuple[str, str, bool, bool]:
    async def check() -> tuple[str, str, bool, bool]:
        async with AgeGate(
            keys=Keyring.from_string(KEYS), store=f"sqlite:///{directory / 'agegate.sqlite3'}"
        ) as gate:
            return (
                await gate.status_of(purge_app.CHILD),
                await gate.status_of("acct-1002"),
                await gate.is_blocked({"email": purge_app.CHILD_EMAIL}),
                await gate.is_blocked({"email": "kid.1002@example.org"}),
            )

    return asyncio.run(check())


def clear_text_free(directory: Path) -> None:
    written = b"".join(p.read_bytes() for p in directory.glob("agegate.sqlite3*"))
    for needle in (purge_app.CHILD, purge_app.CHILD_EMAIL, "acct-1002"):
        assert needle.encode() not in written


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An uninterrupted purge of the same data."""
    directory = tmp_path_factory.mktemp("reference")
    purge_app.seed(directory)
    original = others(directory)
    done = agegate(PURGE, _env(directory))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["state"] == "done" and not report["already_done"]
    assert report["deleted"] == {"profiles": 1, "orders": 6, "files": 3}
    (job,) = audit(directory)
    return {
        "snapshot": snapshot(directory),
        "others": original,
        "steps": job["steps"],
        "deleted": report["deleted"],
    }


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_at_any_point_then_resume_equals_an_uninterrupted_purge(
    tmp_path: Path, reference: dict[str, Any], point: str
) -> None:
    purge_app.seed(tmp_path)
    original = others(tmp_path)
    assert original == reference["others"]
    marker = tmp_path / "paused"
    proc = start(PURGE, _env(tmp_path, PURGE_APP_PAUSE=point, PURGE_APP_MARKER=str(marker)))
    wait_for_file(marker, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    (job,) = audit(tmp_path)
    assert job["state"] == "running" and job["ticket"] == TICKET
    if point.startswith("entered:"):
        # Killed between journalling the handler's planned count and deleting anything.
        name = point.split(":")[1]
        assert name in job["planned"] and name not in job["steps"]
    clear_text_free(tmp_path)  # the interrupted job holds the account id sealed, never in the clear

    resumed = agegate(["purge", "--app", "purge_app:gate", "--resume", "--json"], _env(tmp_path))
    assert resumed.returncode == 0, resumed.stderr
    (report,) = json.loads(resumed.stdout)
    assert report["state"] == "done" and report["ticket"] == TICKET
    assert report["deleted"] == reference["deleted"]

    assert snapshot(tmp_path) == reference["snapshot"]
    assert others(tmp_path) == original
    # Finished steps were not redone: only a handler interrupted inside ran twice.
    interrupted = point.split(":")[1] if point.startswith(("entered:", "mid:", "committed:")) else None
    calls = (tmp_path / "calls.log").read_text().split()
    assert calls == [
        name for name in ("profiles", "orders", "files") for _ in range(2 if name == interrupted else 1)
    ]
    jobs = audit(tmp_path)
    assert [(j["ticket"], j["state"]) for j in jobs] == [(TICKET, "done")]
    assert jobs[0]["steps"] == reference["steps"]
    assert store_state(tmp_path) == ("under_age", "unknown", True, False)
    clear_text_free(tmp_path)

    # Resuming again finds nothing; purging again says it was already done.
    again = agegate(["purge", "--app", "purge_app:gate", "--resume"], _env(tmp_path))
    assert again.returncode == 0 and "Nothing to resume" in again.stdout
    repeat = agegate(PURGE, _env(tmp_path))
    assert repeat.returncode == 0 and json.loads(repeat.stdout)["already_done"] is True
    assert len(audit(tmp_path)) == 1


def test_two_purges_of_one_account_at_once_make_one_job(tmp_path: Path, reference: dict[str, Any]) -> None:
    purge_app.seed(tmp_path)
    marker, release = tmp_path / "paused", tmp_path / "release"
    env = _env(
        tmp_path, PURGE_APP_PAUSE="mid:orders", PURGE_APP_MARKER=str(marker), PURGE_APP_RELEASE=str(release)
    )
    first = start(PURGE, env)
    wait_for_file(marker, first)
    second = start(PURGE, env)
    # The second process announces that it waits for the first; only then let the first go on.
    assert second.stderr is not None
    ready, _, _ = select.select([second.stderr], [], [], 30)
    assert ready, "the second purge neither waited nor finished"
    line = second.stderr.readline()
    assert line.startswith("waiting: another process is running purge job"), line
    release.write_text("go")
    out1, err1 = first.communicate(timeout=60)
    out2, err2 = second.communicate(timeout=60)
    assert (first.returncode, second.returncode) == (0, 0), (err1, err2)
    one, two = json.loads(out1), json.loads(out2)
    assert (one["already_done"], two["already_done"]) == (False, True)
    assert one["job_id"] == two["job_id"]
    assert one["deleted"] == two["deleted"] == reference["deleted"]
    assert snapshot(tmp_path) == reference["snapshot"]
    jobs = audit(tmp_path)
    assert [(j["ticket"], j["state"]) for j in jobs] == [(TICKET, "done")]
    assert jobs[0]["steps"] == reference["steps"]


def test_two_purges_started_together_without_pauses(tmp_path: Path, reference: dict[str, Any]) -> None:
    purge_app.seed(tmp_path)
    env = _env(tmp_path)
    procs = [start(PURGE, env), start(PURGE, env)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    reports = [json.loads(out) for out, _ in outs]
    assert sorted(r["already_done"] for r in reports) == [False, True]
    assert all(r["deleted"] == reference["deleted"] for r in reports)
    assert snapshot(tmp_path) == reference["snapshot"]
    assert [(j["ticket"], j["state"]) for j in audit(tmp_path)] == [(TICKET, "done")]


def test_a_failing_handler_then_resume(tmp_path: Path, reference: dict[str, Any]) -> None:
    purge_app.seed(tmp_path)
    failed = agegate(PURGE, _env(tmp_path, PURGE_APP_FAIL="orders"))
    assert failed.returncode == 1
    assert "handler 'orders' failed (RuntimeError)" in failed.stderr
    assert "agegate purge --resume" in failed.stderr
    assert purge_app.CHILD not in failed.stderr + failed.stdout
    assert "Traceback" not in failed.stderr
    (job,) = audit(tmp_path)
    assert job["state"] == "failed" and job["error"] == "handler 'orders' failed (RuntimeError)"
    resumed = agegate(["purge", "--app", "purge_app:gate", "--resume"], _env(tmp_path))
    assert resumed.returncode == 0, resumed.stderr
    assert "Purge done for ticket T-4242" in resumed.stdout
    assert snapshot(tmp_path) == reference["snapshot"]
    assert audit(tmp_path)[0]["steps"] == reference["steps"]
