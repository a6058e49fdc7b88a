"""The signup entry points: screen a signup and store its attestation, telling the middleware
the decision (see :class:`~agegate.AgeGate`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from .birthdate import has_birth_input
from .decisions import Attestation, Decision
from .errors import StoreError, UnderAgeError
from .gate_status import GateStatus
from .hook import signup_place
from .keycheck import move_to_active_key
from .policy import aware
from .stores import AttestationRecord, Store, add_attestation
from .syncloop import run_sync

if TYPE_CHECKING:
    from .gate import AgeGate

__all__ = ["GateSignup"]


class GateSignup(GateStatus):
    """The signup entry points of an :class:`~agegate.AgeGate` (a base class of it)."""

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
            cast("AgeGate", self),  # the only subclass
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


#: ``agegate.purge.IDENTIFIER_KINDS``, the identifier kinds of a purger left as it was made.
_KINDS = frozenset({"email", "phone", "username"})
