"""The gate's memory of opened cookie tokens: bounded however many browsers come, without a
cliff (a browser that keeps coming back is never forgotten), and never trusted for a token
that did not open."""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

from agegate import AgeGate, AgePolicy, Keyring
from agegate.asgi.cookie import _OPENED_TOKENS, UNDER_AGE, GateCookie
from agegate.decisions import Decision


class CountingSealer:
    """The gate's sealer, counting the tokens it is asked to open."""

    def __init__(self, sealer: Any) -> None:
        self.sealer = sealer
        self.opened = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.sealer, name)
        if not name.startswith("open"):
            return method

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.opened += 1
            return method(*args, **kwargs)

        return counted


def setup() -> tuple[AgeGate, GateCookie, CountingSealer]:
    gate = AgeGate(keys=Keyring.generate("memo"), store="memory://")
    cookie = GateCookie(gate, secure=True)
    counting = CountingSealer(gate.sealer)
    cookie._sealer = counting  # type: ignore[assignment]
    return gate, cookie, counting


def header(gate: AgeGate, cookie: GateCookie, outcome: Any = "allowed", *, now: int) -> str:
    token = gate.sealer.seal(outcome, gate.policy.name, issued_at=now, expires_at=now + 3600)
    return f"{cookie.name}={token}"


def remembered(cookie: GateCookie) -> int:
    return sum(len(vars_) for vars_ in (cookie._recent, cookie._older))


def test_memory_stays_bounded_with_100k_distinct_cookies() -> None:
    gate, cookie, counting = setup()
    now = int(time.time())
    allowed = Decision.of("allowed", gate.policy.name)
    headers = [header(gate, cookie, now=now) for _ in range(100_000)]
    tracemalloc.start()
    try:
        for value in headers[:10_000]:
            assert cookie.result(value) == allowed
        settled, _ = tracemalloc.get_traced_memory()
        for value in headers[10_000:]:
            assert cookie.result(value) == allowed
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert counting.opened == 100_000  # each one opened once: none served from memory unopened
    assert remembered(cookie) <= _OPENED_TOKENS
    # 90,000 more distinct cookies (about 10 MB of entries if they were all kept) leave the
    # memory where 10,000 had put it.
    assert after - settled < 256 * 1024


def test_a_returning_browser_is_never_forgotten() -> None:
    """The old memory emptied itself when full: every browser's next request opened its token
    again. Now a token seen at least once while the memory takes in half its size in new ones
    stays remembered, however many other browsers come."""
    gate, cookie, counting = setup()
    now = int(time.time())
    regular = header(gate, cookie, now=now)
    child = header(gate, cookie, "under_age", now=now)
    assert cookie.result(regular) is not None
    assert cookie.result(child) is UNDER_AGE
    visitors = [header(gate, cookie, now=now) for _ in range(5 * _OPENED_TOKENS)]
    for start in range(0, len(visitors), 500):
        for value in visitors[start : start + 500]:
            cookie.result(value)
        before = counting.opened
        assert cookie.result(regular) is not None
        assert cookie.result(child) is UNDER_AGE
        assert counting.opened == before  # answered from memory
    assert remembered(cookie) <= _OPENED_TOKENS


def test_an_expired_token_is_opened_again_and_refused() -> None:
    gate, cookie, counting = setup()
    now = int(time.time())
    token = gate.sealer.seal("allowed", gate.policy.name, issued_at=now - 10, expires_at=now + 1)
    value = f"{cookie.name}={token}"
    assert cookie._open(token, now) is not None
    assert cookie._open(token, now + 1) is None  # expired: not served from memory
    assert counting.opened == 2
    assert cookie.result(value + "x") is None  # a token that does not open is never remembered
    assert token + "x" not in cookie._recent and token + "x" not in cookie._older


def test_a_remembered_token_is_weighed_against_each_requests_policy() -> None:
    """The memory holds what a token says (its policy's age, its verified flag); the request's
    policy is compared with it afterwards, so an answer remembered under a lenient region never
    counts under a stricter one, and a verified answer stays verified from memory."""
    gate, cookie, counting = setup()
    now = int(time.time())
    lenient = AgePolicy(min_age=13, name="us", version="t1")
    strict = AgePolicy(min_age=16, name="de", version="t1")
    token = gate.sealer.seal("allowed", lenient.label, issued_at=now, expires_at=now + 3600, verified=True)
    value = f"{cookie.name}={token}"
    first = cookie.result(value, lenient)
    assert first is not None and first.allowed and first.verified and first.version == "t1"
    assert cookie.result(value, strict) is None  # from memory, and still weighed
    assert cookie.result(value, lenient) == first
    typed = gate.sealer.seal("allowed", strict.label, issued_at=now, expires_at=now + 3600)
    stricter = cookie.result(f"{cookie.name}={typed}", lenient)  # a stricter answer counts here
    assert stricter is not None and stricter.allowed and not stricter.verified
    assert cookie.result(f"{cookie.name}={typed}", strict) == stricter
    assert counting.opened == 2  # each token opened once
