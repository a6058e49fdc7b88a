"""The purge handler registry: which handlers delete an account's data, in which order, and
what the coverage check and the input checks are told about the app's data."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..errors import AgeGateError, ConfigurationError, StepFailed
from ..handlers import TableRef
from . import request
from .journal import RESERVED_STEPS
from .report import Listener, PurgeEvent
from .request import IDENTIFIER_KINDS

if TYPE_CHECKING:
    from ..gate import AgeGate

__all__ = [
    "Counter",
    "Handler",
    "HandlerRegistry",
    "PurgeHandler",
    "Registered",
    "StepFailed",
    "rows_deleted",
]

Handler = Callable[[str], Awaitable[int]]
Counter = Callable[[str], Awaitable[int]]
H = TypeVar("H", bound=Handler)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", re.ASCII)


class PurgeHandler(Protocol):
    """A handler object: awaitable with the account id, returning the rows deleted. It may also
    have ``name``, ``async count(subject) -> int`` and ``covers`` (tables, for the coverage check)."""

    def __call__(self, subject: str) -> Awaitable[int]: ...


@dataclass(frozen=True, slots=True)
class Registered:
    """A registered handler: its name, its delete and count sides, the tables it covers."""

    name: str
    run: Handler
    count: Counter | None
    covers: tuple[TableRef, ...]
    #: The handler object itself (for handlers that check ids or report a plan).
    obj: Any = None


class HandlerRegistry:
    """The registry half of :class:`~agegate.purge.Purger`: handlers, listeners, exemptions
    and the checks a purge's input passes before anything is frozen."""

    _gate: AgeGate  # set by the Purger

    def __init__(self) -> None:
        self._handlers: dict[str, Registered] = {}
        self._listeners: list[Listener] = []
        self._exempt: list[tuple[TableRef, str | None, str | None]] = []
        self._prepared_covers: set[str] = set()
        self.identifier_kinds: tuple[str, ...] = IDENTIFIER_KINDS

    def handler(
        self, name: str, *, count: Counter | None = None, covers: Iterable[TableRef] = ()
    ) -> Callable[[H], H]:
        """Register ``async def f(subject) -> rows deleted`` under ``name``.

        Handlers run in registration order and must be idempotent (a second run deletes nothing
        more). ``count`` is an optional ``async def (subject) -> rows`` used by dry runs;
        ``covers`` names tables the handler purges (``db.table("orders")``) for the coverage check.
        """

        def register(func: H) -> H:
            self._register(name, func, count, tuple(covers))
            return func

        return register

    def add(
        self,
        handler: PurgeHandler,
        *,
        name: str | None = None,
        count: Counter | None = None,
        covers: Iterable[TableRef] | None = None,
    ) -> PurgeHandler:
        """Register a handler object, such as the built-in :class:`~agegate.handlers.SQLRows`
        or :class:`~agegate.handlers.AccountFiles`; its ``name``, ``count`` and ``covers``
        attributes are used unless given here."""
        resolved = name or getattr(handler, "name", None)
        if not isinstance(resolved, str):
            raise ConfigurationError("this handler has no name: pass name=")
        counter = count if count is not None else getattr(handler, "count", None)
        refs = tuple(covers) if covers is not None else tuple(getattr(handler, "covers", ()))
        self._register(resolved, handler, counter, refs, handler)
        if covers is None and callable(getattr(handler, "prepare", None)):
            # Its tables are known once it has read the database (db.account): ask it then.
            self._prepared_covers.add(resolved)
        return handler

    def _register(
        self, name: str, run: Any, count: Any, covers: tuple[TableRef, ...], obj: Any = None
    ) -> None:
        if not isinstance(name, str) or _NAME.fullmatch(name) is None:
            raise ConfigurationError(
                "a handler name is 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
            )
        if name in RESERVED_STEPS:
            raise ConfigurationError(f"{name!r} is the name of a purge step; choose another handler name")
        if name in self._handlers:
            raise ConfigurationError(f"a purge handler named {name!r} is already registered")
        if not callable(run) or (count is not None and not callable(count)):
            raise ConfigurationError(f"purge handler {name!r} must be callable")
        if any(not isinstance(ref, TableRef) for ref in covers):
            raise ConfigurationError("covers= takes tables such as SQLiteDatabase(...).table('orders')")
        self._handlers[name] = Registered(name, run, count, covers, obj)

    async def covered_tables(self) -> tuple[TableRef, ...]:
        """Every table the registered handlers say they purge (their ``covers``), in order; a
        handler that works its tables out from the database (``db.account``) reads it first."""
        refs: list[TableRef] = []
        for registered in self._handlers.values():
            if registered.name in self._prepared_covers:
                try:
                    await registered.obj.prepare()
                except AgeGateError:
                    raise
                except Exception as exc:
                    # The class only: a driver's message may hold a connection string.
                    raise ConfigurationError(
                        f"handler {registered.name!r} cannot read its database ({type(exc).__name__})"
                    ) from None
                refs += registered.obj.covers
            else:
                refs += registered.covers
        return tuple(refs)

    @property
    def names(self) -> tuple[str, ...]:
        """The registered handlers' names, in the order they run."""
        return tuple(self._handlers)

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` for every :class:`PurgeEvent`; returns a function that
        stops it. Listeners run inline: keep them quick."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def exempt(self, table: TableRef, *columns: str, reason: str | None = None) -> None:
        """Declare data the coverage check must not ask a handler for; its report prints each
        declaration with its ``reason``.

        With columns: they hold no personal data although their names look like it
        (``exempt(db.table("products"), "name")``). Without: the whole table holds personal
        data that is not the account holder's, such as staff members or film credits
        (``exempt(db.table("staff"), reason="employees, not customers")``); say why in ``reason``.
        """
        if not isinstance(table, TableRef):
            raise ConfigurationError("exempt() takes a table such as SQLiteDatabase(...).table('products')")
        if reason is not None:
            reason = request.label("reason", reason)
        if columns:
            self._exempt.extend((table, column, reason) for column in columns)
        else:
            self._exempt.append((table, None, reason))

    def subject_format(self, pattern: str, description: str) -> None:
        """Refuse purges of account ids that do not fully match ``pattern``; the error says the id
        does not look like ``description`` (e.g. ``"a numeric account id"``)."""
        self._gate.account_format = (re.compile(pattern), description)

    def _emit(self, kind: Any, job_id: str, step: str, count: int | None = None) -> None:
        event = PurgeEvent(kind, job_id, step, count)
        for listener in list(self._listeners):
            listener(event)

    # -- checks ------------------------------------------------------------------------------

    def check_subject(self, subject: str) -> str:
        """The account id if it is usable, else :class:`ConfigurationError` (which never
        repeats the id)."""
        return self._gate.account_id(subject)

    def check_request(
        self,
        subject: str,
        ticket: str,
        operator: str,
        identifiers: Mapping[str, str] | None = None,
        *,
        receipt: str | None = None,
    ) -> tuple[str, str, str]:
        """Check a purge's input as :meth:`purge` does, without touching the store; returns the
        account id, ticket and operator as they will be used. Raises :class:`ConfigurationError`."""
        subject = self.check_subject(subject)
        ticket, operator = request.label("ticket", ticket), request.label("operator", operator)
        labels = {"ticket": ticket, "operator": operator}
        if receipt is not None:
            # Journalled in the clear like the ticket, so held to the same rule.
            labels["receipt file name"] = request.label("receipt file name", receipt)
        request.refuse_pii_in_labels(subject, identifiers, labels)
        self.check_identifiers(identifiers)
        return subject, ticket, operator

    def known_kind(self, kind: object) -> str:
        """``kind`` case-folded and trimmed, if it is one of ``identifier_kinds``; else
        :class:`ConfigurationError` (which names the kind only when it looks like one, so that
        a value pasted in its place, an email, never reaches an error message)."""
        return request.known_kind(kind, self.identifier_kinds)

    def check_identifiers(self, identifiers: Mapping[str, str] | None) -> int:
        """Check the identifiers a purge is to block; returns how many distinct ones it blocks.

        Each kind must be one of ``identifier_kinds`` (case and surrounding spaces do not matter)
        and each value must keep something after normalisation (a phone number needs digits).
        Raises :class:`ConfigurationError`, which names the kind but never the value.
        """
        return request.check_identifiers(identifiers, self.identifier_kinds)


def rows_deleted(value: object, step: str) -> int:
    """A handler's return value, if it is a count of rows deleted; else :class:`StepFailed`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StepFailed(f"handler {step!r} returned {type(value).__name__}, not a count of rows deleted")
    return value
