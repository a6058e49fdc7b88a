"""AgeGate: the screen, the signup hook, account status and purges, over one store."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeGuard, TypeVar

from .accounts import AccountFormat, check_account_id
from .birthdate import DATE_ORDERS, DateOrder, has_birth_input, read_birth_input
from .decisions import Attestation, Decision
from .errors import ConfigurationError, StoreError, StoreUnavailable, UnderAgeError
from .hook import signup_place
from .keycheck import KeyStatus, check_keys, key_status, move_to_active_key
from .keys import Keyring
from .policy import AgePolicy, aware
from .regions import UNDER_AGE, PolicyTable, Standing, labelled_policy, status_for
from .stores import AttestationRecord, Store, add_attestation, open_store
from .syncloop import run_sync
from .tokens import OUTCOMES, Hasher, Outcome, Sealer

if TYPE_CHECKING:
    from .knowledge import ActualKnowledge
    from .purge import Purger, PurgeReport
    from .reports import Reports
    from .signals import AgeSignal

Status = Literal["allowed", "under_age", "unknown"]
T = TypeVar("T")

#: How many seconds a call waits for the store by default before :class:`StoreUnavailable`.
STORE_TIMEOUT = 2.0


def normalise_identifier(kind: str, value: str) -> str:
    """The canonical form of an identifier, so that trivially different spellings block alike:
    emails and usernames are case-folded and trimmed, phone numbers keep only their digits."""
    kind = kind.strip().lower()
    value = value.strip()
    if kind == "phone":
        return "".join(ch for ch in value if ch.isascii() and ch.isdigit())
    return value.casefold()


class AgeGate:
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
        self.keys = keys
        self.policy = policy if policy is not None else AgePolicy()
        if not isinstance(self.policy, AgePolicy):
            raise ConfigurationError("policy must be an AgePolicy")
        self.policies = PolicyTable.coerce(policies)
        self.date_order: DateOrder = date_order
        self.allowed_ttl = allowed_ttl
        self.under_age_ttl = under_age_ttl
        self.identifier_block = identifier_block
        self.status_cache_ttl = float(status_cache_ttl)
        self.store_timeout = float(store_timeout)
        # Raw account id -> (monotonic expiry, standing), in process memory only: never persisted,
        # logged or shown. The generation stops a lookup that raced an invalidation from
        # caching the older answer.
        self._status_cache: dict[str, tuple[float, Standing]] = {}
        self._status_generation = 0
        self._seen_revision = 0
        self.sealer = Sealer(keys, "cookie")
        self.subject_hasher = Hasher(keys, "subject")
        self.attestation_hasher = Hasher(keys, "attestation")
        self.identifier_hasher = Hasher(keys, "identifier")
        self._store: Store = (
            open_store(store, timeout=self.store_timeout) if isinstance(store, str) else store
        )
        self._opened = False
        self._open_lock = asyncio.Lock()
        self._abandoned: set[asyncio.Task[Any]] = set()  # store calls that ran out of time
        #: The app's own shape for account ids (``gate.purger.subject_format`` sets it).
        self.account_format: AccountFormat | None = None
        self._purger: Purger | None = None
        from .knowledge import ActualKnowledge
        from .reports import Reports

        #: Reports from parents that a child has an account (:class:`~agegate.reports.Reports`).
        self.reports: Reports = Reports(self)
        #: Accounts known to be a child's from an age signal (:mod:`agegate.knowledge`).
        self.knowledge: ActualKnowledge = ActualKnowledge(self)

    @property
    def purger(self) -> Purger:
        """The gate's :class:`~agegate.purge.Purger`: its handlers and purge jobs. Made (and the
        purge code imported) on first use, so that an app that only gates requests and screens
        signups never loads it."""
        if self._purger is None:
            from .purge import Purger

            self._purger = Purger(self)
        return self._purger

    # -- the store ---------------------------------------------------------------------------

    async def store(self) -> Store:
        """The store, opened (schema created or migrated) on first use.

        Raises :class:`~agegate.KeyringMismatch` when the keyring does not fit the store: it
        cannot read the store's records, or drops a key some still need (see
        :mod:`agegate.keycheck`); the store is then not used."""
        if not self._opened:
            async with self._open_lock:
                if not self._opened:
                    await self._store.open()
                    try:
                        await check_keys(self.keys, self._store)
                    except BaseException:
                        await self._store.close()
                        raise
                    self._opened = True
        return self._store

    async def key_status(self) -> list[KeyStatus]:
        """Each key id the keyring lists or the store knows, with the records that need it
        (``agegate keys status``). Works, for diagnosis, even when the keyring does not fit
        the store (and then leaves the store closed again)."""
        if self._opened:
            return await key_status(self.keys, self._store)
        await self._store.open()
        try:
            return await key_status(self.keys, self._store)
        finally:
            if not self._opened:
                await self._store.close()

    async def _ask(self, op: Callable[[Store], Awaitable[T]]) -> T:
        """``op`` on the opened store, answered within ``store_timeout`` seconds or refused
        with :class:`~agegate.StoreUnavailable`.

        The call runs as a task of its own that is cancelled, not awaited, when time is up: a
        store stuck on a dead connection may take longer to clean up, and the request must not
        wait for that. Each store call is one transaction, so a cancelled one writes nothing or
        all of its change.
        """
        task = asyncio.ensure_future(self._on_store(op))
        try:
            done, _ = await asyncio.wait((task,), timeout=self.store_timeout)
        except asyncio.CancelledError:
            self._abandon(task)
            raise
        if not done:
            self._abandon(task)
            raise StoreUnavailable(
                f"the age gate's store did not answer within {self.store_timeout:g} seconds"
            )
        try:
            return task.result()
        except OSError as exc:  # a custom store's socket or file error: the store cannot answer
            raise StoreUnavailable(f"the age gate's store failed: {type(exc).__name__}") from None

    async def _on_store(self, op: Callable[[Store], Awaitable[T]]) -> T:
        return await op(await self.store())

    def _abandon(self, task: asyncio.Task[Any]) -> None:
        task.cancel()
        self._abandoned.add(task)
        task.add_done_callback(self._forget_abandoned)

    def _forget_abandoned(self, task: asyncio.Task[Any]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: nobody is waiting for it any more

    async def aclose(self) -> None:
        """Close the store's connections."""
        if self._opened:
            await self._store.close()
            self._opened = False

    async def __aenter__(self) -> AgeGate:
        await self.store()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- the screen --------------------------------------------------------------------------

    def policy_for(self, region: str | None) -> AgePolicy:
        """The policy for a visitor from ``region`` (an ISO 3166 code, any case): the region
        table's row, or its strictest age for a region it does not list; the gate's own
        ``policy`` when ``region`` is ``None`` or when it is stricter than the row."""
        if region is None:
            return self.policy
        policy = self.policies.for_region(region)
        return policy if policy.min_age >= self.policy.min_age else self.policy

    def screen(
        self, fields: Mapping[str, str], *, now: datetime | None = None, region: str | None = None
    ) -> Decision:
        """Screen a birth date (or a stated age) from form fields, under the policy of
        ``region`` (:meth:`policy_for`; ``None``: the gate's own policy).

        Raises :class:`~agegate.InvalidBirthDate` for input that cannot be used.
        """
        policy = self.policy_for(region)
        moment = aware(now)
        reading = read_birth_input(fields, date_order=self.date_order, now=moment)
        under = reading.is_under_age(policy, moment)
        return Decision.of("under_age" if under else "allowed", policy)

    def passed(self, decision: object, *, region: str | None = None) -> TypeGuard[Decision]:
        """Whether ``decision`` is an allowed :class:`Decision` that satisfies the policy of
        ``region`` (:meth:`policy_for`; the gate's own for ``None``), as the middleware's in
        ``scope["agegate"]`` may: anything else, a dict, an unknown policy's answer or one
        reached under a lower minimum age, is not."""
        if type(decision) is not Decision or decision.allowed is not True or decision.outcome != "allowed":
            return False
        reached = decision.age_policy
        if reached is None:  # a decision by name: only the gate's own policy is known by name
            reached = self.policy if decision.policy == self.policy.name else None
        return reached is not None and reached.min_age >= self.policy_for(region).min_age

    # -- hashing -----------------------------------------------------------------------------

    def account_id(self, subject: object) -> str:
        """``subject`` if every entry point accepts it as an account id (one rule for signup,
        status, the middleware's ``subject=`` and the purge), else
        :class:`~agegate.InvalidAccountId`."""
        return check_account_id(subject, self.account_format)

    def subject_hashes(self, subject: str) -> list[bytes]:
        """HMAC(subject key, account id) under every listed key, active first."""
        return self.subject_hasher.digests(self.account_id(subject))

    def identifier_hashes(self, identifiers: Mapping[str, str] | None) -> list[bytes]:
        """HMAC(identifier key, kind | normalised value) under every listed key."""
        out: list[bytes] = []
        for kind, value in (identifiers or {}).items():
            if not isinstance(kind, str) or not isinstance(value, str):
                raise ConfigurationError("identifiers map kinds (email, phone, username) to strings")
            normal = normalise_identifier(kind, value)
            if normal:
                out.extend(self.identifier_hasher.digests(kind.strip().lower(), normal))
        return out

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

    async def signup(
        self,
        fields: Mapping[str, str],
        *,
        subject: str,
        identifiers: Mapping[str, str] | None = None,
        now: datetime | None = None,
        decision: Decision | None = None,
        region: str | None = None,
        scope: Any = None,
    ) -> Attestation:
        """Screen a signup and, when allowed, store a hashed attestation for ``subject``; tell
        the middleware the decision through ``scope`` (the request, any framework's, or its ASGI
        scope) so it writes the browser's cookie, a sticky one for a child.

        Raises :class:`~agegate.ConfigurationError`, before anything is screened, for a signup
        the middleware would not hear of (see :mod:`agegate.hook`). The rest is
        :meth:`_signup`'s (``decision`` too).
        """
        place = signup_place(self, scope)
        return await place.recorded(
            lambda: self._signup(
                fields, subject=subject, identifiers=identifiers, now=now, decision=decision, region=region
            ),
            self.policy_for(region),
        )

    def signup_sync(
        self,
        fields: Mapping[str, str],
        *,
        subject: str,
        identifiers: Mapping[str, str] | None = None,
        now: datetime | None = None,
        decision: Decision | None = None,
        region: str | None = None,
        scope: Any = None,
    ) -> Attestation:
        """:meth:`signup` for synchronous code (a sync view, WSGI), run on the gate's own event
        loop thread (:mod:`agegate.syncloop`)."""
        place = signup_place(self, scope)  # here, in the request's own thread and context
        return run_sync(
            self,
            place.recorded(
                lambda: self._signup(
                    fields,
                    subject=subject,
                    identifiers=identifiers,
                    now=now,
                    decision=decision,
                    region=region,
                ),
                self.policy_for(region),
            ),
        )

    async def _signup(
        self,
        fields: Mapping[str, str],
        *,
        subject: str,
        identifiers: Mapping[str, str] | None = None,
        now: datetime | None = None,
        decision: Decision | None = None,
        region: str | None = None,
    ) -> Attestation:
        """Screen a signup and, when allowed, store a hashed attestation for ``subject``.

        ``decision`` is a screen result the browser already has (the middleware's
        ``scope["agegate"]``): when it :meth:`passed` and ``fields`` hold no birth date, it is
        recorded instead; birth-date fields sent anyway are screened, and an under-age answer
        wins. An under-age ``decision`` refuses; any other is ignored.

        Raises :class:`~agegate.InvalidBirthDate` for unusable input and
        :class:`~agegate.UnderAgeError` for an under-age person, an account already known to
        be a child's, or identifiers of an account purged as a child's. Nothing is stored
        unless the signup is allowed. Persist nothing of the signup before this returns.
        Identifier kinds are those a purge blocks (``purger.identifier_kinds``: email, phone,
        username by default); another kind is a :class:`~agegate.ConfigurationError`, since
        it could never match a block. Raises :class:`~agegate.StoreUnavailable` when the
        store cannot answer within ``store_timeout`` seconds: create no account then.
        ``region`` picks the policy (:meth:`policy_for`); the region itself is not stored.
        """
        subject = self.account_id(subject)
        for kind in identifiers or {}:
            # The default kinds are known without loading the purge code for them.
            if self._purger is not None or not isinstance(kind, str) or kind.strip().lower() not in _KINDS:
                self.purger.known_kind(kind)
        if isinstance(decision, Decision) and not (decision.allowed and decision.outcome == "allowed"):
            raise UnderAgeError()
        if not self.passed(decision, region=region) or has_birth_input(fields):
            decision = self.screen(fields, now=now, region=region)
        if not decision.allowed:
            raise UnderAgeError()
        policy = self.policy_for(region)
        blocks = self.identifier_hashes(identifiers)
        at = aware(now).astimezone(UTC)
        hashes = self.subject_hashes(subject)
        new = self._attestation(subject, hashes[0], "allowed", now, policy)

        async def write(store: Store) -> Attestation:
            # A new account: the blocks, the account's record and the write in one transaction.
            done = await add_attestation(store, new, replaces=hashes[1:], identifier_hashes=blocks, now=at)
            if done.blocked:
                raise UnderAgeError(reason="blocked")
            if not done.written and (
                await self._write_allowed(store, subject, hashes, new, read=(done.current,)) is not None
            ):
                raise UnderAgeError(reason="blocked")
            self.forget_status(subject)
            return Attestation("allowed", policy.name, new.checked_at, new.kid, policy.version)

        # One bound for the whole signup: its reads and its one write.
        return await self._ask(write)

    async def _write_allowed(
        self,
        store: Store,
        subject: str,
        hashes: list[bytes],
        new: AttestationRecord,
        *,
        read: tuple[AttestationRecord | None] | None = None,
    ) -> AttestationRecord | None:
        """Write the allowed record ``new`` for ``subject`` unless the account is recorded under
        age; returns that under-age record (written nothing) or ``None`` (written). ``read`` is
        the account's record as just read, when the caller has it (saves one read)."""
        for attempt in range(5):
            current = read[0] if read is not None and attempt == 0 else await store.get_attestation(hashes)
            if current is not None and self._status_in(current, subject) == "under_age":
                await move_to_active_key(store, self.attestation_hasher, current, subject, hashes)
                return current
            # Written only if the record is still the one just read: a purge freezing the
            # account in between is never overwritten.
            if await store.swap_attestation(new, replaces=hashes[1:], expected=current):
                self.forget_status(subject)
                return None
        raise StoreError("the account's record kept changing; try again")

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

    # -- purges ------------------------------------------------------------------------------

    async def purge(
        self,
        subject: str,
        *,
        ticket: str,
        operator: str,
        identifiers: Mapping[str, str] | None = None,
        dry_run: bool = False,
    ) -> PurgeReport:
        """Delete a reported child's account data from every registered handler; see
        :class:`~agegate.purge.Purger`."""
        return await self.purger.purge(
            subject, ticket=ticket, operator=operator, identifiers=identifiers, dry_run=dry_run
        )


#: ``agegate.purge.IDENTIFIER_KINDS``, the identifier kinds of a purger left as it was made.
_KINDS = frozenset({"email", "phone", "username"})
#: Most accounts whose status :meth:`AgeGate.cached_status` keeps in memory at once.
_STATUS_CACHE_SIZE = 10_000
