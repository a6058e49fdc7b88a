"""Shared fixtures. Async tests use anyio's pytest plugin (``@pytest.mark.anyio``) on asyncio."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agegate import AgeGate, Keyring
from agegate.stores import MemoryStore


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate("test")


@pytest.fixture
async def memory_gate(keyring: Keyring) -> AsyncIterator[AgeGate]:
    gate = AgeGate(keys=keyring, store=MemoryStore())
    async with gate:
        yield gate
