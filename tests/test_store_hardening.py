"""SQLite store and signup hardening: fork safety, lock waits off the store's thread, no
lingering WAL copies, child records kept, and bad signup bodies answered, never a 500."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from store_contract import h, job, record

from agegate import AgeGate, ConfigurationError, Keyring, UnderAgeError
from agegate.signup import InvalidSignupForm, signup_form
from agegate.stores import AttestationRecord, MemoryStore
from agegate.stores.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent


def run_script(source: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


FORK_THEN_EXIT = """
    import asyncio, os, sys, warnings
    warnings.simplefilter("ignore")  # fork with threads: the point of the test
    sys.path.insert(0, "tests")
    from store_contract import record
    from agegate.stores.sqlite import SQLiteStore

    store = SQLiteStore(sys.argv[1])

    async def write(prefix, n, close):
        for i in range(n):
            await store.put_attestation(record(f"{prefix}{i}"))
        if close:
            await store.close()

    asyncio.run(store.open())
    asyncio.run(write("p", 300, False))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.read(r, 1)  # wait until the parent has closed: the child is then the last user
        asyncio.run(write("c", 300, True))
        sys.exit(0)  # a normal exit, finalizers and all
    asyncio.run(write("q", 300, True))
    os.write(w, b"x")
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def test_a_forked_child_that_exits_normally_leaves_the_database_whole(tmp_path: Path) -> None:
    db = tmp_path / "a.sqlite3"
    assert run_script(FORK_THEN_EXIT, f"sqlite:///{db}").strip() == "0"
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM attestations").fetchone() == (900,)
    finally:
        conn.close()


FORK_THEN_CLOSE = """
    import asyncio, os, sys, warnings
    warnings.simplefilter("ignore")
    from agegate import AgeGate, Keyring

    gate = AgeGate(keys=Keyring.generate("k"), store=sys.argv[1])
    asyncio.run(gate.store())  # opened before the fork, as a preloaded app does
    pid = os.fork()
    if pid == 0:
        async def worker():
            async with gate:  # a worker's lifespan: start, no request, stop
                pass
        asyncio.run(asyncio.wait_for(worker(), 10))
        os._exit(0)
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def test_a_forked_child_closes_without_hanging(tmp_path: Path) -> None:
    assert run_script(FORK_THEN_CLOSE, f"sqlite:///{tmp_path}/a.sqlite3").strip() == "0"


async def test_reads_do_not_queue_behind_a_write_waiting_for_a_lock(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path}/a.sqlite3")
    await store.open()
    other = sqlite3.connect(tmp_path / "a.sqlite3", isolation_level=None)
    try:
        await store.put_attestation(record("a"))
        other.execute("BEGIN IMMEDIATE")  # another process is in the middle of a write
        waiting = asyncio.create_task(store.put_attestation(record("b")))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        # WAL readers need no lock: the read is answered while the write still waits.
        found = await asyncio.wait_for(store.get_attestation([h("a")]), timeout=2)
        assert found == record("a")
        other.execute("COMMIT")
        await asyncio.wait_for(waiting, timeout=10)
        assert await store.get_attestation([h("b")]) == record("b")
    finally:
        other.close()
        await store.close()


async def test_a_finished_jobs_sealed_subject_does_not_linger_in_the_wal(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path}/a.sqlite3")
    await store.open()
    try:
        marker = b"SEALED-SUBJECT-MARKER-0123456789"
        created = job("alice")
        created.sealed_subject = marker
        await store.create_job(created)
        await store.claim_job(created.job_id, owner="o", until=NOW, now=NOW)
        assert await store.finish_job(created.job_id, owner="o", state="done", now=NOW)
        for path in sorted(tmp_path.iterdir()):  # noqa: ASYNC240 - a test reading its own files
            assert marker not in path.read_bytes(), path.name
    finally:
        await store.close()


async def test_forget_account_keeps_a_childs_record(keyring: Keyring) -> None:
    gate = AgeGate(keys=keyring, store=MemoryStore())
    async with gate:
        await gate.record("kid-1", "under_age", now=NOW)
        assert await gate.forget_account("kid-1") == 0
        assert await gate.status_of("kid-1") == "under_age"
        await gate.signup({"birth_date": "1990-01-01"}, subject="adult-1", now=NOW)
        assert await gate.forget_account("adult-1") == 1
        assert await gate.status_of("adult-1") == "unknown"


async def test_record_refuses_an_unknown_outcome(keyring: Keyring) -> None:
    gate = AgeGate(keys=keyring, store=MemoryStore())
    with pytest.raises(ConfigurationError, match="outcome"):
        await gate.record("a", "maybe")  # type: ignore[arg-type]


def signup_app(gate: AgeGate) -> Starlette:
    async def signup(request: Request) -> JSONResponse:
        try:
            fields = await signup_form(request, gate, subject=lambda f: f["username"])
        except InvalidSignupForm as exc:
            return JSONResponse({"error": exc.code}, status_code=exc.status_code)
        return JSONResponse({"fields": sorted(fields)}, status_code=201)

    return Starlette(routes=[Route("/signup", signup, methods=["POST"])])


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"content-type": "application/json"}, b"[" * 30_000, 400),
        ({"content-type": "application/json"}, b'{"birth_date": "1990-01-01"}', 400),
        ({"content-type": "application/json"}, b'{"birth_date": "1990-01-01", "username": ""}', 400),
        ({"content-type": "application/json"}, b'{"birth_date": "1990-01-01", "username": 5}', 201),
        (
            {"content-type": "application/json"},
            b'{"birth_date": "1990-01-01", "username": "' + b"x" * 600 + b'"}',
            400,
        ),
        ({"content-type": "application/x-www-form-urlencoded", "content-length": b"\xb2"}, b"a=1", 400),
        ({"content-type": "application/x-www-form-urlencoded", "content-length": "9" * 5000}, b"a=1", 400),
    ],
)
async def test_bad_signup_bodies_are_answered_never_a_500(
    keyring: Keyring, headers: dict[str, str | bytes], body: bytes, status: int
) -> None:
    gate = AgeGate(keys=keyring, store=MemoryStore())
    transport = httpx.ASGITransport(app=signup_app(gate), raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/signup", content=body, headers=headers)
    assert response.status_code == status, response.text


def test_relative_paths_are_fixed_when_the_store_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = SQLiteStore("sqlite:///here.sqlite3")
    monkeypatch.chdir("/")
    assert store.path == str(tmp_path / "here.sqlite3")


class FreezeBetweenReadAndWrite(MemoryStore):
    """A store on which a purge freezes the account right after the signup reads its record."""

    def __init__(self, gate_for_freeze: list[AgeGate]) -> None:
        super().__init__()
        self._gate = gate_for_freeze
        self.froze = False

    async def get_attestation(self, subject_hashes: Sequence[bytes]) -> AttestationRecord | None:
        found = await super().get_attestation(subject_hashes)
        if not self.froze:
            self.froze = True
            await self._gate[0].record("acct-9", "under_age", now=NOW)
        return found


async def test_a_signup_never_overwrites_a_freeze_that_landed_meanwhile(keyring: Keyring) -> None:
    holder: list[AgeGate] = []
    store = FreezeBetweenReadAndWrite(holder)
    gate = AgeGate(keys=keyring, store=store)
    holder.append(gate)
    async with gate:
        with pytest.raises(UnderAgeError):
            await gate.signup({"birth_date": "1990-01-01"}, subject="acct-9", now=NOW)
        assert store.froze
        assert await gate.status_of("acct-9") == "under_age"


OPEN_AT_ONCE = """
    import asyncio, multiprocessing as mp, sys, tempfile

    def worker(url, barrier, results):
        from agegate.stores.sqlite import SQLiteStore

        async def main():
            store = SQLiteStore(url)
            try:
                await store.open()
                results.put("ok")
            except Exception as exc:
                results.put(type(exc).__name__)
            finally:
                await store.close()

        barrier.wait()
        asyncio.run(main())

    if __name__ == "__main__":
        ctx = mp.get_context("fork")  # a fresh interpreter: no threads yet
        failures = 0
        for _ in range(int(sys.argv[1])):
            url = f"sqlite:///{tempfile.mkdtemp(dir=sys.argv[2])}/a.sqlite3"
            barrier, results = ctx.Barrier(4), ctx.Queue()
            workers = [ctx.Process(target=worker, args=(url, barrier, results)) for _ in range(4)]
            for p in workers:
                p.start()
            for p in workers:
                p.join()
            failures += sum(results.get() != "ok" for _ in workers)
        print(failures)
"""


@pytest.mark.slow
def test_processes_creating_a_new_database_at_once_all_open_it(tmp_path: Path) -> None:
    script = tmp_path / "open_at_once.py"
    script.write_text(textwrap.dedent(OPEN_AT_ONCE))
    result = subprocess.run(
        [sys.executable, str(script), "30", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"


async def test_a_signup_with_an_unknown_identifier_kind_is_a_configuration_error(keyring: Keyring) -> None:
    gate = AgeGate(keys=keyring, store=MemoryStore())
    async with gate:
        await gate.purge("kid-2", ticket="T-77", operator="support", identifiers={"email": "k@example.org"})
        # "mail" could never match the block on "email": refused loudly, never silently allowed.
        with pytest.raises(ConfigurationError, match="unknown identifier kind 'mail'") as info:
            await gate.signup(
                {"birth_date": "1990-01-01"}, subject="n-1", identifiers={"mail": "k@example.org"}
            )
        assert "k@example.org" not in str(info.value)
        with pytest.raises(ConfigurationError) as pasted:
            await gate.signup({"birth_date": "1990-01-01"}, subject="n-1", identifiers={"k@example.org": "x"})
        assert "k@example.org" not in str(pasted.value)
        with pytest.raises(UnderAgeError):
            await gate.signup(
                {"birth_date": "1990-01-01"}, subject="n-1", identifiers={" Email ": "K@example.org"}
            )
        assert await gate.status_of("n-1") == "unknown"
