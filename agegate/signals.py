"""Age signals: an age range in whole years that a platform (or the app) vouches for, and the one
rule by which every age input meets the policy.

A signal never carries a birth date: Google Play's Age Signals API, Apple's Declared Age Range
and the brackets of California's Digital Age Assurance Act (AB 1043) all hand the app a range.
:meth:`AgeSignal.outcome_under` places a range against a policy's minimum age: wholly below it is
``under_age``, wholly at or above it is ``allowed``, and a range that straddles it decides
nothing (the visitor is screened as before). A platform refreshes its range some weeks after a
birthday, so a stale range only ever reads younger than the person is: the safe direction.

When inputs disagree (a signal, a typed date, the cookie, an account's attestation), the lower
age wins: :func:`lower_wins`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from .errors import InvalidSignal
from .tokens import Outcome

if TYPE_CHECKING:
    from .decisions import Decision
    from .policy import AgePolicy

__all__ = ["APPLE", "CA_AB1043", "GOOGLE_PLAY", "MAX_SIGNAL_AGE", "AgeSignal", "lower_wins"]

#: Source names of the platforms whose shapes :class:`AgeSignal` reads.
GOOGLE_PLAY: Final = "google-play"
APPLE: Final = "apple-declared-age-range"
CA_AB1043: Final = "ca-ab1043"
#: Highest bound a signal may carry, in whole years.
MAX_SIGNAL_AGE = 150
_SOURCE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}", re.ASCII)

# Play Age Signals API ``userStatus`` values (developer.android.com/google/play/age-signals).
# ``UNKNOWN`` (or no status: Play answers only where a law requires it) carries no age.
_PLAY_VERIFIED = "VERIFIED"
_PLAY_NO_AGE = frozenset({"UNKNOWN", ""})
_PLAY_STATUSES = frozenset(
    {
        _PLAY_VERIFIED,
        "DECLARED",
        "SUPERVISED",
        "SUPERVISED_APPROVAL_PENDING",
        "SUPERVISED_APPROVAL_DENIED",
        *_PLAY_NO_AGE,
    }
)
#: Play's adult band: a ``VERIFIED`` user without ``ageLower`` is verified to be at least this old.
_PLAY_ADULT = 18
# Apple ``AgeRangeService.AgeRangeDeclaration`` cases that say the range was checked, not declared
# (``confirmed``: "a scrutinized method, like a credit card or government ID").
_APPLE_CHECKED = frozenset({"confirmed", "governmentIDChecked"})
# AB 1043's four brackets (Civil Code 1798.500 ff.): under 13, 13-15, 16-17, 18 and over.
_AB1043: dict[str, tuple[int, int | None]] = {
    "under-13": (0, 12),
    "0-12": (0, 12),
    "13-15": (13, 15),
    "16-17": (16, 17),
    "18+": (18, None),
    "18-plus": (18, None),
}


@dataclass(frozen=True, slots=True)
class AgeSignal:
    """An age range in whole years, inclusive at both ends, from a named ``source``.

    ``lower=None`` means no lower bound (read as 0); ``upper=None`` means no upper bound; one of
    them must be given. ``source`` is ``"google-play"``, ``"apple-declared-age-range"``,
    ``"ca-ab1043"`` or the app's own name (lower-case letters, digits, ``.``, ``_``, ``-``).
    ``verified`` says the platform checked the age rather than took a declaration; the gate's
    decision does not depend on it. Nothing of a signal is ever stored: see
    :meth:`agegate.AgeGate.record_signal`. Bad values raise :class:`~agegate.InvalidSignal`.
    """

    lower: int | None
    upper: int | None
    source: str
    verified: bool = False

    def __post_init__(self) -> None:
        for name in ("lower", "upper"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidSignal(f"an age signal's {name} bound must be a whole number of years")
            if not 0 <= value <= MAX_SIGNAL_AGE:
                raise InvalidSignal(f"an age signal's {name} bound must be between 0 and {MAX_SIGNAL_AGE}")
        if self.lower is None and self.upper is None:
            raise InvalidSignal("an age signal needs a lower or an upper bound")
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise InvalidSignal("an age signal's lower bound is above its upper bound")
        if not isinstance(self.source, str) or _SOURCE.fullmatch(self.source) is None:
            raise InvalidSignal(
                "an age signal's source must be 1-64 lower-case letters, digits, '.', '_' or '-'"
            )
        if not isinstance(self.verified, bool):
            raise InvalidSignal("an age signal's verified flag must be True or False")

    def outcome_under(self, policy: AgePolicy) -> Outcome | None:
        """``"under_age"`` when the whole range is below ``policy.min_age``, ``"allowed"`` when
        the whole range is at or above it, ``None`` when it straddles the threshold."""
        if self.upper is not None and self.upper < policy.min_age:
            return "under_age"
        if (self.lower or 0) >= policy.min_age:
            return "allowed"
        return None

    @classmethod
    def from_google_play(cls, result: Mapping[str, Any]) -> AgeSignal | None:
        """A signal from a Play Age Signals API result, as the app's client posts it:
        ``userStatus`` (``VERIFIED``, ``DECLARED``, ``SUPERVISED``,
        ``SUPERVISED_APPROVAL_PENDING``, ``SUPERVISED_APPROVAL_DENIED``, ``UNKNOWN``) and the
        inclusive ``ageLower`` / ``ageUpper`` (default bands 0-12, 13-15, 16-17, 18+, or custom
        ones; ``ageUpper`` is absent for 18 and over). ``installId`` and the approval dates are
        ignored, never kept.

        ``None`` when Play gave no age (``UNKNOWN``, or no status: Play answers only where a law
        requires it). A ``VERIFIED`` result without ``ageLower`` reads as verified 18 and over;
        any other status without ``ageLower`` is refused, as is an unknown status.
        """
        if not isinstance(result, Mapping):
            raise InvalidSignal("a Play Age Signals result must be a JSON object")
        status = result.get("userStatus")
        if status is None:
            status = ""
        if not isinstance(status, str) or status not in _PLAY_STATUSES:
            raise InvalidSignal("a Play Age Signals result has an unknown userStatus")
        if status in _PLAY_NO_AGE:
            return None
        verified = status == _PLAY_VERIFIED
        lower, upper = result.get("ageLower"), result.get("ageUpper")
        if lower is None:
            if not verified or upper is not None:
                raise InvalidSignal("a Play Age Signals result with this userStatus needs ageLower")
            return cls(_PLAY_ADULT, None, GOOGLE_PLAY, verified=True)
        return cls(lower, upper, GOOGLE_PLAY, verified=verified)

    @classmethod
    def from_apple(cls, age_range: Mapping[str, Any]) -> AgeSignal:
        """A signal from Apple's Declared Age Range (``AgeRangeService.AgeRange``), as the app's
        client posts it: ``lowerBound`` and ``upperBound`` (each an integer or null) and
        ``ageRangeDeclaration`` (``selfDeclared``, ``guardianDeclared``, ``confirmed``, …).

        A null ``lowerBound`` means below the app's lowest age gate (read as 0); a null
        ``upperBound`` means at or above its highest. Apple calls ``upperBound`` "the maximum
        age in the person's declared age range" and it is read so, inclusively: where the
        documentation could be read as exclusive, this reading only ever makes a range touch the
        threshold and straddle it (screened as before), never wrongly allowed or under age.
        ``verified`` is true for the checked declarations (``confirmed``,
        ``governmentIDChecked``). A response without a range (``declinedSharing``) is no signal:
        do not call this for it.
        """
        if not isinstance(age_range, Mapping):
            raise InvalidSignal("a Declared Age Range must be a JSON object")
        declaration = age_range.get("ageRangeDeclaration")
        if declaration is not None and not isinstance(declaration, str):
            raise InvalidSignal("a Declared Age Range's ageRangeDeclaration must be a string")
        return cls(
            age_range.get("lowerBound"),
            age_range.get("upperBound"),
            APPLE,
            verified=declaration in _APPLE_CHECKED,
        )

    @classmethod
    def from_ab1043(cls, bracket: str) -> AgeSignal:
        """A signal from a California AB 1043 age bracket: ``"under-13"``, ``"13-15"``,
        ``"16-17"`` or ``"18+"`` (case, spaces and ``_`` for ``-`` are forgiven; ``"0-12"`` and
        ``"18-plus"`` too). The Act defines the four brackets, not how they travel: an
        operating system's or store's own field names are the app's to map onto these."""
        if not isinstance(bracket, str) or len(bracket) > 16:
            raise InvalidSignal("an AB 1043 age bracket must be one of under-13, 13-15, 16-17, 18+")
        key = re.sub(r"[\s_\u2013]+", "-", bracket.strip().lower())
        if key not in _AB1043:
            raise InvalidSignal("an AB 1043 age bracket must be one of under-13, 13-15, 16-17, 18+")
        lower, upper = _AB1043[key]
        return cls(lower, upper, CA_AB1043)


def lower_wins(*results: Decision | str | None) -> Outcome | None:
    """The one rule when age inputs disagree: ``"under_age"`` if any input says so, else
    ``"allowed"`` if any does, else ``None`` (nothing decided: screen).

    Each input is a :class:`~agegate.Decision`, an outcome or status string (``"allowed"``,
    ``"under_age"``, ``"unknown"``) or ``None`` (a straddling signal, no cookie). An under-age
    result from any source stays under age."""
    outcomes = {getattr(r, "outcome", r) for r in results}
    if "under_age" in outcomes:
        return "under_age"
    if "allowed" in outcomes:
        return "allowed"
    return None
