"""Signup helpers: the age screen inside an app's own signup endpoint, in a few lines.

::

    @app.post("/signup")  # Starlette route or FastAPI path operation
    async def signup(request: Request) -> Response:
        try:
            fields = await signup_form(request, gate, subject=new_account_id(),
                                       identifier_fields=("email",))
        except InvalidBirthDate as exc:
            return JSONResponse({"error": "invalid_birth_date", "code": exc.code}, status_code=400)
        except UnderAgeError:
            return JSONResponse({"error": "age_restricted"}, status_code=403)
        create_account(fields)  # the birth-date fields are gone from ``fields``

The helpers screen the birth date, store only a keyed hash of an allowed result, and tell
:class:`~agegate.AgeGateMiddleware` the decision (:func:`~agegate.decisions.record_decision`) so that
it sets the browser's sealed cookie, a sticky one for an under-age result. Forms are read
without python-multipart: ``application/x-www-form-urlencoded`` (what an HTML form without
files sends) and JSON objects, up to :data:`MAX_BODY_BYTES`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from contextlib import aclosing
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from .asgi.forms import is_text
from .birthdate import BIRTH_FIELDS
from .bodies import ClientGone, body_chunks, check_readable
from .decisions import SCOPE_KEY
from .errors import InvalidAccountId, InvalidSignupForm
from .gate import AgeGate
from .hook import scope_of
from .regions import REGION_KEY

__all__ = ["MAX_BODY_BYTES", "InvalidSignupForm", "read_form", "signup_fields", "signup_form"]

#: The largest signup body :func:`read_form` accepts, in bytes.
MAX_BODY_BYTES = 64 * 1024
#: The most fields :func:`read_form` accepts in one body.
MAX_FIELDS = 200

Subject = str | Callable[[Mapping[str, str]], str]
Identifiers = Mapping[str, str] | Callable[[Mapping[str, str]], Mapping[str, str]] | None


async def read_form(request: Any, *, max_bytes: int = MAX_BODY_BYTES) -> dict[str, str]:
    """Read an urlencoded form or a JSON object of strings from ``request``, at most
    ``max_bytes`` long; a repeated field keeps its last value.

    ``request`` is a Starlette, FastAPI, Litestar, Quart or Django request (see
    :func:`agegate.bodies.body_chunks`). The body is consumed: use the returned fields. Raises
    :class:`InvalidSignupForm`, and :class:`~agegate.ConfigurationError` for a request whose
    body it cannot read.
    """
    check_readable(request)
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type not in ("application/x-www-form-urlencoded", "application/json"):
        raise InvalidSignupForm(
            "unsupported_media_type",
            "Send the signup form as application/x-www-form-urlencoded or application/json.",
        )
    declared = request.headers.get("content-length")
    # ASCII digits only (str.isdigit also takes "²"), and short: int() of a huge one is refused.
    if (
        declared is not None
        and declared.isascii()
        and declared.isdigit()
        and len(declared) < 20
        and int(declared) > max_bytes
    ):
        raise InvalidSignupForm("too_large", "The signup form is too large.")
    body = bytearray()
    try:
        async with aclosing(body_chunks(request, max_bytes + 1)) as stream:
            async for chunk in stream:
                body += chunk
                if len(body) > max_bytes:
                    raise InvalidSignupForm("too_large", "The signup form is too large.")
    except ClientGone:
        raise InvalidSignupForm("malformed", "The signup form was not sent completely.") from None
    if media_type == "application/json":
        return _json_fields(bytes(body))
    return _urlencoded_fields(bytes(body))


def _urlencoded_fields(body: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidSignupForm("malformed", "The signup form could not be read.") from None
    return _checked(dict(pairs))


def _json_fields(body: bytes) -> dict[str, str]:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: [[[[...
        raise InvalidSignupForm("malformed", "The signup form is not valid JSON.") from None
    if not isinstance(data, dict) or len(data) > MAX_FIELDS:
        raise InvalidSignupForm("malformed", "The signup form must be a JSON object of fields.")
    fields: dict[str, str] = {}
    for name, value in data.items():
        if isinstance(value, bool) or value is None:
            raise InvalidSignupForm("malformed", "Each signup field must be text or a number.")
        if isinstance(value, int | float | str):
            fields[name] = str(value)
        else:
            raise InvalidSignupForm("malformed", "Each signup field must be text or a number.")
    return _checked(fields)


def _checked(fields: Mapping[str, str]) -> dict[str, str]:
    """``fields`` as a dict, or :class:`InvalidSignupForm` when a name or value is not text (a
    lone surrogate, which JSON escapes can carry, or a control character): nothing of such a
    form may reach the app's database."""
    for name, value in fields.items():
        if any(isinstance(text, str) and not is_text(text) for text in (name, value)):
            raise InvalidSignupForm("malformed", "The signup form holds characters that are not text.")
    return dict(fields)


async def signup_fields(
    request: Any,
    gate: AgeGate,
    fields: Mapping[str, str],
    *,
    subject: Subject,
    identifiers: Identifiers = None,
    identifier_fields: Iterable[str] = (),
    now: datetime | None = None,
    region: str | None = None,
) -> dict[str, str]:
    """Run :meth:`AgeGate.signup <agegate.AgeGate.signup>` on fields the app already read, tell
    the middleware the decision, and return the fields without the birth-date fields.

    A browser that has just passed the screen under the gate's policy (the middleware's
    decision in ``scope["agegate"]``, see :meth:`AgeGate.passed <agegate.AgeGate.passed>`)
    needs no birth-date fields: that result is recorded. Birth-date fields sent anyway are
    screened, and an under-age answer wins.

    ``subject`` is the new account's id, or a function of the fields giving it. The identifiers
    checked against blocked (purged child) accounts are ``identifiers`` (a mapping of kind to
    value, or a function of the fields giving one) plus the fields named in
    ``identifier_fields`` (the field name is the kind: ``"email"``, ``"phone"``, ``"username"``).
    ``region`` picks the policy; by default it is the region the middleware's ``region=``
    function gave for this request (the gate's own policy without one).

    Raises :class:`InvalidSignupForm` (a field name or value that is not text: a lone
    surrogate or a control character), :class:`~agegate.InvalidBirthDate` (nothing recorded) and
    :class:`~agegate.UnderAgeError` (the under-age decision is recorded for the middleware;
    nothing is stored server-side). Persist nothing of the signup before this returns.
    """
    fields, account, named = prepare_signup(gate, fields, subject, identifiers, identifier_fields)
    scope = scope_of(request)
    await gate.signup(
        fields,
        subject=account,
        identifiers=named,
        now=now,
        decision=scope.get(SCOPE_KEY),
        region=scope.get(REGION_KEY) if region is None else region,
        scope=request,
    )
    return without_birth_date(fields)


def prepare_signup(
    gate: AgeGate,
    fields: Mapping[str, str],
    subject: Subject,
    identifiers: Identifiers,
    identifier_fields: Iterable[str],
) -> tuple[dict[str, str], str, dict[str, str]]:
    """The checked fields, the account id and the identifiers of a signup (see
    :func:`signup_fields`); raises :class:`InvalidSignupForm`."""
    fields = _checked(fields)  # the app may have read the form itself
    if callable(subject):
        try:
            account = subject(fields)
        except (KeyError, ValueError, TypeError):
            account = None
        try:
            account = gate.account_id(account)  # the one rule every entry point applies
        except InvalidAccountId:
            # The account id came from the form: a missing or unusable one is the form's fault.
            raise InvalidSignupForm(
                "malformed", "The signup form is missing a usable account name."
            ) from None
    else:
        account = subject
    named = dict(identifiers(fields) if callable(identifiers) else identifiers or {})
    for name in identifier_fields:
        value = fields.get(name)
        if value:
            named[name] = value
    return fields, account, named


def without_birth_date(fields: Mapping[str, str]) -> dict[str, str]:
    """``fields`` without the birth-date fields: what the app may store."""
    return {name: value for name, value in fields.items() if name not in BIRTH_FIELDS}


async def signup_form(
    request: Any,
    gate: AgeGate,
    *,
    subject: Subject,
    identifiers: Identifiers = None,
    identifier_fields: Iterable[str] = (),
    max_bytes: int = MAX_BODY_BYTES,
    now: datetime | None = None,
    region: str | None = None,
) -> dict[str, str]:
    """Read the signup form from ``request`` (:func:`read_form`) and screen it
    (:func:`signup_fields`); returns the form's fields without the birth-date fields.

    Raises :class:`InvalidSignupForm`, :class:`~agegate.InvalidBirthDate` or
    :class:`~agegate.UnderAgeError`, for the app to render.
    """
    fields = await read_form(request, max_bytes=max_bytes)
    return await signup_fields(
        request,
        gate,
        fields,
        subject=subject,
        identifiers=identifiers,
        identifier_fields=identifier_fields,
        now=now,
        region=region,
    )
