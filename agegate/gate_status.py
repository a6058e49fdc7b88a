"""Account status and purges: the hashed attestations the gate stores, what they say of an
account under a policy, the in-memory status cache, and the purge entry point (see
:class:`~agegate.AgeGate`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Concatenate, Generic, Literal, ParamSpec, Self, TypeVar, cast, overload

from .decisions import Attestation
from .errors import ConfigurationError
from .gate_screen import GateScreen
from .keycheck import move_to_active_key
from .policy import AgePolicy, aware
from .regions import UNDER_AGE, Standing, labelled_policy, status_for
from .stores import AttestationRecord, Store
from .tokens import OUTCOMES, Outcome

if TYPE_CHECKING:
    from .gate import AgeGate
    from .purge import Purger

__all__ = ["GateStatus", "Status"]

Status = Literal["allowed", "under_age", "unknown"]
P = ParamSpec("P")
T = TypeVar("T")


class _PurgerMethod(Generic[P, T]):
    """``gate.<name>`` is ``gate.purger.<name>``, the purger's own method: one signature and one
    docstring serve both, and the purge code still loads only on first use."""

    def __init__(self, name: str, doc: str) -> None:
        self._name = name
        self.__doc__ = doc

    @overload
    def __get__(self, gate: None, owner: type[object]) -> Self: ...

    @overload
    def __get__(self, gate: GateStatus, owner: type[object]) -> Callable[P, T]: ...

    def __get__(self, gate: GateStatus | None, owner: type[object]) -> Self | Callable[P, T]:
        if gate is None:
            return self
        method: Callable[P, T] = getattr(gate.purger, self._name)
        return method


def _purger_method(method: Callable[Concatenate[Purger, P], T]) -> _PurgerMethod[P, T]:
    """The type of :class:`_PurgerMethod` for ``method`` (for the type checker only)."""
    raise NotImplementedError


class GateStatus(GateScreen):
    """Account status, attestations and purges of an :class:`~agegate.AgeGate` (a base class of
    it, which sets the status cache up)."""

    status_cache_ttl: float
    _status_cache: dict[str, tuple[float, Standing]]
    _status_generation: int
    _seen_revision: int
    _purger: Purger | None
    #: Held while a part made on first use is made (see :meth:`_once`).
    _making: threading.Lock

    def _once(self, attribute: str, make: Callable[[], T]) -> T:
        """``self.<attribute>``, made by ``make()`` on first use: once, even when threads (a
        Django site's sync views) ask at the same moment, since what it holds (handlers,
        settings, callbacks) must live on the one object."""
        found: T | None = getattr(self, attribute)
        if found is None:
            with self._making:
                found = getattr(self, attribute)
                if found is None:
                    found = make()
                    setattr(self, attribute, found)
        return found

    @property
    def purger(self) -> Purger:
        """The gate's :class:`~agegate.purge.Purger`: its handlers and purge jobs. Made (and the
        purge code imported) on first use, so that an app that only gates requests and screens
        signups never loads it."""
        return self._once("_purger", self._new_purger)

    def _new_purger(self) -> Purger:
        from .purge import Purger

        return Purger(cast("AgeGate", self))  # the only subclass

    # -- attestations ------------------------------------------------------------------------

    async def record(self, subject: str, outcome: Outcome, *, now: datetime | None = None) -> Attestation:
        """Store a hashed attestation of ``outcome`` for ``subject`` (replacing any older one)."""
        if outcome not in OUTCOMES:
            raise ConfigurationError(f"outcome must be one of {', '.join(OUTCOMES)}")
        subject = self.account_id(subject)
        hashes = self.subject_hashes(subject)
        new = self._attestation(subject, hashes[0], outcome, now, self.policy)

        async def write(store: Store) -> None:
            await store.put_attestation(new, replaces=hashes[1:])
            self.forget_status(subject)
            if outcome == "under_age":
                await store.bump_revision()  # other processes drop their cached "allowed" at once

        await self._ask(write)
        return Attestation(outcome, new.policy, new.checked_at, new.kid)

    def _attestation(
        self, subject: str, subject_hash: bytes, outcome: Outcome, now: datetime | None, policy: AgePolicy
    ) -> AttestationRecord:
        """The record to store for ``subject`` (whose hash under the active key is
        ``subject_hash``): keyed hashes only, no outcome in the clear. It carries the policy's
        label (name, and for a region table's policy its age and the table's version)."""
        kid = self.keys.active_kid
        mac = self.attestation_hasher.digest(subject, outcome, policy.label, kid=kid)
        return AttestationRecord(subject_hash, kid, mac, policy.label, aware(now).astimezone(UTC))

    async def status_of(self, subject: str, *, region: str | None = None) -> Status:
        """``"allowed"``, ``"under_age"`` or ``"unknown"`` for an account id, for a visitor
        from ``region`` (:meth:`policy_for`).

        An under-age record counts under any policy; an allowed one only under a policy whose
        minimum age is no higher than the one it was reached under (a stricter policy, or a
        record of an unknown policy, asks again). A record whose MAC does not verify is unknown.
        """
        return status_for(await self._standing_of(subject), self.policy_for(region))

    async def _standing_of(self, subject: str) -> Standing:
        subject = self.account_id(subject)
        hashes = self.subject_hashes(subject)

        async def read(store: Store) -> AttestationRecord | None:
            record = await store.get_attestation(hashes)
            await move_to_active_key(store, self.attestation_hasher, record, subject, hashes)
            return record

        return self._standing_in(await self._ask(read), subject)

    def _status_in(self, record: AttestationRecord | None, subject: str) -> Status:
        """What a stored record says of ``subject`` under the gate's own policy."""
        return status_for(self._standing_in(record, subject), self.policy)

    def _standing_in(self, record: AttestationRecord | None, subject: str) -> Standing:
        """``"under_age"``, the minimum age an allowed record was reached under, or ``None``."""
        if record is None:
            return None
        verify = self.attestation_hasher.verify
        if verify(record.mac, subject, "under_age", record.policy, kid=record.kid):
            return UNDER_AGE
        reached = labelled_policy(record.policy, self.policy)
        if reached is not None and verify(record.mac, subject, "allowed", record.policy, kid=record.kid):
            return reached.min_age
        return None

    def peek_status(self, subject: str, *, region: str | None = None) -> Status | None:
        """The status :meth:`cached_status` would answer from memory, or ``None`` when it
        would have to ask the store. Never awaits: the middleware's fast path."""
        revision = self._store.revision()
        if revision != self._seen_revision:
            # Some process marked an account under age (a purge) or deleted one: drop it all.
            self._seen_revision = revision
            self.forget_status()
            return None
        hit = self._status_cache.get(subject)
        if hit is not None and hit[0] > time.monotonic():
            return status_for(hit[1], self.policy_for(region))
        return None

    async def cached_status(self, subject: str, *, region: str | None = None) -> Status:
        """:meth:`status_of`, answered from process memory for ``status_cache_ttl`` seconds.

        The gate forgets an account's cached status whenever it writes that account's
        attestation. When any process sharing the store marks an account under age (a purge)
        or deletes an attestation, every process drops its cache at once (the store's
        :meth:`~agegate.stores.Store.revision`); other changes show within ``status_cache_ttl``.
        """
        hit = self.peek_status(subject, region=region)
        if hit is not None:
            return hit
        generation = self._status_generation
        standing = await self._standing_of(subject)
        if self.status_cache_ttl and generation == self._status_generation:
            cache = self._status_cache
            if len(cache) >= _STATUS_CACHE_SIZE:
                # Oldest first (dicts keep insertion order): bounded memory under many accounts.
                del cache[next(iter(cache))]
            cache[subject] = (time.monotonic() + self.status_cache_ttl, standing)
        return status_for(standing, self.policy_for(region))

    def forget_status(self, subject: str | None = None) -> None:
        """Drop the cached status of ``subject`` (of every account when ``None``), so the next
        lookup asks the store. Call it after changing an account's attestation elsewhere."""
        self._status_generation += 1
        if subject is None:
            self._status_cache.clear()
        else:
            self._status_cache.pop(subject, None)

    async def forget_account(self, subject: str) -> int:
        """Delete the stored attestation of ``subject`` (under every listed key), for an account
        the app deletes for an ordinary reason; returns how many records were deleted.

        A record of a child's account (``under_age``: reported, or purged) is kept, so the
        account id stays blocked; a reported child's account is purged with :meth:`purge`.
        """
        subject = self.account_id(subject)
        hashes = self.subject_hashes(subject)

        async def delete(store: Store) -> int:
            current = await store.get_attestation(hashes)
            if self._status_in(current, subject) == "under_age":
                await move_to_active_key(store, self.attestation_hasher, current, subject, hashes)
                return 0
            deleted = await store.delete_attestations(hashes)
            self.forget_status(subject)
            if deleted:
                await store.bump_revision()
            return deleted

        return await self._ask(delete)

    async def delete_expired_blocks(self, *, now: datetime | None = None) -> int:
        """Delete identifier blocks that have ended (they no longer count anyway); returns how
        many. Run it from time to time, for example next to a daily backup."""
        at = aware(now).astimezone(UTC)
        return await self._ask(lambda store: store.delete_expired_blocks(now=at))

    async def is_blocked(self, identifiers: Mapping[str, str] | None, *, now: datetime | None = None) -> bool:
        """Whether any of these identifiers belongs to an account purged as a child's, while
        its block lasts."""
        hashes = self.identifier_hashes(identifiers)
        if not hashes:
            return False
        at = aware(now).astimezone(UTC)
        return await self._ask(lambda store: store.is_blocked(hashes, now=at))

    # -- purges ------------------------------------------------------------------------------

    if TYPE_CHECKING:  # typed as the purger's own method; the class below is what runs
        purge = _purger_method(Purger.purge)
    else:
        purge = _PurgerMethod(
            "purge",
            """Delete a reported child's account data from every registered handler: the
            purger's :meth:`~agegate.purge.Purger.purge`, reached on the gate.""",
        )


#: Most accounts whose status :meth:`AgeGate.cached_status` keeps in memory at once.
_STATUS_CACHE_SIZE = 10_000
