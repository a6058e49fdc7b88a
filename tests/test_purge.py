"""The purge routine through its Python API, on the memory store and on the SQLite store."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import purge_app
import pytest

from agegate import AgeGate, ConfigurationError, InvalidAccountId, Keyring, KeyringMismatch, UnderAgeError
from agegate import purge as purge_module
from agegate.errors import InvalidInput
from agegate.purge import PurgeError, PurgeEvent, Purger
from agegate.purge import lease as lease_module
from agegate.purge.receipts import verify_receipt
from agegate.stores import MemoryStore

pytestmark = [pytest.mark.anyio, pytest.mark.time_limit(60)]

ADULT = {"birth_date": "1990-01-01"}
EMAIL = "Kid.Player@Example.org"


@pytest.fixture(autouse=True)
def _bounded_lease_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    # A lease bug must fail a test, not hang it. Async tests: every purge waits at most 30 s for
    # a lease (tests that test waiting set shorter limits). Sync tests: the time_limit mark.
    init = Purger.__init__

    def bounded(self: Purger, gate: AgeGate) -> None:
        init(self, gate)
        self.wait_timeout = timedelta(seconds=30)

    monkeypatch.setattr(Purger, "__init__", bounded)


@pytest.fixture
def gate_store(store_url: str) -> str:
    return store_url  # memory, then SQLite


class Data:
    """A toy app's data: rows per account, with idempotent handlers that count calls."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, int]] = {"orders": {}, "messages": {}}
        self.calls: list[str] = []

    def add(self, account: str, orders: int, messages: int) -> None:
        self.rows["orders"][account] = orders
        self.rows["messages"][account] = messages

    def register(self, gate: AgeGate) -> None:
        for table in self.rows:
            self._register(gate, table)

    def _register(self, gate: AgeGate, table: str) -> None:
        async def count(subject: str) -> int:
            return self.rows[table].get(subject, 0)

        @gate.purger.handler(table, count=count)
        async def delete(subject: str) -> int:
            self.calls.append(table)
            return self.rows[table].pop(subject, 0)


async def test_purge_freezes_deletes_in_order_and_blocks(gate: AgeGate) -> None:
    data = Data()
    data.add("acct-1", 3, 5)
    data.add("acct-2", 1, 1)
    data.register(gate)
    await gate.signup(ADULT, subject="acct-1", identifiers={"email": EMAIL})
    assert await gate.status_of("acct-1") == "allowed"
    events: list[PurgeEvent] = []
    gate.purger.listen(events.append)

    report = await gate.purge("acct-1", ticket="T-1", operator="alice", identifiers={"email": EMAIL})

    assert report.state == "done" and not report.already_done
    assert report.deleted == {"orders": 3, "messages": 5}
    assert report.identifiers_blocked == 1
    assert data.calls == ["orders", "messages"]
    assert data.rows == {"orders": {"acct-2": 1}, "messages": {"acct-2": 1}}
    assert [(e.kind, e.step) for e in events if e.kind in ("start", "done")] == [
        (kind, step)
        for step in ("freeze", "orders", "messages", "block_identifiers")
        for kind in ("start", "done")
    ]
    assert await gate.status_of("acct-1") == "under_age"
    assert await gate.status_of("acct-2") == "unknown"
    # The block is on the normalised email: another spelling is refused too.
    with pytest.raises(UnderAgeError):
        await gate.signup(ADULT, subject="acct-new", identifiers={"email": "  kid.player@EXAMPLE.ORG "})
    assert await gate.status_of("acct-new") == "unknown"
    # The purged account itself cannot sign up again either.
    with pytest.raises(UnderAgeError):
        await gate.signup(ADULT, subject="acct-1")
    jobs = await gate.purger.jobs()
    assert len(jobs) == 1
    assert jobs[0].state == "done" and jobs[0].sealed_subject is None and jobs[0].identifier_hashes == ()
    assert jobs[0].steps == {
        "policy:min-age-13": 0,
        f"key:{gate.keys.active_kid}": 0,
        "freeze": 1,
        "planned:orders": 3,
        "orders": 3,
        "planned:messages": 5,
        "messages": 5,
        "block_identifiers": 1,
    }


async def test_the_account_is_under_age_before_any_handler_runs(gate: AgeGate) -> None:
    seen: list[str] = []

    @gate.purger.handler("orders")
    async def orders(subject: str) -> int:
        seen.append(await gate.status_of(subject))
        return 0

    await gate.signup(ADULT, subject="acct-1")
    await gate.purge("acct-1", ticket="T-1", operator="alice")
    assert seen == ["under_age"]


async def test_a_second_purge_is_already_done_and_counts_nothing_twice(gate: AgeGate) -> None:
    data = Data()
    data.add("acct-1", 2, 2)
    data.register(gate)
    first = await gate.purge("acct-1", ticket="T-1", operator="alice")
    again = await gate.purge("acct-1", ticket="T-1", operator="alice")
    other_ticket = await gate.purge("acct-1", ticket="T-2", operator="bob")
    assert not first.already_done
    assert again.already_done and other_ticket.already_done
    assert again.job_id == other_ticket.job_id == first.job_id
    assert again.deleted == first.deleted == {"orders": 2, "messages": 2}
    assert data.calls == ["orders", "messages"]
    assert len(await gate.purger.jobs()) == 1


async def test_concurrent_purges_in_one_process_share_one_job(gate: AgeGate) -> None:
    release = asyncio.Event()
    started = asyncio.Event()
    calls = 0

    @gate.purger.handler("orders")
    async def orders(subject: str) -> int:
        nonlocal calls
        calls += 1
        started.set()
        await release.wait()
        return 4

    gate.purger.poll_interval = 0.01
    waiting = asyncio.Event()
    gate.purger.listen(lambda e: waiting.set() if e.kind == "wait" else None)
    first = asyncio.create_task(gate.purge("acct-1", ticket="T-1", operator="a"))
    await started.wait()
    second = asyncio.create_task(gate.purge("acct-1", ticket="T-1", operator="b"))
    await waiting.wait()
    release.set()
    one, two = await first, await second
    assert calls == 1
    assert (one.already_done, two.already_done) == (False, True)
    assert one.deleted == two.deleted == {"orders": 4}
    assert [j.state for j in await gate.purger.jobs()] == ["done"]


async def test_a_slow_handler_keeps_its_lease(gate: AgeGate) -> None:
    # The lease is far shorter than the handler: only its renewal keeps a second purge out.
    gate.purger.lease = timedelta(seconds=0.3)
    gate.purger.poll_interval = 0.01
    started = asyncio.Event()
    calls = 0

    @gate.purger.handler("slow")
    async def slow(subject: str) -> int:
        nonlocal calls
        calls += 1
        started.set()
        await asyncio.sleep(1.2)
        return 1

    first = asyncio.create_task(gate.purge("acct-1", ticket="T-1", operator="a"))
    await started.wait()
    second = await gate.purge("acct-1", ticket="T-1", operator="b")
    assert (await first).already_done is False
    assert second.already_done is True
    assert calls == 1


async def test_a_failing_handler_names_itself_and_the_job_resumes(gate: AgeGate) -> None:
    broken = True
    calls: list[str] = []

    @gate.purger.handler("orders")
    async def orders(subject: str) -> int:
        calls.append("orders")
        return 2

    @gate.purger.handler("search-index")
    async def index(subject: str) -> int:
        calls.append("index")
        if broken:
            raise OSError(f"connection refused while deleting {subject} / {EMAIL}")
        return 7

    with pytest.raises(PurgeError) as caught:
        await gate.purge("acct-secret-42", ticket="T-9", operator="alice", identifiers={"email": EMAIL})
    message = str(caught.value)
    assert "'search-index'" in message and "OSError" in message
    assert "acct-secret-42" not in message and EMAIL.lower() not in message.lower()
    assert "connection refused" not in message
    (job,) = await gate.purger.jobs()
    assert job.state == "failed" and job.error == "handler 'search-index' failed (OSError)"
    assert job.steps == {"policy:min-age-13": 0, f"key:{gate.keys.active_kid}": 0, "freeze": 1, "orders": 2}
    assert job.lease_owner is None
    assert await gate.status_of("acct-secret-42") == "under_age"
    assert not await gate.is_blocked({"email": EMAIL})

    broken = False
    (report,) = await gate.purger.resume()
    assert report.state == "done" and report.deleted == {"orders": 2, "search-index": 7}
    assert calls == ["orders", "index", "index"]
    assert await gate.is_blocked({"email": EMAIL})
    assert await gate.purger.resume() == []


async def test_a_handler_interrupted_half_way_still_reports_all_it_deleted(gate: AgeGate) -> None:
    files = {"a", "b", "c"}
    crash = True

    async def count(subject: str) -> int:
        return len(files)

    @gate.purger.handler("files", count=count)
    async def delete(subject: str) -> int:
        deleted = 0
        for name in sorted(files):
            files.discard(name)
            deleted += 1
            if crash:
                raise OSError("disk went away")
        return deleted

    with pytest.raises(PurgeError):
        await gate.purge("acct-1", ticket="T-1", operator="a")
    assert files == {"b", "c"}
    crash = False
    (report,) = await gate.purger.resume()
    assert files == set()
    assert report.deleted == {"files": 3}


async def test_a_handler_must_return_a_row_count(gate: AgeGate) -> None:
    @gate.purger.handler("orders")
    async def orders(subject: str) -> int:
        return None  # type: ignore[return-value]

    with pytest.raises(PurgeError, match="'orders' returned NoneType"):
        await gate.purge("acct-1", ticket="T-1", operator="alice")


async def test_dry_run_counts_and_changes_nothing(gate: AgeGate) -> None:
    data = Data()
    data.add("acct-1", 3, 1)
    data.register(gate)

    @gate.purger.handler("uncountable")
    async def uncountable(subject: str) -> int:
        return 0

    await gate.signup(ADULT, subject="acct-1")
    report = await gate.purge(
        "acct-1", ticket="T-1", operator="alice", identifiers={"email": EMAIL}, dry_run=True
    )
    assert report.state == "dry_run" and report.job_id == "" and not report.already_done
    assert report.deleted == {"orders": 3, "messages": 1}
    assert report.uncounted == ("uncountable",)
    assert report.identifiers_blocked == 1
    assert data.calls == [] and data.rows["orders"] == {"acct-1": 3}
    assert await gate.status_of("acct-1") == "allowed"
    assert not await gate.is_blocked({"email": EMAIL})
    assert await gate.purger.jobs() == []
    # A dry run after the purge says it was done, and counts what is left (nothing).
    await gate.purge("acct-1", ticket="T-1", operator="alice")
    after = await gate.purge("acct-1", ticket="T-1", operator="alice", dry_run=True)
    assert after.already_done and after.deleted == {"orders": 0, "messages": 0}


async def test_block_expires_after_its_period(keyring: Keyring) -> None:
    async with AgeGate(keys=keyring, store=MemoryStore(), identifier_block=timedelta(days=30)) as gate:
        await gate.purge(
            "acct-1", ticket="T-1", operator="a", identifiers={"email": EMAIL, "phone": "+1 555 0100"}
        )
        soon = datetime.now(UTC) + timedelta(days=29)
        later = datetime.now(UTC) + timedelta(days=31)
        with pytest.raises(UnderAgeError):
            await gate.signup(ADULT, subject="acct-2", identifiers={"phone": "15550100"}, now=soon)
        attestation = await gate.signup(ADULT, subject="acct-2", identifiers={"email": EMAIL}, now=later)
        assert attestation.outcome == "allowed"


async def test_a_zero_block_disables_blocking(keyring: Keyring) -> None:
    async with AgeGate(keys=keyring, store=MemoryStore(), identifier_block=timedelta(0)) as gate:
        report = await gate.purge("acct-1", ticket="T-1", operator="a", identifiers={"email": EMAIL})
        assert report.identifiers_blocked == 0
        assert not await gate.is_blocked({"email": EMAIL})
        assert await gate.status_of("acct-1") == "under_age"


async def test_a_repeated_purge_blocks_identifiers_the_first_did_not_know(gate: AgeGate) -> None:
    await gate.purge("acct-1", ticket="T-1", operator="a")
    assert not await gate.is_blocked({"email": EMAIL})
    report = await gate.purge("acct-1", ticket="T-1", operator="a", identifiers={"email": EMAIL})
    assert report.already_done
    assert await gate.is_blocked({"email": EMAIL})


@pytest.mark.parametrize(
    ("subject", "message"),
    [
        ("", "1 to 512"),
        (" acct-1", "spaces around it"),
        ("acct-1\n", "spaces around it"),
        ("acct\x00-1", "invisible"),
        ("x" * 513, "1 to 512"),
    ],
)
async def test_unusable_account_ids_are_refused_without_echoing_them(
    memory_gate: AgeGate, subject: str, message: str
) -> None:
    with pytest.raises(InvalidAccountId, match=message) as caught:
        await memory_gate.purge(subject, ticket="T-1", operator="a")
    assert not isinstance(caught.value, ConfigurationError)  # the caller's input, not the setup
    if subject.strip():
        assert subject.strip() not in str(caught.value)
    assert await memory_gate.purger.jobs() == []


async def test_an_app_can_declare_its_account_id_format(memory_gate: AgeGate) -> None:
    memory_gate.purger.subject_format(r"acct-\d+", "an account id such as acct-123")
    with pytest.raises(InvalidAccountId, match="does not look like an account id such as acct-123"):
        await memory_gate.purge("someone@example.org", ticket="T-1", operator="a")
    assert (await memory_gate.purge("acct-77", ticket="T-1", operator="a")).state == "done"


@pytest.mark.parametrize(
    ("ticket", "operator"),
    [
        ("T-1 for acct-12345", "alice"),
        ("T-1", "kid.player@example.org"),
        ("", "alice"),
        ("T-1", " "),
        ("T\n1", "a"),
    ],
)
async def test_ticket_and_operator_cannot_carry_personal_data(
    memory_gate: AgeGate, ticket: str, operator: str
) -> None:
    with pytest.raises(InvalidInput):
        await memory_gate.purge("acct-12345", ticket=ticket, operator=operator, identifiers={"email": EMAIL})
    assert await memory_gate.purger.jobs() == []


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(done.stdout)


def _owner(pid: int, *, started: str, namespace: str | None = None) -> str:
    """A lease owner as a purge on this host writes it."""
    namespace = lease_module.namespace() if namespace is None else namespace
    return f"{socket.gethostname()}:{pid}:{started}:{namespace}:0000"


def _all_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file())


def test_handler_names_are_checked(keyring: Keyring) -> None:
    async def f(subject: str) -> int:
        return 0

    memory_gate = AgeGate(keys=keyring, store=MemoryStore())
    memory_gate.purger.handler("orders")(f)
    for bad in ("orders", "freeze", "block_identifiers", "", "has space", "x" * 65):
        with pytest.raises(ConfigurationError):
            memory_gate.purger.handler(bad)(f)
    assert memory_gate.purger.names == ("orders",)


async def test_a_keyring_without_the_key_of_an_unfinished_job_is_refused(tmp_path: Path) -> None:
    old = Keyring.generate("old")
    url = f"sqlite:///{tmp_path}/agegate.sqlite3"
    async with AgeGate(keys=old, store=url) as gate:

        @gate.purger.handler("orders")
        async def orders(subject: str) -> int:
            raise RuntimeError("down")

        with pytest.raises(PurgeError):
            await gate.purge("acct-1", ticket="T-1", operator="a")
    # The job needs its key until it finishes: a keyring without it cannot even open the store.
    with pytest.raises(KeyringMismatch, match="'old'") as info:
        async with AgeGate(keys=Keyring.generate("new"), store=url):
            pass
    assert info.value.kids == ("old",)
    old_and_new = Keyring.from_string(f"{Keyring.generate('new').to_string()},{old.to_string()}")
    async with AgeGate(keys=old_and_new, store=url) as gate:
        statuses = {s.kid: s for s in await gate.key_status()}
        assert statuses["old"].jobs == 1 and statuses["old"].needed_until == "indefinitely"


async def test_a_lease_of_a_dead_process_is_taken_over_at_once(gate: AgeGate) -> None:
    @gate.purger.handler("orders")
    async def orders(subject: str) -> int:
        return 1

    # A purge that died (SIGKILL) after creating and claiming its job: its pid no longer exists.
    owner = _owner(_dead_pid(), started="12345")
    await _held_by(gate, owner, job_id="deadbeef", handlers=("orders",), wait=5)
    report = await gate.purge("acct-1", ticket="T-1", operator="a")
    assert report.job_id == "deadbeef" and report.state == "done" and not report.already_done


async def test_a_live_lease_is_waited_for_then_times_out(gate: AgeGate) -> None:
    # Held by this very process's parent: alive, so it must not be taken over.
    await _held_by(gate, f"{socket.gethostname()}:{os.getppid()}:beef", job_id="busy", wait=0.2)
    with pytest.raises(PurgeError, match="another process is still running purge job busy"):
        await gate.purge("acct-1", ticket="T-1", operator="a")


async def test_the_store_holds_no_account_id_or_identifier(keyring: Keyring, tmp_path: Path) -> None:
    subject, email, phone = "acct-PRIVATE-9931", "private.child@example.org", "+1 (555) 010-9931"
    async with AgeGate(keys=keyring, store=f"sqlite:///{tmp_path}/agegate.sqlite3") as gate:
        broken = True

        @gate.purger.handler("orders")
        async def orders(subject: str) -> int:
            if broken:
                raise RuntimeError(f"failed for {subject} {email}")
            return 1

        await gate.signup(ADULT, subject=subject, identifiers={"email": email})
        with pytest.raises(PurgeError) as caught:
            await gate.purge(
                subject, ticket="T-5", operator="alice", identifiers={"email": email, "phone": phone}
            )
        # Even while the job is unfinished (the account id is sealed in it), nothing is in the clear.
        written = _all_bytes(tmp_path)
        for needle in (subject, email, "5550109931", "555) 010"):
            assert needle.encode() not in written
            assert needle.encode("utf-16-le") not in written
            assert needle not in str(caught.value)
        broken = False
        (report,) = await gate.purger.resume()
        assert report.state == "done"
    written = _all_bytes(tmp_path)
    assert subject.encode() not in written and email.encode() not in written


def _shop(gate: AgeGate) -> Any:
    """A tiny app behind the middleware; the logged-in account comes from a header."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from agegate import AgeGateMiddleware

    async def checkout(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    def who(scope: Any) -> str | None:
        return dict(scope["headers"]).get(b"x-account", b"").decode() or None

    app = Starlette(routes=[Route("/checkout", checkout, methods=["POST"])])
    return AgeGateMiddleware(app, gate=gate, subject=who, secure_cookies=False)


async def test_the_middleware_blocks_the_account_while_and_after_it_is_purged(
    keyring: Keyring, tmp_path: Path
) -> None:
    import httpx

    url = f"sqlite:///{tmp_path}/agegate.sqlite3"
    async with AgeGate(keys=keyring, store=url) as gate, AgeGate(keys=keyring, store=url) as other:
        await gate.signup(ADULT, subject="acct-1")
        await gate.signup(ADULT, subject="acct-2")
        here = httpx.AsyncClient(transport=httpx.ASGITransport(app=_shop(gate)), base_url="http://shop")
        there = httpx.AsyncClient(transport=httpx.ASGITransport(app=_shop(other)), base_url="http://shop")
        async with here, there:
            headers = {"x-account": "acct-1", "accept": "application/json"}
            assert (await here.post("/checkout", headers=headers)).status_code == 200  # cached as allowed
            during: list[int] = []

            @gate.purger.handler("orders")
            async def orders(subject: str) -> int:
                during.append((await here.post("/checkout", headers=headers)).status_code)
                return 1

            await gate.purge("acct-1", ticket="T-1", operator="a")
            assert during == [403]
            for client in (here, there):
                refused = await client.post("/checkout", headers=headers)
                assert refused.status_code == 403 and refused.json() == {"error": "age_restricted"}
                assert (
                    await client.post("/checkout", headers={**headers, "x-account": "acct-2"})
                ).status_code == 200


async def test_resume_refuses_a_sealed_id_swapped_between_jobs(keyring: Keyring, tmp_path: Path) -> None:
    import sqlite3

    url = f"sqlite:///{tmp_path}/agegate.sqlite3"
    calls: list[str] = []
    async with AgeGate(keys=keyring, store=url) as gate:

        @gate.purger.handler("orders")
        async def orders(subject: str) -> int:
            calls.append(subject)
            raise RuntimeError("down")

        for subject in ("acct-1", "acct-2"):
            with pytest.raises(PurgeError):
                await gate.purge(subject, ticket="T-" + subject[-1], operator="a")
    # Someone with write access to the database swaps the sealed account ids of the two jobs.
    conn = sqlite3.connect(tmp_path / "agegate.sqlite3")
    try:
        rows = conn.execute("SELECT job_id, sealed_subject FROM purge_jobs ORDER BY created_at").fetchall()
        (a, sealed_a), (b, sealed_b) = rows
        with conn:
            conn.execute("UPDATE purge_jobs SET sealed_subject = ? WHERE job_id = ?", (sealed_b, a))
            conn.execute("UPDATE purge_jobs SET sealed_subject = ? WHERE job_id = ?", (sealed_a, b))
    finally:
        conn.close()
    calls.clear()
    async with AgeGate(keys=keyring, store=url) as gate:

        @gate.purger.handler("orders")
        async def orders_again(subject: str) -> int:
            calls.append(subject)
            return 0

        reports = await gate.purger.resume()
    assert [r.state for r in reports] == ["failed", "failed"]
    assert all("does not match its sealed account id" in (r.error or "") for r in reports)
    assert calls == []


class FlakyRenewals(MemoryStore):
    """Every lease claim after the first fails, as a locked or unreachable database would."""

    def __init__(self) -> None:
        super().__init__()
        self.claims = 0

    async def claim_job(self, *args: Any, **kwargs: Any) -> bool:
        self.claims += 1
        if self.claims >= 2:
            raise RuntimeError("database is locked")
        return await super().claim_job(*args, **kwargs)


async def test_failed_lease_renewals_do_not_leave_the_purge_running(keyring: Keyring) -> None:
    store = FlakyRenewals()
    async with AgeGate(keys=keyring, store=store) as gate:
        gate.purger.lease = timedelta(seconds=0.15)

        @gate.purger.handler("slow")
        async def slow(subject: str) -> int:
            await asyncio.sleep(0.3)
            return 1

        report = await gate.purge("acct-1", ticket="T-1", operator="a")
        assert report.state == "done" and report.deleted == {"slow": 1}
        assert store.claims >= 3  # the heartbeat kept trying
        (job,) = await gate.purger.jobs()
        assert (job.state, job.lease_owner) == ("done", None)


async def test_a_handler_blocking_the_event_loop_is_logged(
    memory_gate: AgeGate, caplog: pytest.LogCaptureFixture
) -> None:
    memory_gate.purger.lease = timedelta(seconds=0.2)

    @memory_gate.purger.handler("blocking")
    async def blocking(subject: str) -> int:
        time.sleep(0.4)  # noqa: ASYNC251 - a synchronous driver call: what handlers must not do
        await asyncio.sleep(0.1)
        return 1

    with caplog.at_level(logging.WARNING, logger="agegate.purge"):
        await memory_gate.purge("acct-1", ticket="T-1", operator="a")
    assert any("must not block the event loop" in r.getMessage() for r in caplog.records)
    assert all("acct-1" not in r.getMessage() for r in caplog.records)


async def _held_by(
    gate: AgeGate, owner: str, *, job_id: str = "held", handlers: tuple[str, ...] = (), wait: float = 0.3
) -> None:
    """A running job for acct-1 whose lease ``owner`` holds, as a purge leaves it when it dies."""
    from agegate.stores import PurgeJob

    store = await gate.store()
    now = datetime.now(UTC)
    await store.create_job(
        PurgeJob(
            job_id=job_id,
            subject_hash=gate.subject_hashes("acct-1")[0],
            ticket="T-1",
            operator="a",
            handlers=handlers,
            state="running",
            created_at=now,
            updated_at=now,
            sealed_subject=gate.purger._journal().seal_bytes(b"acct-1"),
        )
    )
    assert await store.claim_job(job_id, owner=owner, until=now + timedelta(hours=1), now=now)
    gate.purger.wait_timeout = timedelta(seconds=wait)
    gate.purger.poll_interval = 0.01


@pytest.mark.skipif(not lease_module.namespace(), reason="needs /proc")
@pytest.mark.parametrize(
    "kind", ["other namespace", "older format", "unknown start"], ids=lambda k: k.replace(" ", "-")
)
async def test_a_missing_pid_of_another_namespace_is_not_taken_as_dead(gate: AgeGate, kind: str) -> None:
    # Same host name, but the pid is not visible from here (another container of the pod, or a
    # lease written by an older version): the holder may be alive, so its lease must expire first.
    pid = _dead_pid()
    owner = {
        "other namespace": _owner(pid, started="12345", namespace="0123456789abcdef"),
        "older format": f"{socket.gethostname()}:{pid}:beef",
        "unknown start": _owner(pid, started=""),
    }[kind]
    await _held_by(gate, owner)
    with pytest.raises(PurgeError, match="another process is still running purge job held"):
        await gate.purge("acct-1", ticket="T-1", operator="a")


@pytest.mark.skipif(not lease_module.namespace(), reason="needs /proc")
async def test_a_reused_pid_is_taken_as_dead(gate: AgeGate) -> None:
    # The holder's pid now belongs to another process (our parent), started at another time.
    parent = os.getppid()
    started = str(int(lease_module.process_start(parent)) + 1)
    await _held_by(gate, _owner(parent, started=started))
    report = await gate.purge("acct-1", ticket="T-1", operator="a")
    assert report.job_id == "held" and report.state == "done"


@pytest.mark.skipif(not lease_module.namespace(), reason="needs /proc")
async def test_a_live_process_with_its_own_start_time_is_waited_for(gate: AgeGate) -> None:
    parent = os.getppid()
    await _held_by(gate, _owner(parent, started=lease_module.process_start(parent)))
    with pytest.raises(PurgeError, match="another process is still running"):
        await gate.purge("acct-1", ticket="T-1", operator="a")


async def test_a_purge_cancelled_earlier_in_this_process_is_taken_over(memory_gate: AgeGate) -> None:
    memory_gate.purger.wait_timeout = timedelta(seconds=5)
    started = asyncio.Event()
    calls = 0

    @memory_gate.purger.handler("slow")
    async def slow(subject: str) -> int:
        nonlocal calls
        calls += 1
        started.set()
        if calls == 1:
            await asyncio.sleep(100)
        return 1

    first = asyncio.create_task(memory_gate.purge("acct-1", ticket="T-1", operator="a"))
    await started.wait()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    (job,) = await memory_gate.purger.jobs()
    assert job.state == "running" and job.lease_owner is not None  # its lease is still live
    report = await memory_gate.purge("acct-1", ticket="T-1", operator="a")
    assert report.state == "done" and not report.already_done and calls == 2


async def test_identifier_kinds_are_checked_and_normalised(memory_gate: AgeGate) -> None:
    for identifiers, message in (
        ({"mail": EMAIL}, "unknown identifier kind 'mail'"),
        ({EMAIL: "email"}, "unknown identifier kind: use one of email, phone, username"),
        ({"phone": "call me"}, "the phone identifier is empty"),
        ({"email": "   "}, "the email identifier is empty"),
    ):
        with pytest.raises(InvalidInput, match=message) as caught:
            await memory_gate.purge("acct-1", ticket="T-1", operator="a", identifiers=identifiers)
        assert EMAIL.lower() not in str(caught.value).lower() and "call me" not in str(caught.value)
    assert await memory_gate.purger.jobs() == []
    # Kind names are matched without regard to case or spaces, as signup hashes them.
    report = await memory_gate.purge(
        "acct-1", ticket="T-1", operator="a", identifiers={"Phone ": "+1 555 0100", " EMAIL": EMAIL}
    )
    assert report.identifiers_blocked == 2
    for identifiers in ({"phone": "15550100"}, {"email": EMAIL.lower()}):
        with pytest.raises(UnderAgeError):
            await memory_gate.signup(ADULT, subject="acct-2", identifiers=identifiers)


async def test_an_app_may_declare_its_identifier_kinds(memory_gate: AgeGate) -> None:
    memory_gate.purger.identifier_kinds = ("email", "gamertag")
    report = await memory_gate.purge("acct-1", ticket="T-1", operator="a", identifiers={"gamertag": "Kid99"})
    assert report.identifiers_blocked == 1
    with pytest.raises(InvalidInput, match="use one of email, gamertag"):
        await memory_gate.purge("acct-2", ticket="T-2", operator="a", identifiers={"phone": "555 0100"})


async def test_a_receipt_names_the_policy_of_the_purge_after_a_policy_change(
    keyring: Keyring, tmp_path: Path
) -> None:
    from agegate import AgePolicy

    url = f"sqlite:///{tmp_path}/agegate.sqlite3"
    async with AgeGate(keys=keyring, store=url) as gate:
        report = await gate.purge("acct-1", ticket="T-1", operator="a")
        job = await gate.purger.find(job_id=report.job_id)
        assert job is not None
        original = gate.purger.receipt(job)
    async with AgeGate(keys=keyring, store=url, policy=AgePolicy(min_age=16)) as gate:
        job = await gate.purger.find(job_id=report.job_id)
        assert job is not None
        assert purge_module.job_policy(job) == "min-age-13"
        assert gate.purger.receipt(job) == original
        assert '"policy": "min-age-13"' in original
        assert "policy:" not in str(gate.purger._report(job, already_done=True).deleted)
    # After a key rotation that keeps the old key listed, the receipt is still the same document;
    # once the old key is gone, it is signed with the active key and verifies under it.
    newer = Keyring.generate("newer")
    rotated = Keyring.from_string(f"{newer.to_string()},{keyring.to_string()}")
    assert rotated.active_kid == "newer"
    async with AgeGate(keys=rotated, store=url) as gate:
        job = await gate.purger.find(job_id=report.job_id)
        assert job is not None and gate.purger.receipt(job) == original
        # The account seen again moves its frozen record to the new key: the old one can go.
        assert await gate.status_of("acct-1") == "under_age"
    async with AgeGate(keys=newer, store=url) as gate:
        job = await gate.purger.find(job_id=report.job_id)
        assert job is not None
        reissued = gate.purger.receipt(job)
        assert reissued != original and verify_receipt(reissued, newer)["kid"] == "newer"


def test_the_time_limit_stops_a_purge_that_would_wait_forever(keyring: Keyring) -> None:
    # The guard sync tests run under: a lease that is never released fails the test.
    async def main() -> None:
        async with AgeGate(keys=keyring, store=MemoryStore()) as gate:
            await _held_by(gate, f"{socket.gethostname()}:{os.getppid()}:beef")
            gate.purger.wait_timeout = timedelta(days=1)
            await gate.purge("acct-1", ticket="T-1", operator="a")

    with pytest.raises(TimeoutError, match=r"ran longer than 0\.3 s"), purge_app.time_limit(0.3):
        asyncio.run(main())


def test_sync_tests_here_run_under_the_modules_time_limit() -> None:
    # conftest's time_limit mark: an alarm is set for this test, no longer than the mark's 60 s.
    remaining, _ = signal.getitimer(signal.ITIMER_REAL)
    assert 0 < remaining <= 60


async def test_a_handler_added_after_the_purge_finished_runs_in_the_same_job(
    keyring: Keyring, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/agegate.sqlite3"
    async with AgeGate(keys=keyring, store=url) as gate:

        @gate.purger.handler("orders")
        async def orders(subject: str) -> int:
            return 2

        first = await gate.purge("acct-1", ticket="T-1", operator="a")
        assert first.not_run == ()
    async with AgeGate(keys=keyring, store=url) as gate:
        calls: list[str] = []

        @gate.purger.handler("orders")
        async def orders_again(subject: str) -> int:
            return 0

        @gate.purger.handler("chat_logs")
        async def chat(subject: str) -> int:
            calls.append(subject)
            return 7

        dry = await gate.purge("acct-1", ticket="T-2", operator="a", dry_run=True)
        assert dry.not_run == ("chat_logs",) and calls == []
        again = await gate.purge("acct-1", ticket="T-2", operator="a")
        # Only the new handler ran, in the first purge's job: its finished steps stay done.
        assert calls == ["acct-1"] and not again.already_done and again.not_run == ()
        assert again.job_id == first.job_id and again.state == "done"
        assert again.deleted == {"orders": 2, "chat_logs": 7}
        assert again.ticket == "T-1"  # the job keeps the ticket it was opened for
        job = await (await gate.store()).get_job(first.job_id)
        assert job is not None and job.sealed_subject is None  # wiped again when done
        third = await gate.purge("acct-1", ticket="T-2", operator="a")
        assert third.already_done and calls == ["acct-1"]
        other = await gate.purge("acct-2", ticket="T-3", operator="a")
        assert other.not_run == () and other.deleted == {"orders": 0, "chat_logs": 7}
