"""agegate: a neutral age screen, an ASGI gate and a purge routine for COPPA-style rules."""

from typing import TYPE_CHECKING, Any

from .asgi import AgeGateMiddleware, Pages
from .decisions import Attestation, Decision
from .errors import (
    AgeGateError,
    ConfigurationError,
    CoverageError,
    CredentialRefused,
    InvalidAccountId,
    InvalidBirthDate,
    InvalidInput,
    InvalidReceipt,
    InvalidReport,
    InvalidSignal,
    InvalidToken,
    KeyringError,
    KeyringMismatch,
    NoDatabaseKnown,
    PurgeError,
    ReportError,
    StoreError,
    StoreUnavailable,
    UnderAgeError,
    VacuumError,
)
from .gate import AgeGate
from .keys import Keyring
from .policy import AgePolicy
from .regions import PolicyTable, RegionRule, region_from_header
from .signup import InvalidSignupForm, signup_fields, signup_form
from .stores import open_store

if TYPE_CHECKING:
    from .handlers import AccountFiles, PostgresDatabase, SQLiteDatabase
    from .purge import PurgeReport
    from .reports import Delivery
    from .signals import AgeSignal, lower_wins

__all__ = [
    "AccountFiles",
    "AgeGate",
    "AgeGateError",
    "AgeGateMiddleware",
    "AgePolicy",
    "AgeSignal",
    "Attestation",
    "ConfigurationError",
    "CoverageError",
    "CredentialRefused",
    "Decision",
    "Delivery",
    "InvalidAccountId",
    "InvalidBirthDate",
    "InvalidInput",
    "InvalidReceipt",
    "InvalidReport",
    "InvalidSignal",
    "InvalidSignupForm",
    "InvalidToken",
    "Keyring",
    "KeyringError",
    "KeyringMismatch",
    "NoDatabaseKnown",
    "Pages",
    "PolicyTable",
    "PostgresDatabase",
    "PurgeError",
    "PurgeReport",
    "RegionRule",
    "ReportError",
    "SQLiteDatabase",
    "StoreError",
    "StoreUnavailable",
    "UnderAgeError",
    "VacuumError",
    "lower_wins",
    "open_store",
    "region_from_header",
    "signup_fields",
    "signup_form",
]
__version__ = "0.1.0"


def __dir__() -> list[str]:
    # The names loaded when first asked for (see __getattr__) are listed too.
    return sorted({*globals(), *__all__})


def __getattr__(name: str) -> Any:
    # PEP 562: the purge and report code loads when first asked for, not with every app that
    # gates requests.
    if name == "PurgeReport":
        from .purge import PurgeReport

        return PurgeReport
    if name in ("AccountFiles", "PostgresDatabase", "SQLiteDatabase"):
        # The purge handlers for SQL tables and files: loaded when first asked for, too.
        from . import handlers

        return getattr(handlers, name)
    if name in ("AgeSignal", "lower_wins"):
        # Age signals: loaded by an app that reads them (signal=, gate.screen_signal).
        from . import signals

        return getattr(signals, name)
    if name == "Delivery":
        from .reports import Delivery

        return Delivery
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
