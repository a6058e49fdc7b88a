"""Store outages: a real PostgreSQL behind a TCP proxy that the test cuts and restores.

While the store cannot answer, every call that needs it raises :class:`StoreUnavailable` within
the gate's ``store_timeout`` (2 s by default), nothing is half-written, and service returns
within seconds of the server's return (no 30 s pool wait, no long reconnection back-off).
Times are bounded loosely (hang guards), never measured as performance.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from tcp_proxy import TCPProxy
from test_postgres_store import POSTGRES_URL, schema, until, url

from agegate import AgeGate, Keyring, StoreUnavailable
from agegate.stores.postgres import PostgresStore

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]
__all__ = ["schema", "url"]  # fixtures, used by name

ADULT = {"birth_date": "1990-01-01"}
#: A hang guard: far above the 2 s a call is allowed, far below a 30 s pool wait.
GUARD = 5.0


@pytest.fixture
def proxy() -> Iterator[TCPProxy]:
    assert POSTGRES_URL
    parts = urlsplit(POSTGRES_URL)
    with TCPProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        yield proxy


def through(url: str, proxy: TCPProxy) -> str:
    """``url`` with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    return parts._replace(
        netloc=f"{user}@127.0.0.1:{proxy.port}" if user else f"127.0.0.1:{proxy.port}"
    ).geturl()


@pytest.fixture
def gate_store(url: str, proxy: TCPProxy) -> str:
    return through(url, proxy)


async def refused_in_time(call: Callable[[], Awaitable[object]]) -> float:
    """Seconds ``call`` took to raise :class:`StoreUnavailable`; fails on anything else and on a
    call still waiting after :data:`GUARD` seconds."""
    start = time.monotonic()
    with pytest.raises(StoreUnavailable):
        async with asyncio.timeout(GUARD):
            await call()
    return time.monotonic() - start


async def answers(gate: AgeGate, subject: str) -> bool:
    try:
        return await gate.status_of(subject) == "allowed"
    except StoreUnavailable:
        return False


@pytest.mark.parametrize("hang", [True, False], ids=["hung", "down"])
async def test_an_outage_is_refused_in_time_and_service_comes_back(
    gate: AgeGate, proxy: TCPProxy, hang: bool
) -> None:
    await gate.signup(ADULT, subject="alice")
    assert await gate.cached_status("alice") == "allowed"

    proxy.cut(hang=hang)
    gate.forget_status()  # as when the cached answer has expired
    await refused_in_time(lambda: gate.cached_status("alice"))
    await refused_in_time(lambda: gate.status_of("alice"))
    await refused_in_time(lambda: gate.signup(ADULT, subject="bob"))
    await refused_in_time(lambda: gate.record("carol", "under_age"))
    await refused_in_time(lambda: gate.forget_account("alice"))

    proxy.restore()
    await until(lambda: answers(gate, "alice"), within=GUARD)
    # Nothing the outage refused was written.
    assert await gate.status_of("bob") == "unknown"
    assert await gate.status_of("carol") == "unknown"
    await gate.signup(ADULT, subject="bob")
    assert await gate.cached_status("bob") == "allowed"


async def test_connections_that_stop_answering_are_cut_in_time(gate: AgeGate, proxy: TCPProxy) -> None:
    """Nothing is closed, nothing comes back: the pooled connections, the check before lending
    one, and the LISTEN connection all wait on a silent peer until the store cuts them."""
    await gate.signup(ADULT, subject="alice")
    proxy.freeze()
    gate.forget_status()
    await refused_in_time(lambda: gate.status_of("alice"))
    await refused_in_time(lambda: gate.signup(ADULT, subject="bob"))
    await asyncio.gather(*(refused_in_time(lambda: gate.cached_status("alice")) for _ in range(5)))
    proxy.restore()
    await until(lambda: answers(gate, "alice"), within=GUARD)
    assert await gate.status_of("bob") == "unknown"


async def test_the_store_alone_bounds_its_calls(url: str, proxy: TCPProxy) -> None:
    """Used without a gate (as a purge's journal is), the PostgreSQL store still answers each
    call within its own timeout: a connection that stops answering is cut, not waited on."""
    store = PostgresStore(through(url, proxy), timeout=1.0)
    await store.open()
    try:
        assert await store.get_attestation([b"x" * 32]) is None
        proxy.freeze()
        await refused_in_time(lambda: store.get_attestation([b"x" * 32]))
        await refused_in_time(lambda: store.delete_attestations([b"x" * 32]))
        proxy.restore()
        await until(lambda: store_answers(store), within=GUARD)
    finally:
        await store.close()


async def test_opening_on_a_connection_that_stops_answering_is_cut(
    url: str, proxy: TCPProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agegate.stores.postgres import lifecycle

    monkeypatch.setattr(lifecycle, "OPEN_TIMEOUT", 1.0)
    migrate = PostgresStore._migrate

    async def frozen_first(self: PostgresStore, conn: Any) -> None:
        proxy.freeze()  # connected, then nothing more comes back
        await migrate(self, conn)

    monkeypatch.setattr(PostgresStore, "_migrate", frozen_first)
    store = PostgresStore(through(url, proxy))
    with pytest.raises(StoreUnavailable, match=r"opening took over 1 seconds"):
        async with asyncio.timeout(GUARD):
            await store.open()
    await store.close()


async def store_answers(store: PostgresStore) -> bool:
    try:
        return await store.get_attestation([b"x" * 32]) is None
    except StoreUnavailable:
        return False


async def test_a_long_outage_does_not_slow_the_return(gate: AgeGate, proxy: TCPProxy) -> None:
    """The pool's reconnection back-off grows through an outage (1, 2, 4, 8 s…); the first calls
    after the server is back must not wait for it."""
    await gate.signup(ADULT, subject="alice")
    proxy.cut(hang=False)
    ends = time.monotonic() + 8
    while time.monotonic() < ends:
        await refused_in_time(lambda: gate.status_of("alice"))
        await asyncio.sleep(0.2)
    proxy.restore()
    await until(lambda: answers(gate, "alice"), within=GUARD)


async def test_a_hang_then_a_return_then_a_hang_again(gate: AgeGate, proxy: TCPProxy) -> None:
    """Connections made during one outage do not poison the pool for the next."""
    await gate.signup(ADULT, subject="alice")
    for _ in range(2):
        proxy.cut(hang=True)
        gate.forget_status()
        await asyncio.gather(*(refused_in_time(lambda: gate.cached_status("alice")) for _ in range(5)))
        proxy.restore()
        await until(lambda: answers(gate, "alice"), within=GUARD)


async def test_a_gate_opened_during_an_outage_refuses_in_time_then_opens(url: str, proxy: TCPProxy) -> None:
    proxy.cut(hang=True)
    gate = AgeGate(keys=Keyring.generate("outage"), store=through(url, proxy), store_timeout=1.0)
    try:
        await refused_in_time(lambda: gate.status_of("alice"))
        proxy.restore()
        await until(lambda: gate_answers(gate), within=GUARD * 2)
    finally:
        await gate.aclose()


async def gate_answers(gate: AgeGate) -> bool:
    try:
        return await gate.status_of("alice") == "unknown"
    except StoreUnavailable:
        return False
