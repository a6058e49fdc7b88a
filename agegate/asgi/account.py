"""The app's functions of the ASGI scope that the gate calls on a gated request: the logged-in
account (``subject=``) and the visitor's region (``region=``), each plain or async; and what the
account's stored attestation says, or an under-age signal recorded against it."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.types import Scope

from ..errors import (
    AgeGateError,
    InvalidInput,
    KeyringError,
    StoreError,
    StoreUnavailable,
)
from ..gate import AgeGate, Status
from ..regions import RegionFunc

if TYPE_CHECKING:
    from ..signals import AgeSignal

__all__ = [
    "BROKEN_RETRY_AFTER",
    "SubjectFunc",
    "account_of",
    "account_status",
    "record_under_age",
    "region_of",
]

SubjectFunc = Callable[[Scope], str | None] | Callable[[Scope], Awaitable[str | None]]

_log = logging.getLogger("agegate.asgi")
#: Retry-After, in seconds, when the store cannot be used until someone mends it.
BROKEN_RETRY_AFTER = 60
_WRONG = "the age gate refused a request: %s= returned %s, not %s (a string) or None"
#: The type only: the exception's message could quote the account id.
_RAISED = "the age gate refused a request: its %s= function raised %s"


def _refusal(message: str, *args: object) -> StoreUnavailable:
    """The refusal of a request the gate cannot decide for now: ``message`` logged for the
    operator (it names no person), answered as an outage (503, :data:`BROKEN_RETRY_AFTER`),
    never by letting the request through."""
    _log.error(message, *args)
    broken = StoreUnavailable()
    broken.retry_after = BROKEN_RETRY_AFTER
    return broken


async def _answer(func: Callable[[Scope], Any], scope: Scope, what: str) -> Any:
    """What the app's function ``what=`` gives for the request, awaited if need be; when it
    raises, :class:`~agegate.StoreUnavailable` (logged by the exception's type only)."""
    try:
        value = func(scope)
        if inspect.isawaitable(value):
            value = await value
    except Exception as exc:
        raise _refusal(_RAISED, what, type(exc).__name__) from None
    return value


async def region_of(func: RegionFunc, scope: Scope) -> str | None:
    """The region code ``func`` gives for the request (``None``: the gate's own policy).
    Raises :class:`~agegate.StoreUnavailable` (logged) when it raises or gives something else:
    the app's function is wrong, and the request is refused until it is mended."""
    code = await _answer(func, scope, "region")
    if code is not None and not isinstance(code, str):
        raise _refusal(_WRONG, "region", type(code).__name__, "a region code")
    return code


async def account_of(func: SubjectFunc | None, scope: Scope) -> str | None:
    """The logged-in account ``func`` gives for the request, or ``None``. Raises
    :class:`~agegate.StoreUnavailable` (logged) when it raises or gives something else."""
    return None if func is None else _account(await _answer(func, scope, "subject"))


def _account(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _refusal(_WRONG, "subject", type(value).__name__, "an account id")
    return value


async def account_status(
    gate: AgeGate, subject: SubjectFunc, scope: Scope, region: str | None
) -> Status | None:
    """What the stored attestation of the account logged in (``subject``) says under the
    policy of ``region``; ``None`` when no account is logged in.

    Raises :class:`~agegate.StoreUnavailable` when the store cannot answer: now (its own
    ``retry_after``), or at all (a keyring that does not fit it, a damaged file: said loudly
    for the operator, with :data:`BROKEN_RETRY_AFTER`), and when ``subject`` is wrong (see
    :func:`account_of`)."""
    # (account_of, inline: this runs on every request of a logged-in visitor.)
    try:
        account: Any = subject(scope)
        if account is not None and type(account) is not str and inspect.isawaitable(account):
            account = await account
    except Exception as exc:
        raise _refusal(_RAISED, "subject", type(exc).__name__) from None
    if type(account) is not str:
        account = _account(account)  # None, or refused
    if not account:
        return None
    try:
        return gate.peek_status(account, region=region) or await gate.cached_status(account, region=region)
    except StoreUnavailable:
        raise
    except InvalidInput as exc:  # its message never repeats the id
        raise _refusal("the age gate refused a request: subject= gave an id it refuses (%s)", exc) from None
    except (StoreError, KeyringError) as exc:
        # The message names no person (key ids and store errors only).
        raise _refusal("the age gate cannot read its store: %s", exc) from None


async def record_under_age(
    gate: AgeGate, subject: SubjectFunc | None, scope: Scope, signal: AgeSignal, region: str | None
) -> None:
    """Record an under-age signal against the account logged in (``subject``), if any (actual
    knowledge). A failure is logged and swallowed: the request is refused anyway, and the next
    one tries again."""
    try:
        account = await account_of(subject, scope)
    except StoreUnavailable:
        return  # the subject function is wrong, and that was said
    if not account:
        return
    try:
        # Once recorded, the account's cached status says so: no write (and no revision bump
        # for every worker) on each request the child's device makes.
        known = gate.peek_status(account) or await gate.cached_status(account)
        if known != "under_age":
            await gate.record_signal(account, signal, region=region)
    except AgeGateError as exc:
        _log.error("the age gate could not record an under-age signal: %s", type(exc).__name__)
