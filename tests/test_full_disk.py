"""A full disk or a read-only file never crashes the process: the store says so with a
:class:`StoreError` (:class:`StoreUnavailable` when freeing space or remounting fixes it).

Runs on a small tmpfs and a small ext4 image, mounted for the test when the machine allows it
(root, ``mount``, a loop device); skipped with the reason otherwise. Each scenario runs in a
child process, so that a crash (SIGBUS from a mapped page with no storage behind it) shows as
that process's death instead of taking the test run down.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agegate import AgeGate, Keyring

KEYS = Keyring.generate("disk").to_string()
ADULT = {"birth_date": "1990-01-01"}


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def _mountable(kind: str) -> str | None:
    """Why a small ``kind`` file system cannot be mounted here, or ``None`` when it can."""
    if sys.platform != "linux" or os.geteuid() != 0:
        return "mounting a small file system needs root on Linux"
    needed = ["mount", "umount"] + (["mkfs.ext4"] if kind == "ext4" else [])
    missing = [tool for tool in needed if shutil.which(tool) is None]
    return f"{', '.join(missing)} not found" if missing else None


@pytest.fixture(params=["tmpfs", "ext4"])
def small_fs(request: pytest.FixtureRequest) -> Iterator[Path]:
    """An empty, small file system mounted on a fresh directory."""
    kind = request.param
    reason = _mountable(kind)
    if reason:
        pytest.skip(reason)
    base = Path(tempfile.mkdtemp(prefix="agegate-disk-"))
    point = base / "mnt"
    point.mkdir()
    if kind == "tmpfs":
        done = _run("mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", str(point))
    else:
        image = base / "fs.img"
        with image.open("wb") as f:
            f.truncate(8 * 1024 * 1024)
        made = _run("mkfs.ext4", "-q", "-F", "-m", "0", str(image))
        done = made if made.returncode else _run("mount", "-o", "loop", str(image), str(point))
    if done.returncode:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"cannot mount a small {kind} here: {done.stderr.strip()}")
    try:
        yield point
    finally:
        _run("umount", "-l", str(point))
        shutil.rmtree(base, ignore_errors=True)


def fill(directory: Path) -> Path:
    """Fill the file system holding ``directory`` to the last byte; returns the filler file."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as f:
        for size in (1 << 20, 4096, 512, 1):
            chunk = b"\xff" * size
            try:
                while True:
                    f.write(chunk)
            except OSError as exc:
                assert exc.errno in (errno.ENOSPC, errno.EDQUOT), exc
    return filler


PROBE = r"""
import asyncio, json, sys
from agegate import AgeGate, Keyring, StoreError, StoreUnavailable

async def attempt(call):
    try:
        result = await call()
        return result if isinstance(result, str) else "ok"
    except StoreUnavailable as exc:
        return "StoreUnavailable: " + str(exc)
    except StoreError as exc:
        return "StoreError: " + str(exc)

async def main(url, keys):
    gate = AgeGate(keys=Keyring.from_string(keys), store=url)
    out = {"open": await attempt(gate.store)}
    out["read"] = await attempt(lambda: gate.cached_status("alice"))  # reads the change counter
    out["write"] = await attempt(lambda: gate.record("bob", "allowed"))
    await gate.aclose()
    print(json.dumps(out))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def probe(store: Path) -> dict[str, str]:
    """Read one account and write another in a child process; what each call gave."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, f"sqlite:///{store}", KEYS],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"the process died (status {done.returncode}): {done.stderr[-2000:]}"
    return dict(json.loads(done.stdout))


@pytest.mark.anyio
async def test_a_store_opened_on_a_full_disk_refuses_instead_of_crashing(small_fs: Path) -> None:
    """The change counter beside the database is created on a full disk: it used to be mapped
    before any storage was behind it, and the first read killed the process with SIGBUS."""
    db = small_fs / "agegate.sqlite3"
    gate = AgeGate(keys=Keyring.from_string(KEYS), store=f"sqlite:///{db}")
    async with gate:  # stays open, as another worker would: the -wal and -shm files remain
        await gate.record("alice", "allowed")
        os.unlink(f"{db}-revision")
        fill(small_fs)
        result = probe(db)
        assert result["open"].startswith("StoreUnavailable: cannot open"), result
        assert "No space left on device" in result["open"]
        assert result["read"] == result["open"]
        assert result["write"] == result["open"]
        os.unlink(small_fs / "filler")
        assert probe(db) == {"open": "ok", "read": "allowed", "write": "ok"}


@pytest.mark.anyio
async def test_writes_on_a_full_disk_are_refused_and_reads_keep_working(small_fs: Path) -> None:
    db = small_fs / "agegate.sqlite3"
    gate = AgeGate(keys=Keyring.from_string(KEYS), store=f"sqlite:///{db}")
    async with gate:
        await gate.record("alice", "allowed")
        fill(small_fs)
        refused = None
        for n in range(2000):  # until the -wal file has no room left for another frame
            try:
                await gate.record(f"account-{n}", "allowed")
            except Exception as exc:
                refused = exc
                break
        assert type(refused).__name__ == "StoreUnavailable", refused
        assert "full" in str(refused)
        assert await gate.status_of("alice") == "allowed"  # reads keep working
        assert probe(db)["read"] == "allowed"  # in a process opening the store now too
        os.unlink(small_fs / "filler")
        await gate.record("dave", "allowed")
        assert await gate.status_of("dave") == "allowed"


@pytest.mark.anyio
async def test_a_read_only_file_system_is_a_clear_store_error(small_fs: Path) -> None:
    db = small_fs / "agegate.sqlite3"
    async with AgeGate(keys=Keyring.from_string(KEYS), store=f"sqlite:///{db}") as gate:
        await gate.record("alice", "allowed")
    remounted = _run("mount", "-o", "remount,ro", str(small_fs))
    if remounted.returncode:
        pytest.skip(f"cannot remount read-only: {remounted.stderr.strip()}")
    result = probe(db)
    assert result["open"] == "StoreUnavailable: cannot open the SQLite database " + repr(str(db)) + (
        ": Read-only file system"
    )
    assert result["read"] == result["write"] == result["open"]
