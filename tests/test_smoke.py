from datetime import UTC, datetime

import pytest

from agegate import AgeGate


@pytest.mark.anyio
async def test_signup_then_status(memory_gate: AgeGate) -> None:
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    await memory_gate.signup({"birth_date": "1990-01-01"}, subject="acct-1", now=now)
    assert await memory_gate.status_of("acct-1") == "allowed"
    assert await memory_gate.status_of("acct-2") == "unknown"
