"""The exception hierarchy: everything agegate raises derives from :class:`AgeGateError`.

Messages are written for a person to act on and never carry personal data (birth dates,
identifiers) or key and token material.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "RETRY_AFTER",
    "USAGE_ERRORS",
    "AgeGateError",
    "ClientGone",
    "ConfigurationError",
    "CoverageError",
    "CredentialRefused",
    "FormRefused",
    "InvalidAccountId",
    "InvalidBirthDate",
    "InvalidBirthDateCode",
    "InvalidInput",
    "InvalidReceipt",
    "InvalidReport",
    "InvalidSignal",
    "InvalidSignupForm",
    "InvalidSignupFormCode",
    "InvalidToken",
    "KeyringError",
    "KeyringMismatch",
    "NoDatabaseKnown",
    "PurgeError",
    "ReportError",
    "StoreError",
    "StoreUnavailable",
    "UnderAgeError",
    "UsageError",
    "VacuumError",
]

InvalidBirthDateCode = Literal["empty", "malformed", "impossible", "future", "implausible", "too_long"]


class AgeGateError(Exception):
    """Base class of every error agegate raises."""


class ConfigurationError(AgeGateError, ValueError):
    """agegate was set up with an option it cannot use (a bad key, URL, policy or pattern)."""


class InvalidInput(AgeGateError, ValueError):
    """A value given to one call cannot be used (an account id, a birth date, an age signal, a
    report's field): the caller's input, not agegate's setup. The message never repeats the
    value. The ``agegate`` command reports it as bad usage (exit status 2)."""


class InvalidAccountId(InvalidInput):
    """An account id that no entry point accepts (see :func:`agegate.accounts.check_account_id`):
    empty, too long, with spaces around it or invisible characters, or not in the app's format.
    The message never repeats the id."""


class KeyringError(ConfigurationError):
    """The secret keys are missing, too short or not in ``keyid:base64key`` form."""


class KeyringMismatch(KeyringError):
    """The keyring does not fit the store: it cannot read the store's records, or drops a key
    some of them still need. ``kids`` are the key ids concerned (never key material)."""

    def __init__(self, message: str, *, kids: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.kids = kids

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_mismatch, (type(self), self.message, self.kids))


def _rebuild_mismatch(cls: type[KeyringMismatch], message: str, kids: tuple[str, ...]) -> KeyringMismatch:
    return cls(message, kids=kids)


class InvalidBirthDate(InvalidInput):
    """The birth date given to the screen cannot be used.

    ``code`` says why, for programs; the message says it for people; ``reason`` names the
    message (a key of :data:`agegate.birthdate.MESSAGES`, for showing it in another language).
    """

    code: InvalidBirthDateCode

    def __init__(self, code: InvalidBirthDateCode, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason

    def __reduce__(self) -> tuple[type[InvalidBirthDate], tuple[InvalidBirthDateCode, str, str]]:
        return (type(self), (self.code, self.message, self.reason))


class InvalidSignal(InvalidInput):
    """An age signal (:class:`~agegate.AgeSignal`) cannot be used: bounds out of order, out of
    range or of the wrong type, or a platform payload not in its documented shape. The message
    names the field, never its value."""


class CredentialRefused(InvalidInput):
    """A digital-ID presentation was not accepted (:mod:`agegate.credentials`).

    ``code`` says why, for programs and logs (``malformed``, ``untrusted_issuer``,
    ``bad_signature``, ``expired``, ``wrong_nonce``, ``nonce_reused``, ``device_binding``,
    ``extra_claims``, ``no_age_claim``); the message says it for people. Neither carries any
    part of the presentation.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[type[CredentialRefused], tuple[str, str]]:
        return (type(self), (self.code, self.message))


class UnderAgeError(AgeGateError):
    """The person screened is under the policy's minimum age, or the account is blocked."""

    def __init__(self, message: str = "This service is not available.", *, reason: str = "under_age") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_under_age, (type(self), self.message, self.reason))


class InvalidToken(AgeGateError):
    """A sealed token could not be opened. Deliberately says nothing about why."""

    def __init__(self) -> None:
        super().__init__("invalid or expired token")

    def __reduce__(self) -> tuple[type[InvalidToken], tuple[()]]:
        return (type(self), ())


def _rebuild_under_age(cls: type[UnderAgeError], message: str, reason: str) -> UnderAgeError:
    return cls(message, reason=reason)


class StoreError(AgeGateError):
    """The store cannot be opened or used (bad URL, corrupt or foreign database, unavailable)."""


#: Seconds a client is asked to wait (``Retry-After``) when the store cannot answer.
RETRY_AFTER = 5


class StoreUnavailable(StoreError):
    """The store cannot answer now: unreachable, too slow (past the gate's ``store_timeout``),
    out of disk space or read-only. Nothing was half-written; try again later.

    ``retry_after`` is a suggested wait in seconds, for a ``Retry-After`` header. Answer a
    request that needed the store with ``503`` (the middleware does this itself).
    """

    def __init__(self, message: str = "The age gate's store is unavailable; try again shortly.") -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = RETRY_AFTER

    def __reduce__(self) -> tuple[type[StoreUnavailable], tuple[str]]:
        return (type(self), (self.message,))


class UsageError(AgeGateError):
    """Bad command-line usage: the ``agegate`` command reports it on one line, exit status 2.

    It lives here rather than in :mod:`agegate.cli` so that it is one class even when that
    module runs as ``python -m agegate.cli`` (and is then also imported under its own name)."""


#: What the ``agegate`` command reports as bad usage, exit status 2: its own usage errors and
#: per-call bad input (an account id, a birth date...). ``except USAGE_ERRORS``.
USAGE_ERRORS: tuple[type[AgeGateError], ...] = (UsageError, InvalidInput)


class ClientGone(AgeGateError):
    """The client went away before the whole request body arrived (read by the signup helpers;
    :mod:`agegate.bodies`)."""


class FormRefused(AgeGateError):
    """A body under the gate's prefix cannot be used (:mod:`agegate.asgi.forms`): ``status`` is
    the HTTP status to answer, ``error`` the JSON error code (also the message)."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error

    def __reduce__(self) -> tuple[type[FormRefused], tuple[int, str]]:
        return (type(self), (self.status, self.error))


class PurgeError(AgeGateError):
    """A purge could not finish. The message names the step or handler, never the account; the
    job (``job_id``) stays in the journal and ``agegate purge --resume`` finishes it."""

    def __init__(self, message: str, *, job_id: str = "") -> None:
        super().__init__(message)
        self.job_id = job_id


class ReportError(AgeGateError):
    """A report from a parent cannot be handled as asked (not found, already closed, its
    answer not delivered). The message names the report's reference, never what it says."""


class InvalidReport(ReportError, InvalidInput):
    """A field of a report cannot be used: ``field`` names it (``account``, ``relation``,
    ``contact``, ``details``), ``message`` says why for people. Never holds the value."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def __reduce__(self) -> tuple[type[InvalidReport], tuple[str, str]]:
        return (type(self), (self.field, self.message))


# -- purge: private control flow (caught inside agegate.purge, never raised to callers) ---------


class StepFailed(AgeGateError):
    """A purge step failed for a reason its message states (shown to the operator as it is);
    the runner turns it into a :class:`PurgeError`."""


class _LostLease(AgeGateError):
    """Another process took a purge job's lease over: this one stops writing to the job."""


class _DuplicateKey(AgeGateError):
    """A receipt's JSON repeats a key (the reader turns it into ``InvalidReceipt``)."""


# -- the command line (agegate.cli) --------------------------------------------------------------


class AppNotFound(UsageError, ConfigurationError):
    """``--app`` does not lead to an AgeGate (bad usage: exit status 2)."""


class JobNotFound(AgeGateError):
    """No purge job matches what was asked for."""


class NoMatch(AgeGateError):
    """The account id matched nothing anywhere (exit status 1); ``--allow-no-match`` purges it
    anyway."""


# -- stores: internal control flow, never raised out of a store --------------------------------


class _SQLiteBusy(AgeGateError):
    """The SQLite database was locked by another connection: retry after a pause on the event loop."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error


class _WriteConflict(AgeGateError):
    """A conditional write found the row changed: roll the transaction back."""


# -- signup forms (agegate.signup) ---------------------------------------------------------------

InvalidSignupFormCode = Literal["too_large", "unsupported_media_type", "malformed"]
_STATUS: dict[InvalidSignupFormCode, int] = {
    "too_large": 413,
    "unsupported_media_type": 415,
    "malformed": 400,
}


class InvalidSignupForm(InvalidInput):
    """The signup request body could not be read as a form.

    ``code`` is ``too_large``, ``unsupported_media_type`` or ``malformed``; ``status_code`` is
    the HTTP status to answer with (413, 415 or 400).
    """

    def __init__(self, code: InvalidSignupFormCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status_code = _STATUS[code]


# -- the purge: coverage, receipts, vacuum (agegate.purge) ---------------------------------------


class CoverageError(AgeGateError):
    """The coverage check could not read a database's catalog (the message names the database
    and the exception class only)."""


class NoDatabaseKnown(CoverageError, ConfigurationError):
    """No registered handler or exemption names a SQL database, so there is nothing the check
    could vouch for: a CI job must not pass on it."""


class InvalidReceipt(AgeGateError):
    """A receipt is malformed, or its signature does not verify under the key given."""


class VacuumError(AgeGateError):
    """A database could not be vacuumed (the message names it and the exception class only)."""
