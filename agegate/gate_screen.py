"""The screen: which policy applies to a visitor, and what a birth date or a decision says
under it (see :class:`~agegate.AgeGate`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TypeGuard

from .birthdate import DateOrder, read_birth_input
from .decisions import Decision
from .gate_store import GateStore
from .policy import AgePolicy, aware
from .regions import PolicyTable

__all__ = ["GateScreen"]


class GateScreen(GateStore):
    """The age screen of an :class:`~agegate.AgeGate` (a base class of it, which sets the
    policy, the region table and the date order)."""

    policy: AgePolicy
    policies: PolicyTable
    date_order: DateOrder

    def policy_for(self, region: str | None) -> AgePolicy:
        """The policy for a visitor from ``region`` (an ISO 3166 code, any case): the region
        table's row, or its strictest age for a region it does not list; the gate's own
        ``policy`` when ``region`` is ``None`` or when it is stricter than the row."""
        if region is None:
            return self.policy
        policy = self.policies.for_region(region)
        return policy if policy.min_age >= self.policy.min_age else self.policy

    def screen(
        self, fields: Mapping[str, str], *, now: datetime | None = None, region: str | None = None
    ) -> Decision:
        """Screen a birth date (or a stated age) from form fields, under the policy of
        ``region`` (:meth:`policy_for`; ``None``: the gate's own policy).

        Raises :class:`~agegate.InvalidBirthDate` for input that cannot be used.
        """
        policy = self.policy_for(region)
        moment = aware(now)
        reading = read_birth_input(fields, date_order=self.date_order, now=moment)
        under = reading.is_under_age(policy, moment)
        return Decision.of("under_age" if under else "allowed", policy)

    def passed(self, decision: object, *, region: str | None = None) -> TypeGuard[Decision]:
        """Whether ``decision`` is an allowed :class:`Decision` that satisfies the policy of
        ``region`` (:meth:`policy_for`; the gate's own for ``None``), as the middleware's in
        ``scope["agegate"]`` may: anything else, a dict, an unknown policy's answer or one
        reached under a lower minimum age, is not."""
        if type(decision) is not Decision or decision.allowed is not True or decision.outcome != "allowed":
            return False
        reached = decision.age_policy
        if reached is None:  # a decision by name: only the gate's own policy is known by name
            reached = self.policy if decision.policy == self.policy.name else None
        return reached is not None and reached.min_age >= self.policy_for(region).min_age
