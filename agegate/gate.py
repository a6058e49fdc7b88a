"""AgeGate: the screen, the signup hook, account status and purges, over one store.

The class is built in layers, one concept a module: :mod:`agegate.gate_store` (the keyring and
the store), :mod:`agegate.gate_screen` (the screen), :mod:`agegate.gate_status` (attestations,
status and purges) and :mod:`agegate.gate_signup` (the signup entry points); this module holds
its configuration and construction, and the age signals.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .birthdate import DATE_ORDERS, DateOrder
from .decisions import Attestation, Decision
from .errors import ConfigurationError
from .gate_signup import _KINDS as _KINDS
from .gate_signup import GateSignup
from .gate_status import Status
from .gate_store import STORE_TIMEOUT, normalise_identifier
from .keys import Keyring
from .policy import AgePolicy
from .regions import PolicyTable, Standing
from .stores import Store

if TYPE_CHECKING:
    from .knowledge import ActualKnowledge
    from .purge import Purger
    from .reports import Reports
    from .signals import AgeSignal

__all__ = ["STORE_TIMEOUT", "AgeGate", "Status", "normalise_identifier"]


class AgeGate(GateSignup):
    """The age screen and everything built on it, for one app.

    ``keys`` holds the secret keys; ``store`` is a store URL (``sqlite:///path``, ``memory://``,
    ``postgresql://…``) or a store object; ``policy`` sets the minimum age; ``date_order`` says
    how numeric dates with separators read. ``allowed_ttl`` and ``under_age_ttl`` are how long a
    browser's screen result lasts (the under-age one cannot be overwritten meanwhile);
    ``identifier_block`` is how long a purged child's identifiers stay blocked (``0`` disables).
    ``status_cache_ttl`` is how many seconds :meth:`cached_status` may answer from process memory
    (``0`` disables the cache). ``store_timeout`` is how many seconds a call that needs the
    store waits for it before giving up with :class:`~agegate.StoreUnavailable` (the
    middleware then answers ``503``); a store made from a URL is given the same bound.
    ``policies`` is the region table (:class:`~agegate.PolicyTable`, a mapping in its file's
    shape, or the path of a TOML or JSON file; default: the built-in table) that the
    ``region=`` arguments look up; ``policy`` stays a floor under every region's age.
    """

    def __init__(
        self,
        *,
        keys: Keyring,
        store: str | Store = "sqlite:///agegate.sqlite3",
        policy: AgePolicy | None = None,
        date_order: DateOrder = "MDY",
        allowed_ttl: timedelta = timedelta(days=365),
        under_age_ttl: timedelta = timedelta(days=30),
        identifier_block: timedelta = timedelta(days=365),
        status_cache_ttl: float = 5.0,
        store_timeout: float = STORE_TIMEOUT,
        policies: PolicyTable | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    ) -> None:
        if not isinstance(keys, Keyring):
            raise ConfigurationError("keys must be a Keyring (for example Keyring.from_env())")
        if date_order not in DATE_ORDERS:
            raise ConfigurationError(f"date_order must be one of {', '.join(DATE_ORDERS)}")
        for name, ttl in (("allowed_ttl", allowed_ttl), ("under_age_ttl", under_age_ttl)):
            if not isinstance(ttl, timedelta) or ttl <= timedelta(0):
                raise ConfigurationError(f"{name} must be a positive timedelta")
        if not isinstance(identifier_block, timedelta) or identifier_block < timedelta(0):
            raise ConfigurationError("identifier_block must be a timedelta of zero or more")
        if (
            isinstance(status_cache_ttl, bool)
            or not isinstance(status_cache_ttl, int | float)
            or not 0 <= status_cache_ttl <= 3600
        ):
            raise ConfigurationError("status_cache_ttl must be a number of seconds between 0 and 3600")
        if (
            isinstance(store_timeout, bool)
            or not isinstance(store_timeout, int | float)
            or not 0 < store_timeout <= 300
        ):
            raise ConfigurationError("store_timeout must be a number of seconds above 0, at most 300")
        self.policy = policy if policy is not None else AgePolicy()
        if not isinstance(self.policy, AgePolicy):
            raise ConfigurationError("policy must be an AgePolicy")
        self.policies = PolicyTable.coerce(policies)
        self.date_order: DateOrder = date_order
        self.allowed_ttl = allowed_ttl
        self.under_age_ttl = under_age_ttl
        self.identifier_block = identifier_block
        self.status_cache_ttl = float(status_cache_ttl)
        # Raw account id -> (monotonic expiry, standing), in process memory only: never persisted,
        # logged or shown. The generation stops a lookup that raced an invalidation from
        # caching the older answer.
        self._status_cache: dict[str, tuple[float, Standing]] = {}
        self._status_generation = 0
        self._seen_revision = 0
        # Parts made on first use (see GateStatus._once).
        self._purger: Purger | None = None
        self._reports: Reports | None = None
        self._knowledge: ActualKnowledge | None = None
        self._making = threading.Lock()
        super().__init__(keys, store, store_timeout)

    @property
    def reports(self) -> Reports:
        """Reports from parents that a child has an account (:class:`~agegate.reports.Reports`).
        Made (and the report code imported) on first use, like :attr:`purger`."""
        return self._once("_reports", self._new_reports)

    @reports.setter
    def reports(self, value: Reports) -> None:
        self._reports = value

    @property
    def knowledge(self) -> ActualKnowledge:
        """Accounts known to be a child's from an age signal (:mod:`agegate.knowledge`). Made
        on first use, like :attr:`purger`."""
        return self._once("_knowledge", self._new_knowledge)

    @knowledge.setter
    def knowledge(self, value: ActualKnowledge) -> None:
        self._knowledge = value

    def _new_reports(self) -> Reports:
        from .reports import Reports

        return Reports(self)

    def _new_knowledge(self) -> ActualKnowledge:
        from .knowledge import ActualKnowledge

        return ActualKnowledge(self)

    # -- age signals (see agegate.signals and agegate.knowledge) -----------------------------

    def screen_signal(self, signal: AgeSignal, *, region: str | None = None) -> Decision | None:
        """The decision an age signal makes under the policy: ``under_age`` when its whole range
        is below the minimum age, ``allowed`` when its whole range is at or above it, ``None``
        when it straddles the threshold (screen the visitor as before). ``region`` picks the
        policy (:meth:`policy_for`)."""
        return self.knowledge.screen(signal, region=region)

    async def record_signal(
        self, subject: str, signal: AgeSignal, *, region: str | None = None, now: datetime | None = None
    ) -> Attestation | None:
        """The account's attestation from an age signal; see
        :meth:`agegate.knowledge.ActualKnowledge.record`. An under-age signal is actual
        knowledge: the account is recorded under age at once, on every instance, and listed
        for support (``agegate signals list``)."""
        return await self.knowledge.record(subject, signal, region=region, now=now)
