"""Actual knowledge: an account that an under-age age signal names is a child's.

Under California's AB 1043 a developer that receives an operating system's or store's age
bracket is deemed to know the user's age; COPPA speaks of "actual knowledge" too. So an
under-age signal for a logged-in account (:meth:`ActualKnowledge.record`, or
``AgeGate.record_signal``) does two things at once:

- the account is recorded under age (the same keyed-hash attestation a screen writes, replacing
  any allowed one) and the store's revision is bumped, so every worker of every instance blocks
  it on its next request, as a purge's freeze does;
- the account is listed for support (``agegate signals list``), who then purge its data
  (``agegate purge --subject …``) or clear the flag after handling it another way.

Support needs the account id to purge, so the list keeps it, sealed (AES-GCM) with the journal
key, exactly as an interrupted purge job keeps it, under a keyed hash of its own purpose
(``flag``) that cannot be matched to the account's attestation without the key. Even the time of
the flag is inside the seal. Nothing of the signal itself (its range, its source, an install id)
is stored anywhere. A flag is removed once the account's purge is done, or by
``agegate signals clear``; its sealed bytes are then scrubbed from a SQLite file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

from .decisions import Attestation, Decision
from .errors import InvalidInput, InvalidSignal, InvalidToken
from .policy import aware
from .signals import AgeSignal
from .tokens import Hasher, Sealer

if TYPE_CHECKING:
    from .gate import AgeGate
    from .stores import PurgeJob, Store

__all__ = ["ActualKnowledge", "Flag"]

#: How many hex digits of a flag's hash name it (``agegate signals clear REF``).
REF_DIGITS = 12


@dataclass(frozen=True, slots=True)
class Flag:
    """An account an under-age signal flagged, as support sees it.

    ``ref`` names the flag; ``subject`` is the account id, or ``None`` when no listed key opens
    it (a key was dropped too early: the account stays blocked, but support must find it another
    way); ``flagged_at`` is when it was first flagged."""

    ref: str
    subject: str | None
    flagged_at: datetime | None


class ActualKnowledge:
    """Records age signals against accounts and keeps the list of accounts flagged by one.
    Every gate has one, as ``gate.knowledge``."""

    def __init__(self, gate: AgeGate) -> None:
        self._gate = gate
        self._sealer = Sealer(gate.keys, "journal")
        self._hasher = Hasher(gate.keys, "flag")

    def screen(self, signal: AgeSignal, *, region: str | None = None) -> Decision | None:
        """See :meth:`agegate.AgeGate.screen_signal`."""
        if not isinstance(signal, AgeSignal):
            raise InvalidSignal("an age signal must be an agegate.AgeSignal")
        policy = self._gate.policy_for(region)
        outcome = signal.outcome_under(policy)
        return None if outcome is None else Decision.of(outcome, policy)

    async def record(
        self, subject: str, signal: AgeSignal, *, region: str | None = None, now: datetime | None = None
    ) -> Attestation | None:
        """The account's attestation from ``signal``, as in force after the call.

        - under age: the account is recorded under age at once (every instance blocks it) and
          flagged for support; returns the under-age attestation. Idempotent.
        - allowed: records an allowed attestation, unless the account is already recorded under
          age (the lower age wins): then nothing is written and the under-age attestation is
          returned.
        - straddling the threshold: nothing is written; returns ``None`` (screen the person).

        Raises :class:`~agegate.StoreUnavailable` when the store cannot answer: retry it (each
        step is idempotent); a failed call never leaves the account allowed.
        """
        decision = self.screen(signal, region=region)
        subject = self._gate.account_id(subject)
        if decision is None:
            return None
        gate = self._gate
        if decision.outcome == "under_age":
            attestation = await gate.record(subject, "under_age", now=now)
            await self._flag(subject, aware(now))
            return attestation
        policy = gate.policy_for(region)
        hashes = gate.subject_hashes(subject)
        new = gate._attestation(subject, hashes[0], "allowed", now, policy)

        async def write(store: Store) -> Attestation:
            blocking = await gate._write_allowed(store, subject, hashes, new)
            if blocking is None:
                return Attestation("allowed", policy.name, new.checked_at, new.kid, policy.version)
            # The record's policy label is "name" or "name|age|version" (AgePolicy.label).
            name = blocking.policy.partition("|")[0]
            return Attestation("under_age", name, blocking.checked_at, blocking.kid)

        return await gate._ask(write)

    async def _flag(self, subject: str, at: datetime) -> None:
        hashes = self._hasher.digests(subject)
        payload = json.dumps({"s": subject, "t": int(at.timestamp())}, separators=(",", ":"))
        sealed = self._sealer.seal_bytes(payload.encode("utf-8"))
        await self._gate._ask(lambda store: store.add_flag(hashes[0], sealed, known=hashes[1:]))

    def _open(self, flag_hash: bytes, sealed: bytes) -> Flag:
        ref = flag_hash.hex()[:REF_DIGITS]
        try:
            data = json.loads(self._sealer.open_bytes(sealed))
            subject, at = data["s"], datetime.fromtimestamp(data["t"], UTC)
        except (InvalidToken, ValueError, KeyError, TypeError):
            return Flag(ref, None, None)
        return Flag(ref, subject if isinstance(subject, str) else None, at)

    async def flags(self) -> list[Flag]:
        """The accounts flagged and not yet purged, oldest first. Flags of accounts whose purge
        is done are removed on the way (their sealed ids with them)."""
        gate = self._gate
        rows = await gate._ask(lambda store: store.list_flags())
        listed: list[Flag] = []
        done: list[bytes] = []
        for flag_hash, sealed in rows:
            flag = self._open(flag_hash, sealed)
            if flag.subject is not None:
                hashes = gate.subject_hashes(flag.subject)
                job = await gate._ask(partial(_find_job, hashes=hashes))
                if job is not None and job.state == "done":
                    done.append(flag_hash)
                    continue
            listed.append(flag)
        if done:
            await gate._ask(lambda store: store.delete_flags(done))
        epoch = datetime.min.replace(tzinfo=UTC)
        return sorted(listed, key=lambda f: (f.flagged_at or epoch, f.ref))

    async def clear(self, ref: str) -> int:
        """Remove the flag named ``ref`` (as :meth:`flags` shows it) after support handled the
        account another way; returns how many flags were removed (0 or 1). The account stays
        recorded under age."""
        if not isinstance(ref, str) or len(ref) != REF_DIGITS:
            raise InvalidInput(f"a flag's reference is {REF_DIGITS} hex digits, as listed")
        rows = await self._gate._ask(lambda store: store.list_flags())
        matches = [h for h, _ in rows if h.hex()[:REF_DIGITS] == ref.lower()]
        if len(matches) > 1:
            raise InvalidInput("that reference names more than one flag; clear them after a purge")
        return await self._gate._ask(lambda store: store.delete_flags(matches)) if matches else 0


async def _find_job(store: Store, *, hashes: list[bytes]) -> PurgeJob | None:
    return await store.find_job(hashes)
