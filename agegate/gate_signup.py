"""The signup entry points: screen a signup and store its attestation, telling the middleware
the decision (see :class:`~agegate.AgeGate`)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, cast

from .birthdate import has_birth_input
from .decisions import Attestation, Decision
from .errors import ConfigurationError, InvalidInput, StoreError, UnderAgeError
from .gate_status import GateStatus
from .hook import signup_place
from .keycheck import move_to_active_key
from .policy import AgePolicy, aware
from .stores import AttestationRecord, Store, add_attestation
from .syncloop import run_sync

if TYPE_CHECKING:
    from .gate import AgeGate

__all__ = ["GateSignup"]

P = ParamSpec("P")
T = TypeVar("T")
G = TypeVar("G")
F = TypeVar("F", bound=Callable[..., Any])


def _coroutine_form(start: Callable[P, Awaitable[T]], name: str) -> Callable[P, Coroutine[Any, Any, T]]:
    """``start`` as a coroutine function named ``name``: nothing runs until it is awaited."""

    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        return await start(*args, **kwargs)

    return _named(call, start, name, start.__doc__)


def _blocking_form(
    start: Callable[Concatenate[G, P], Coroutine[Any, Any, T]], name: str, doc: str
) -> Callable[Concatenate[G, P], T]:
    """``start`` for synchronous code, named ``name``: ``start`` runs here, in the caller's own
    thread and context, and the coroutine it returns on the gate's loop thread."""

    def call(gate: G, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return run_sync(cast("AgeGate", gate), start(gate, *args, **kwargs))  # the only subclass

    return _named(call, start, name, doc)


def _named(call: F, start: Callable[..., Any], name: str, doc: str | None) -> F:
    functools.update_wrapper(call, start)  # the signature (inspect follows __wrapped__)
    call.__name__ = name
    call.__qualname__ = f"{start.__qualname__.rpartition('.')[0]}.{name}"
    call.__doc__ = doc
    return call


class GateSignup(GateStatus):
    """The signup entry points of an :class:`~agegate.AgeGate` (a base class of it)."""

    def _start_signup(
        self,
        fields: Mapping[str, str],
        *,
        subject: str,
        identifiers: Mapping[str, str] | None = None,
        now: datetime | None = None,
        decision: Decision | None = None,
        region: str | None = None,
        scope: Any = None,
    ) -> Coroutine[Any, Any, Attestation]:
        """Screen a signup and, when allowed, store a hashed attestation for ``subject``; tell
        the middleware the decision through ``scope`` (the request, any framework's, or its ASGI
        scope) so it writes the browser's cookie, a sticky one for a child.

        ``decision`` is a screen result the browser already has (the middleware's
        ``scope["agegate"]``): when it :meth:`passed` and ``fields`` hold no birth date, it is
        recorded instead; birth-date fields sent anyway are screened, and an under-age answer
        wins. An under-age ``decision`` refuses; any other is ignored.

        Raises :class:`~agegate.ConfigurationError`, before anything is screened, for a signup
        the middleware would not hear of (see :mod:`agegate.hook`);
        :class:`~agegate.InvalidBirthDate` for unusable input and
        :class:`~agegate.UnderAgeError` for an under-age person, an account already known to
        be a child's, or identifiers of an account purged as a child's. Nothing is stored
        unless the signup is allowed. Persist nothing of the signup before this returns.
        Identifier kinds are those a purge blocks (``purger.identifier_kinds``: email, phone,
        username by default); another kind is a :class:`~agegate.ConfigurationError`, since
        it could never match a block. Raises :class:`~agegate.StoreUnavailable` when the
        store cannot answer within ``store_timeout`` seconds: create no account then.
        ``region`` picks the policy (:meth:`policy_for`); the region itself is not stored.
        """
        place = signup_place(self, scope)  # in the caller's own thread and context
        policy = self.policy_for(region)

        async def attempt() -> Attestation:
            account = self._screen_signup(fields, subject, identifiers, now, decision, region)
            return await self._store_signup(account, identifiers, now, policy)

        return place.recorded(attempt, policy)

    signup = _coroutine_form(_start_signup, "signup")
    signup_sync = _blocking_form(
        _start_signup,
        "signup_sync",
        """:meth:`signup` for synchronous code (a sync view, WSGI), run on the gate's own event
        loop thread (:mod:`agegate.syncloop`).""",
    )

    def _screen_signup(
        self,
        fields: Mapping[str, str],
        subject: str,
        identifiers: Mapping[str, str] | None,
        now: datetime | None,
        decision: Decision | None,
        region: str | None,
    ) -> str:
        """The account id of a signup :meth:`signup` allows; raises for any other."""
        subject = self.account_id(subject)
        for kind in identifiers or {}:
            # The default kinds are known without loading the purge code for them.
            if self._purger is not None or not isinstance(kind, str) or kind.strip().lower() not in _KINDS:
                try:
                    self.purger.known_kind(kind)
                except InvalidInput as exc:  # the app's own code names the kinds: its setup
                    raise ConfigurationError(str(exc)) from None
        if isinstance(decision, Decision) and not (decision.allowed and decision.outcome == "allowed"):
            raise UnderAgeError()
        if not self.passed(decision, region=region) or has_birth_input(fields):
            decision = self.screen(fields, now=now, region=region)
        if not decision.allowed:
            raise UnderAgeError()
        return subject

    async def _store_signup(
        self, subject: str, identifiers: Mapping[str, str] | None, now: datetime | None, policy: AgePolicy
    ) -> Attestation:
        """Store the allowed attestation of a new account ``subject`` under ``policy``, unless
        its identifiers are blocked or the account is recorded under age."""
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
