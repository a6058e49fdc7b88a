"""How a signup made inside the app reaches the middleware, in any framework.

The middleware writes the browser's sealed cookie for a decision the app made inline, on the
way out of a signup request. For that, :meth:`AgeGate.signup <agegate.AgeGate.signup>` is told
the request (``scope=``): any object carrying the ASGI scope (Starlette, FastAPI, Litestar and
Quart requests, Django's ``ASGIRequest``, a request the Django middleware saw) or the raw scope.

A signup the middleware would not hear of fails before anything is stored, so it cannot be
written by accident: while the middleware passes a request on, it marks the request's context
(a context variable, which follows the request into the app's tasks and worker threads). Inside
a signup request, ``gate.signup()`` without ``scope=`` raises :class:`ConfigurationError`;
inside any other request the middleware screens, a signup raises too (its path is missing from
``signup_paths``, so no sticky cookie could be written for a child).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, Final

from .errors import ConfigurationError, UnderAgeError

if TYPE_CHECKING:
    from .decisions import Attestation, Decision
    from .policy import AgePolicy

__all__ = ["SCOPE_ATTR", "Place", "mark", "scope_of", "signup_place", "unmark"]

#: The attribute under which a framework integration that has no ASGI scope (Django under WSGI)
#: hangs the scope-like mapping it made for a request.
SCOPE_ATTR = "agegate_scope"
#: The context of a request the middleware passed on without treating it as a signup.
_NOT_SIGNUP: Final[tuple[()]] = ()
#: Per gate (two gated apps may be nested), the notes list of the signup request being handled,
#: or ``_NOT_SIGNUP``. Replaced, never changed in place: a copied context keeps its own.
_REQUEST: ContextVar[dict[object, list[Decision] | tuple[()]]] = ContextVar("agegate_request")


def scope_of(request: Any) -> MutableMapping[str, Any]:
    """The ASGI scope of ``request``: the scope itself, a request's ``scope`` attribute, or the
    scope-like mapping a framework integration attached; :class:`ConfigurationError` otherwise."""
    if isinstance(request, MutableMapping):
        return request
    for name in (SCOPE_ATTR, "scope"):
        found = getattr(request, name, None)
        if isinstance(found, MutableMapping):
            return found
    raise ConfigurationError(
        f"scope= takes a request carrying its ASGI scope (Starlette, FastAPI, Litestar, Quart, Django "
        f"behind agegate.django) or the scope itself, not a {type(request).__name__}"
    )


def mark(gate: object, notes: list[Decision] | None) -> Token[Any]:
    """Mark the current context as a request ``gate``'s middleware passes on: a signup request
    whose decisions go to ``notes``, or (``None``) any other request. Undo with :func:`unmark`.

    (Plain functions, not a context manager: this runs on the middleware's pass path.)"""
    value: list[Decision] | tuple[()] = _NOT_SIGNUP if notes is None else notes
    current = _REQUEST.get(None)
    return _REQUEST.set({gate: value} if current is None else {**current, gate: value})


def unmark(token: Token[Any]) -> None:
    """Undo a :func:`mark`."""
    _REQUEST.reset(token)


class Place:
    """Where the decisions of one signup are recorded (see :func:`signup_place`)."""

    __slots__ = ("_notes", "_scope")

    def __init__(self, scope: MutableMapping[str, Any] | None, notes: list[Decision] | None) -> None:
        self._scope = scope
        self._notes = notes

    async def recorded(self, attempt: Callable[[], Awaitable[Attestation]], policy: AgePolicy) -> Attestation:
        """The result of the signup ``attempt()`` under ``policy``, its decision recorded here
        (an under-age one as well, before :class:`~agegate.UnderAgeError` goes on)."""
        from .decisions import Decision

        try:
            attestation = await attempt()
        except UnderAgeError:
            self.record(Decision.of("under_age", policy))
            raise
        self.record(Decision.of(attestation.outcome, policy))
        return attestation

    def record(self, decision: Decision) -> None:
        """Tell the middleware (and the app, as ``scope["agegate"]``) about ``decision``."""
        from .decisions import NOTES_KEY, record_decision

        if self._scope is not None:
            record_decision(self._scope, decision)
            if self._notes is None or self._notes is self._scope.get(NOTES_KEY):
                return
        if self._notes is not None:
            self._notes.append(decision)


def signup_place(gate: object, scope: Any) -> Place:
    """Where a signup on ``gate`` told ``scope`` (a request, a scope, or ``None``) records its
    decision.

    Raises :class:`ConfigurationError` for a signup the middleware would not hear of: one inside
    a signup request that was not given ``scope=``, and one inside a request the middleware did
    not treat as a signup. Called before anything is screened or stored.
    """
    current = _REQUEST.get({}).get(gate)
    if current is _NOT_SIGNUP:
        raise ConfigurationError(
            "gate.signup() ran in a request the age gate did not treat as a signup, so it could not "
            "set the browser's cookie: add this path to signup_paths="
        )
    if scope is None:
        if current is not None:
            raise ConfigurationError(
                "gate.signup() ran in a signup request without scope=: pass the request "
                "(gate.signup(fields, subject=..., scope=request)) so the age gate sets the cookie"
            )
        return Place(None, None)
    return Place(scope_of(scope), current if isinstance(current, list) else None)
