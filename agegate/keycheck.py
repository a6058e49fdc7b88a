"""Keys and the store: a keyring is used only with a store whose records it can read.

Every record a store keeps is a keyed hash or a sealed value under one key id: attestations (and
the freezes of purged accounts) until the account is seen again, identifier blocks until they
end, unfinished purge jobs until they finish, reports from parents until they are answered,
accounts flagged by an age signal until support is done with them. Opening a store with a
keyring that cannot read it would let those records silently stop counting: a frozen child
unfrozen, a blocked email free to sign up, a purge reported done under keys the running app does
not use. So the gate refuses, naming the key ids (never key material), when

- a key id of the keyring was recorded by the store with another key (a new key made under an
  old id): the store keeps a check value per key id, HMAC(check key, a constant), never the key;
- the keyring shares no key id with a store that has recorded some (a new keyring);
- the keyring drops a key id that records still need.

An old key can be dropped once no record needs it: :meth:`AgeGate.status_of
<agegate.AgeGate.status_of>` and the signup hook move an account's record to the active key
when they read it, and blocks end. ``agegate keys status`` shows what each key id still holds.
"""

from __future__ import annotations

import contextlib
import hmac
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .errors import KeyringMismatch, StoreError
from .keys import Keyring
from .stores import AttestationRecord, Store
from .tokens import OUTCOMES, Hasher, sealed_kid

__all__ = ["KeyStatus", "check_keys", "check_value", "key_status", "mismatch", "move_to_active_key"]

#: What the check value of a key id is a keyed hash of.
_CHECK_MESSAGE = "agegate/key-check"


def check_value(keys: Keyring, kid: str) -> bytes:
    """The value the store keeps for key ``kid``: HMAC(check key of ``kid``, a constant). It
    tells that key from another one with the same id, and reveals nothing about it."""
    return Hasher(keys, "check").digest(_CHECK_MESSAGE, kid=kid)


@dataclass(frozen=True, slots=True)
class KeyStatus:
    """What one key id means to a store: whether the keyring lists it, and the records that
    need it. Attestations and unfinished purge jobs need it for as long as they stay under it;
    identifier blocks until ``blocked_until``."""

    kid: str
    listed: bool
    active: bool
    known: bool
    #: The keyring lists this id with another key than the one the store recorded for it.
    wrong_key: bool = False
    attestations: int = 0
    blocks: int = 0
    jobs: int = 0
    blocked_until: datetime | None = None
    #: Reports from parents whose sealed part (not yet erased) is sealed under this key.
    reports: int = 0
    #: Accounts flagged by an under-age age signal whose sealed id needs this key.
    flags: int = 0

    @property
    def records(self) -> int:
        """How many records need this key."""
        return self.attestations + self.blocks + self.jobs + self.reports + self.flags

    @property
    def needed_until(self) -> datetime | str | None:
        """``"indefinitely"`` while attestations, unfinished jobs, unanswered reports or signal
        flags need the key (they move to the active key only when read, or are erased when
        answered or purged), else the end of the last block that needs it, else ``None``."""
        if self.attestations or self.jobs or self.reports or self.flags:
            return "indefinitely"
        return self.blocked_until

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (for ``agegate keys status --json``)."""
        until = self.needed_until
        return {
            "kid": self.kid,
            "active": self.active,
            "listed": self.listed,
            "known_to_store": self.known,
            "wrong_key": self.wrong_key,
            "records": self.records,
            "attestations": self.attestations,
            "identifier_blocks": self.blocks,
            "purge_jobs": self.jobs,
            "reports": self.reports,
            "signal_flags": self.flags,
            "needed_until": until.isoformat() if isinstance(until, datetime) else until,
            "blocks_until": self.blocked_until.isoformat() if self.blocked_until else None,
        }


async def key_status(keys: Keyring, store: Store, *, now: datetime | None = None) -> list[KeyStatus]:
    """One :class:`KeyStatus` per key id the keyring lists (active first) or the store knows or
    needs (by id). ``store`` must be open."""
    moment = now or datetime.now(UTC)
    known = await store.key_checks()
    uses = {use.kid: use for use in await store.key_uses(now=moment)}
    jobs = Counter(
        kid
        for job in await store.list_jobs(unfinished_only=True)
        if job.sealed_subject is not None and (kid := sealed_kid(job.sealed_subject)) is not None
    )
    reports = Counter(
        kid
        for report in await store.list_reports()
        if report.sealed is not None and (kid := sealed_kid(report.sealed)) is not None
    )
    flags = Counter(kid for _, sealed in await store.list_flags() if (kid := sealed_kid(sealed)) is not None)
    wrong = _wrong_keys(keys, known)
    others = sorted((set(known) | set(uses) | set(jobs) | set(reports) | set(flags)) - set(keys.kids))
    statuses = []
    for kid in (*keys.kids, *others):
        use = uses.get(kid)
        statuses.append(
            KeyStatus(
                kid,
                listed=kid in keys.kids,
                active=kid == keys.active_kid,
                known=kid in known,
                wrong_key=kid in wrong,
                attestations=use.attestations if use else 0,
                blocks=use.blocks if use else 0,
                jobs=jobs[kid],
                reports=reports[kid],
                flags=flags[kid],
                blocked_until=use.blocked_until if use else None,
            )
        )
    return statuses


def mismatch(keys: Keyring, statuses: list[KeyStatus]) -> KeyringMismatch | None:
    """Why ``keys`` may not open a store whose key ids are as ``statuses`` (from
    :func:`key_status`) say; ``None`` when it may."""
    wrong = [s.kid for s in statuses if s.wrong_key]
    if wrong:
        return _wrong_key_error(wrong)
    known = [s.kid for s in statuses if s.known]
    if known and not any(s.known and s.listed for s in statuses):
        return KeyringMismatch(
            f"the keyring (key id {_ids(keys.kids)}) shares no key id with this store (written "
            f"under {_ids(known)}): it is not the keyring of the app that uses the store. "
            "Set the app's keys (AGEGATE_SECRET_KEYS, the value the running app uses)",
            kids=tuple(known),
        )
    dropped = [s for s in statuses if s.records and not s.listed]
    if dropped:
        held = ", ".join(f"{s.kid!r}: {s.records}" for s in dropped)
        return KeyringMismatch(
            f"the keyring drops key id {_ids([s.kid for s in dropped])}, which records in this "
            f"store still need ({held}; see `agegate keys status`): list it after the active key "
            "until no record needs it",
            kids=tuple(s.kid for s in dropped),
        )
    return None


async def check_keys(keys: Keyring, store: Store, *, now: datetime | None = None) -> list[KeyStatus]:
    """Refuse (:class:`~agegate.KeyringMismatch`) a keyring that does not fit ``store`` (see the
    module docs); otherwise record its key ids' check values in the store. ``store`` must be
    open. Returns the key statuses."""
    statuses = await key_status(keys, store, now=now)
    problem = mismatch(keys, statuses)
    if problem is not None:
        raise problem
    known = await store.register_keys({kid: check_value(keys, kid) for kid in keys.kids})
    # Another process may have registered one of these ids, with another key, meanwhile.
    wrong = _wrong_keys(keys, known)
    if wrong:
        raise _wrong_key_error(wrong)
    return statuses


async def move_to_active_key(
    store: Store, hasher: Hasher, record: AttestationRecord | None, subject: str, hashes: list[bytes]
) -> None:
    """Rewrite ``subject``'s record, found under an older key, under the active key of the
    attestation ``hasher`` (same outcome, policy and time; ``hashes`` are the account's subject
    hashes, active first), so that the older key stops being needed. A record that does not
    verify is left as it is; a move that loses a race, or fails, changes nothing."""
    if record is None or record.kid == hasher.active_kid:
        return
    verify = hasher.verify
    outcome = next(
        (o for o in OUTCOMES if verify(record.mac, subject, o, record.policy, kid=record.kid)), None
    )
    if outcome is None:
        return
    mac = hasher.digest(subject, outcome, record.policy)
    moved = AttestationRecord(hashes[0], hasher.active_kid, mac, record.policy, record.checked_at)
    # The answer already read stands either way: a store that cannot write now moves it later.
    with contextlib.suppress(StoreError):
        await store.swap_attestation(moved, replaces=hashes[1:], expected=record)


def _wrong_keys(keys: Keyring, known: Mapping[str, bytes]) -> list[str]:
    return [
        kid
        for kid in keys.kids
        if kid in known and not hmac.compare_digest(known[kid], check_value(keys, kid))
    ]


def _wrong_key_error(kids: list[str]) -> KeyringMismatch:
    return KeyringMismatch(
        f"key id {_ids(kids)} in the keyring is not the key this store was written with "
        "(the same id, another key): it cannot read the store's records. Set the app's keys "
        "(AGEGATE_SECRET_KEYS, the value the running app uses); never make a new key for an "
        "existing store",
        kids=tuple(kids),
    )


def _ids(kids: Any) -> str:
    return ", ".join(repr(kid) for kid in kids)
