"""agegate: a neutral age screen, an ASGI gate and a purge routine for COPPA-style rules."""

from typing import TYPE_CHECKING, Any

from .asgi import AgeGateMiddleware, Pages
from .decisions import Attestation, Decision
from .errors import (
    AgeGateError,
    ConfigurationError,
    CredentialRefused,
    InvalidBirthDate,
    InvalidReport,
    InvalidSignal,
    InvalidToken,
    KeyringError,
    KeyringMismatch,
    ReportError,
    StoreError,
    StoreUnavailable,
    UnderAgeError,
)
from .gate import AgeGate
from .keys import Keyring
from .policy import AgePolicy
from .regions import PolicyTable, RegionRule, region_from_header
from .signals import AgeSignal, lower_wins
from .signup import InvalidSignupForm, signup_fields, signup_form
from .stores import open_store

if TYPE_CHECKING:
    from .purge import PurgeError, PurgeReport
    from .reports import Delivery

__all__ = [
    "AgeGate",
    "AgeGateError",
    "AgeGateMiddleware",
    "AgePolicy",
    "AgeSignal",
    "Attestation",
    "ConfigurationError",
    "CredentialRefused",
    "Decision",
    "Delivery",
    "InvalidBirthDate",
    "InvalidReport",
    "InvalidSignal",
    "InvalidSignupForm",
    "InvalidToken",
    "Keyring",
    "KeyringError",
    "KeyringMismatch",
    "Pages",
    "PolicyTable",
    "PurgeError",
    "PurgeReport",
    "RegionRule",
    "ReportError",
    "StoreError",
    "StoreUnavailable",
    "UnderAgeError",
    "lower_wins",
    "open_store",
    "region_from_header",
    "signup_fields",
    "signup_form",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # PEP 562: the purge and report code loads when first asked for, not with every app that
    # gates requests.
    if name in ("PurgeError", "PurgeReport"):
        from . import purge

        return getattr(purge, name)
    if name == "Delivery":
        from .reports import Delivery

        return Delivery
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
