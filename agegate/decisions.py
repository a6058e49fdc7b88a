"""Decisions: what the screen answers, what a signup stored, and how the app tells the
middleware about a decision it made inline."""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .accounts import MAX_ACCOUNT_ID
from .policy import AgePolicy
from .tokens import Outcome

__all__ = ["MAX_SUBJECT", "NOTES_KEY", "SCOPE_KEY", "Attestation", "Decision", "record_decision"]


@dataclass(frozen=True, slots=True)
class Decision:
    """The screen's answer. It carries no birth date and no age: the policy's name, the region
    table's ``version`` (empty for a hand-made policy) and, as ``age_policy``, the policy itself."""

    allowed: bool
    outcome: Outcome
    policy: str
    version: str = ""
    age_policy: AgePolicy | None = field(default=None, compare=False, repr=False)
    #: Whether the answer came from a verified digital ID (:mod:`agegate.credentials`) rather
    #: than a typed date: only such an answer passes paths the middleware's
    #: ``require_verified`` names.
    verified: bool = False

    @classmethod
    def of(cls, outcome: Outcome, policy: str | AgePolicy) -> Decision:
        """A decision of ``outcome`` under ``policy`` (a policy, or just its name)."""
        if isinstance(policy, AgePolicy):
            return cls(outcome == "allowed", outcome, policy.name, policy.version, policy)
        return cls(allowed=outcome == "allowed", outcome=outcome, policy=policy)


@dataclass(frozen=True, slots=True)
class Attestation:
    """What :meth:`AgeGate.signup` stored for an account (as hashes) and when."""

    outcome: Outcome
    policy: str
    checked_at: datetime
    kid: str
    version: str = ""


#: Longest account id the gate takes (kept for compatibility: see agegate.accounts).
MAX_SUBJECT = MAX_ACCOUNT_ID
#: Where the middleware puts the decision in the ASGI scope of a request it passes on.
SCOPE_KEY = "agegate"
#: A list the middleware puts in the scope of requests on signup paths; decisions made inside the
#: app are appended to it, so the middleware sees them even when a router copied the scope dict.
NOTES_KEY = "agegate.notes"


def record_decision(scope: MutableMapping[str, Any], decision: Decision) -> None:
    """Tell the middleware about a decision the app made inline (the signup hook does this), so
    that it writes the matching sealed cookie on the way out (a sticky one for ``under_age``)."""
    scope[SCOPE_KEY] = decision
    notes = scope.get(NOTES_KEY)
    if isinstance(notes, list):
        notes.append(decision)
