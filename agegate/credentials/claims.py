"""The one claim a digital ID may disclose to the gate, ``age_over_NN``, and what it means under
a policy's minimum age."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ..errors import CredentialRefused
from ..tokens import Outcome

__all__ = ["AGE_OVER", "Presentation", "age_claim_name", "outcome_of"]

#: ``age_over_NN``: the only element or disclosure a presentation may carry.
AGE_OVER = re.compile(r"age_over_([1-9][0-9]?)", re.ASCII)
Format = Literal["mso_mdoc", "dc+sd-jwt"]


@dataclass(frozen=True, slots=True)
class Presentation:
    """A verified presentation: its format and the age claim it disclosed (``age_over_NN`` is
    ``value``). Nothing else about the holder is kept."""

    format: Format
    age_over: int
    value: bool


def age_claim_name(min_age: int) -> str:
    """The claim the gate asks for under a policy of minimum age ``min_age``."""
    return f"age_over_{min_age}"


def age_over(name: object) -> int | None:
    """``NN`` of an ``age_over_NN`` claim name, or ``None`` for any other name."""
    found = AGE_OVER.fullmatch(name) if isinstance(name, str) else None
    return int(found.group(1)) if found else None


def outcome_of(presentation: Presentation, min_age: int) -> Outcome:
    """``allowed`` or ``under_age`` under minimum age ``min_age``.

    A wallet without the exact ``age_over_NN`` asked for may answer the nearest one it has
    (ISO 18013-5 §7.2.5): ``age_over_18: true`` also means over 13, ``age_over_12: false`` also
    means under 13. A claim that says neither (``age_over_21: false`` under 13) answers nothing
    and is refused, never read as allowed.
    """
    if presentation.value and presentation.age_over >= min_age:
        return "allowed"
    if not presentation.value and presentation.age_over <= min_age:
        return "under_age"
    raise CredentialRefused("no_age_claim", "This digital ID did not say whether you are old enough.")
