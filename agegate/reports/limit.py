"""The report endpoint's rate limit, which stores no IP address.

A per-IP limit would mean keeping the addresses of people reporting a child (a log of who
reported whom, by address) and still fails against anyone with many addresses. Instead:

- one **token bucket per process** for all reports: a flood slows every reporter to the
  refill rate (they are asked to try again shortly, with ``Retry-After``) but cannot fill the
  store or the support queue faster than that;
- a small bucket **per reported account**, keyed by HMAC(report key, the account as typed,
  case-folded) kept in process memory only: the same account cannot be reported over and over.
  This says nothing about whether the account exists (it is never looked up).

Both live in memory; several processes each have their own. An app that wants per-client
limits puts them in its proxy, whose logs it already governs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ConfigurationError

__all__ = ["ReportLimit"]

#: Most reported accounts whose buckets are kept at once (oldest dropped first).
_MAX_ACCOUNTS = 10_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class ReportLimit:
    """At most ``burst`` reports at once and ``per_hour`` an hour on average, for this
    process; and at most ``per_account`` an hour about one account. ``clock`` (monotonic
    seconds) is for tests."""

    def __init__(
        self,
        *,
        burst: int = 30,
        per_hour: int = 120,
        per_account: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value in (("burst", burst), ("per_hour", per_hour), ("per_account", per_account)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be a whole number of at least 1")
        self.burst, self.per_hour, self.per_account = burst, per_hour, per_account
        self._clock = clock
        self._all = _Bucket(float(burst), clock())
        self._accounts: dict[bytes, _Bucket] = {}

    def take(self, account_key: bytes) -> int | None:
        """Spend one report for the account whose key is ``account_key``; ``None`` when
        allowed, else how many seconds to wait before trying again (nothing spent)."""
        now = self._clock()
        everyone = self._refilled(self._all, now, self.burst, self.per_hour)
        account = self._accounts.get(account_key)
        mine = self._refilled(
            account or _Bucket(float(self.per_account), now), now, self.per_account, self.per_account
        )
        if everyone.tokens < 1 or mine.tokens < 1:
            short = max(
                (1 - everyone.tokens) * 3600 / self.per_hour if everyone.tokens < 1 else 0,
                (1 - mine.tokens) * 3600 / self.per_account if mine.tokens < 1 else 0,
            )
            return max(1, int(short + 0.999))
        everyone.tokens -= 1
        mine.tokens -= 1
        if account is None:
            if len(self._accounts) >= _MAX_ACCOUNTS:
                del self._accounts[next(iter(self._accounts))]
            self._accounts[account_key] = mine
        return None

    @staticmethod
    def _refilled(bucket: _Bucket, now: float, size: int, per_hour: int) -> _Bucket:
        bucket.tokens = min(float(size), bucket.tokens + (now - bucket.at) * per_hour / 3600)
        bucket.at = now
        return bucket
