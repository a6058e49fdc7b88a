"""The middleware owns the lifespan: the gate's store opens at startup and closes at shutdown,
once, whether the app takes part in the lifespan, refuses it, or opens the gate itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from starlette.applications import Starlette

from agegate import AgeGate, AgeGateMiddleware, Keyring, StoreUnavailable
from agegate.errors import StoreError
from agegate.stores import MemoryStore

pytestmark = pytest.mark.anyio


class CountingStore(MemoryStore):
    def __init__(self, fail: BaseException | None = None) -> None:
        super().__init__()
        self.events: list[str] = []
        self.fail = fail

    async def open(self) -> None:
        self.events.append("open")
        if self.fail is not None:
            raise self.fail
        await super().open()

    async def close(self) -> None:
        self.events.append("close")
        await super().close()


async def lifespan(app: Any) -> list[str]:
    """Drive one lifespan through ``app`` as a server does; the messages it answered."""
    to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    answers: list[str] = []
    answered = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        answers.append(message["type"])
        answered.set()

    await to_app.put({"type": "lifespan.startup"})
    task = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}}, to_app.get, send))
    waiter = asyncio.ensure_future(answered.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if answers == ["lifespan.startup.complete"]:
        await to_app.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(task, 10)
    return answers


def gated(app: Any, store: CountingStore) -> tuple[AgeGateMiddleware, AgeGate]:
    gate = AgeGate(keys=Keyring.generate(), store=store)
    return AgeGateMiddleware(app, gate=gate), gate


async def test_an_app_that_refuses_lifespan_still_gets_the_store_opened_and_closed() -> None:
    async def django_like(scope: Any, receive: Any, send: Any) -> None:
        raise ValueError("Django can only handle ASGI/HTTP connections, not lifespan.")

    store = CountingStore()
    app, _ = gated(django_like, store)
    assert await lifespan(app) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert store.events == ["open", "close"]


async def test_an_app_that_returns_at_once_is_treated_as_refusing() -> None:
    async def silent(scope: Any, receive: Any, send: Any) -> None:
        return None

    store = CountingStore()
    app, _ = gated(silent, store)
    assert await lifespan(app) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert store.events == ["open", "close"]


async def test_an_app_that_also_opens_the_gate_does_not_open_it_twice() -> None:
    seen: list[str] = []
    store = CountingStore()

    @asynccontextmanager
    async def own(app: Starlette) -> AsyncIterator[None]:
        async with gate:
            seen.append("app started")
            yield
        seen.append("app stopped")

    app, gate = gated(Starlette(lifespan=own), store)
    assert await lifespan(app) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert store.events == ["open", "close"] and seen == ["app started", "app stopped"]


async def test_an_app_whose_startup_fails_fails_the_startup_and_closes_the_store() -> None:
    @asynccontextmanager
    async def broken(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("no database")
        yield  # pragma: no cover

    store = CountingStore()
    app, _ = gated(Starlette(lifespan=broken), store)
    assert await lifespan(app) == ["lifespan.startup.failed"]
    assert store.events == ["open", "close"]


async def test_a_store_that_cannot_be_used_fails_the_startup() -> None:
    store = CountingStore(fail=StoreError("the schema is from a newer agegate"))
    app, _ = gated(Starlette(), store)
    assert await lifespan(app) == ["lifespan.startup.failed"]


async def test_a_store_that_is_down_at_startup_does_not_stop_the_app() -> None:
    # Reads work and requests that need the store get 503 until it is back.
    store = CountingStore(fail=StoreUnavailable("down"))
    app, _ = gated(Starlette(), store)
    assert await lifespan(app) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
