"""Signups in Django views and forms: the age screen before the account is saved.

::

    def register(request):
        form = SignupForm(request.POST)
        if form.is_valid():
            try:
                fields = agegate.django.signup(request, form.cleaned_data,
                                               subject=new_id, identifier_fields=["email"])
            except UnderAgeError:
                return render(request, "refused.html", status=403)
            User.objects.create(...)   # only now

The decision reaches the middleware through the request (the path must be one of
``signup_paths``), which then sets the browser's cookie: a sticky one for a child.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Iterable, Mapping
from datetime import date, datetime
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.http import HttpRequest

from ..signup import Identifiers, Subject, prepare_signup, without_birth_date
from .config import get_gate

__all__ = ["asignup", "signup"]

P = ParamSpec("P")
T = TypeVar("T")


def _text(fields: Mapping[str, Any]) -> dict[str, str]:
    """Form data as text: a Django ``QueryDict`` keeps the last value of a field; a cleaned
    ``DateField`` reads as an ISO date; fields without a value are left out."""
    items = fields.dict().items() if hasattr(fields, "dict") else fields.items()
    out: dict[str, str] = {}
    for name, value in items:
        if isinstance(value, date | datetime):
            out[name] = value.isoformat()[:10]
        elif isinstance(value, str | int) and not isinstance(value, bool):
            out[name] = str(value)
    return out


def signup(
    request: HttpRequest,
    fields: Mapping[str, Any],
    *,
    subject: Subject,
    identifiers: Identifiers = None,
    identifier_fields: Iterable[str] = (),
) -> dict[str, str]:
    """Screen a signup in a sync view (:meth:`AgeGate.signup_sync <agegate.AgeGate.signup_sync>`);
    returns the fields (as text) without the birth-date fields. ``fields`` is ``request.POST``
    or a form's ``cleaned_data``; the rest is :func:`agegate.signup.signup_fields`'. Raises
    :class:`~agegate.InvalidSignupForm`, :class:`~agegate.InvalidBirthDate` and
    :class:`~agegate.UnderAgeError`."""
    gate = get_gate()
    checked, account, named = prepare_signup(gate, _text(fields), subject, identifiers, identifier_fields)
    # A screen result the browser already has (the middleware's request.agegate) counts.
    decision = getattr(request, "agegate", None)
    gate.signup_sync(checked, subject=account, identifiers=named, decision=decision, scope=request)
    return without_birth_date(checked)


def _for_async_views(helper: Callable[P, T], name: str, doc: str) -> Callable[P, Coroutine[Any, Any, T]]:
    """``helper`` for async views, named ``name``, documented by ``doc``."""
    # The gate's store lives on the gate's own loop thread (agegate.syncloop): wait for it in a
    # worker thread, which carries this request's context (the middleware's mark) along.
    in_worker = sync_to_async(helper, thread_sensitive=False)

    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        return await in_worker(*args, **kwargs)

    functools.update_wrapper(call, helper)  # the signature (inspect follows __wrapped__)
    call.__name__ = call.__qualname__ = name
    call.__doc__ = doc
    return call


asignup = _for_async_views(signup, "asignup", ":func:`signup` for async views.")
