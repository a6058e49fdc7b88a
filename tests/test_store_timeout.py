"""The gate's ``store_timeout``: a store that does not answer in time is StoreUnavailable.

A store that hangs is played by a memory store whose calls wait on an event the test sets; the
bound under test is short, and the test's own guard (``asyncio.timeout``) only stops a hang.
"""

from __future__ import annotations

import asyncio
import pickle
from typing import Any

import pytest

from agegate import AgeGate, ConfigurationError, Keyring, StoreError, StoreUnavailable
from agegate.stores import MemoryStore

pytestmark = pytest.mark.anyio
ADULT = {"birth_date": "1990-01-01"}


class StallingStore(MemoryStore):
    """A memory store whose calls wait while ``stalled`` is set, as a hung server's would;
    ``failing`` makes them raise that error instead."""

    def __init__(self) -> None:
        super().__init__()
        self.stalled = False
        self.failing: BaseException | None = None
        self.released = asyncio.Event()

    async def _gate(self) -> None:
        if self.failing is not None:
            raise self.failing
        if self.stalled:
            await self.released.wait()

    async def get_attestation(self, subject_hashes: Any) -> Any:
        await self._gate()
        return await super().get_attestation(subject_hashes)

    async def is_blocked(self, identifier_hashes: Any, *, now: Any) -> bool:
        await self._gate()
        return await super().is_blocked(identifier_hashes, now=now)

    async def put_attestation(self, record: Any, *, replaces: Any = ()) -> None:
        await self._gate()
        await super().put_attestation(record, replaces=replaces)


@pytest.fixture
async def stalling() -> StallingStore:
    return StallingStore()


@pytest.fixture
def gate_store(stalling: StallingStore) -> StallingStore:
    return stalling


@pytest.fixture
def gate_options() -> dict[str, Any]:
    return {"store_timeout": 0.05}


async def test_a_stalled_store_is_unavailable_not_a_hang(gate: AgeGate, stalling: StallingStore) -> None:
    await gate.record("alice", "allowed")
    stalling.stalled = True
    gate.forget_status()
    async with asyncio.timeout(10):  # a hang guard
        with pytest.raises(StoreUnavailable, match=r"did not answer within 0\.05 seconds"):
            await gate.cached_status("alice")
        with pytest.raises(StoreUnavailable):
            await gate.status_of("alice")
        with pytest.raises(StoreUnavailable):
            await gate.signup(ADULT, subject="bob", identifiers={"email": "bob@example.com"})
        with pytest.raises(StoreUnavailable):
            await gate.record("carol", "under_age")
    assert gate._abandoned  # the calls still waiting were left behind, not awaited
    stalling.stalled = False
    stalling.released.set()
    assert await gate.cached_status("alice") == "allowed"
    await asyncio.sleep(0)  # the abandoned calls were cancelled: none of them writes now
    assert await gate.status_of("bob") == "unknown"
    assert await gate.status_of("carol") == "unknown"
    assert not gate._abandoned


async def test_a_store_failing_with_an_os_error_is_unavailable(
    gate: AgeGate, stalling: StallingStore
) -> None:
    stalling.failing = ConnectionResetError("reset by peer")
    with pytest.raises(StoreUnavailable, match="ConnectionResetError") as caught:
        await gate.status_of("alice")
    assert "reset by peer" not in str(caught.value)  # a custom store's text may hold anything
    stalling.failing = StoreError("damaged")
    with pytest.raises(StoreError, match="damaged") as other:
        await gate.status_of("alice")
    assert not isinstance(other.value, StoreUnavailable)


async def test_a_caller_that_gives_up_does_not_leave_the_call_running(
    gate: AgeGate, stalling: StallingStore
) -> None:
    gate.store_timeout = 30.0
    stalling.stalled = True
    waiting = asyncio.ensure_future(gate.status_of("alice"))
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await asyncio.sleep(0)
    assert not gate._abandoned


def test_store_unavailable_is_a_store_error_with_a_retry_hint() -> None:
    error = StoreUnavailable()
    assert isinstance(error, StoreError)
    assert error.retry_after > 0
    copy = pickle.loads(pickle.dumps(StoreUnavailable("down")))
    assert (type(copy), str(copy), copy.retry_after) == (StoreUnavailable, "down", error.retry_after)


@pytest.mark.parametrize("bad", [0, -1, 301, True, "2", None, float("nan")])
def test_store_timeout_must_be_a_sensible_number(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="store_timeout"):
        AgeGate(keys=Keyring.generate("t"), store="memory://", store_timeout=bad)


def test_a_store_made_from_a_url_gets_the_gates_timeout() -> None:
    pytest.importorskip("psycopg")
    gate = AgeGate(keys=Keyring.generate("t"), store="postgresql://u@127.0.0.1/db", store_timeout=0.5)
    assert gate._store.timeout == 0.5  # type: ignore[attr-defined]
    assert AgeGate(keys=Keyring.generate("t"), store="postgresql://u@127.0.0.1/db")._store.timeout == 2.0  # type: ignore[attr-defined]
