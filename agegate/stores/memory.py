"""``memory://``: an in-process store for tests. Nothing survives the process."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime

from ..errors import StoreError
from ._jobs import FINAL_STATES, lease_is_free
from .base import AttestationRecord, JobState, KeyUse, PurgeJob, ReportRecord, ReportState, key_uses_from

__all__ = ["MemoryStore"]


class MemoryStore:
    """Keeps everything in dictionaries; one lock makes every method atomic."""

    #: :meth:`swap_attestation` takes ``blocks`` and ``now`` (see :func:`.add_attestation`).
    swaps_unless_blocked = True

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._lock = asyncio.Lock()
        self._attestations: dict[bytes, AttestationRecord] = {}
        self._blocks: dict[bytes, tuple[datetime, tuple[str, ...]]] = {}
        self._key_checks: dict[str, bytes] = {}
        self._jobs: dict[str, PurgeJob] = {}
        self._reports: dict[str, ReportRecord] = {}
        self._flags: dict[bytes, bytes] = {}
        self._revision = 0

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def revision(self) -> int:
        return self._revision

    async def bump_revision(self) -> None:
        self._revision += 1

    async def put_attestation(self, record: AttestationRecord, *, replaces: Sequence[bytes] = ()) -> None:
        async with self._lock:
            for old in replaces:
                if old != record.subject_hash:
                    self._attestations.pop(old, None)
            self._attestations[record.subject_hash] = record

    async def swap_attestation(
        self,
        record: AttestationRecord,
        *,
        replaces: Sequence[bytes] = (),
        expected: AttestationRecord | None,
        blocks: Sequence[bytes] = (),
        now: datetime | None = None,
    ) -> bool:
        account = (record.subject_hash, *replaces)
        # Reads take no lock here: a record already there refuses at once, as a reader sees it.
        # The check that counts is the one under the lock, with the write.
        if expected is None and await self.get_attestation(account) is not None:
            return False
        async with self._lock:
            if blocks and (now is None or await self.is_blocked(blocks, now=now)):
                return False
            if expected is None:
                if any(h in self._attestations for h in account):
                    return False
            else:
                current = self._attestations.get(expected.subject_hash)
                if current is None or current.mac != expected.mac:
                    return False
                if expected.subject_hash != record.subject_hash and record.subject_hash in self._attestations:
                    return False
            for old in replaces:
                if old != record.subject_hash:
                    self._attestations.pop(old, None)
            self._attestations[record.subject_hash] = record
            return True

    async def get_attestation(self, subject_hashes: Sequence[bytes]) -> AttestationRecord | None:
        for subject_hash in subject_hashes:
            found = self._attestations.get(subject_hash)
            if found is not None:
                return found
        return None

    async def delete_attestations(self, subject_hashes: Sequence[bytes]) -> int:
        async with self._lock:
            return sum(self._attestations.pop(h, None) is not None for h in set(subject_hashes))

    async def block_identifiers(
        self, identifier_hashes: Sequence[bytes], *, until: datetime, kids: Sequence[str] = ()
    ) -> None:
        async with self._lock:
            for h in identifier_hashes:
                current = self._blocks.get(h)
                if current is None or current[0] < until:
                    self._blocks[h] = (until, tuple(kids))

    async def is_blocked(self, identifier_hashes: Sequence[bytes], *, now: datetime) -> bool:
        return any((block := self._blocks.get(h)) is not None and block[0] > now for h in identifier_hashes)

    async def delete_expired_blocks(self, *, now: datetime) -> int:
        async with self._lock:
            expired = [h for h, (until, _) in self._blocks.items() if until <= now]
            for h in expired:
                del self._blocks[h]
            return len(expired)

    async def add_flag(self, flag_hash: bytes, sealed: bytes, *, known: Sequence[bytes] = ()) -> bool:
        async with self._lock:
            if any(h in self._flags for h in (flag_hash, *known)):
                return False
            self._flags[bytes(flag_hash)] = bytes(sealed)
            return True

    async def list_flags(self) -> list[tuple[bytes, bytes]]:
        return sorted(self._flags.items())

    async def delete_flags(self, flag_hashes: Sequence[bytes]) -> int:
        async with self._lock:
            return sum(self._flags.pop(h, None) is not None for h in set(flag_hashes))

    async def key_checks(self) -> dict[str, bytes]:
        return dict(self._key_checks)

    async def register_keys(self, checks: Mapping[str, bytes]) -> dict[str, bytes]:
        async with self._lock:
            if not self._key_checks and checks:
                first = tuple(checks)
                for h, (until, kids) in list(self._blocks.items()):
                    if not kids:
                        self._blocks[h] = (until, first)
            for kid, check in checks.items():
                self._key_checks.setdefault(kid, bytes(check))
            return dict(self._key_checks)

    async def key_uses(self, *, now: datetime) -> list[KeyUse]:
        attestations: dict[str, int] = {}
        for record in self._attestations.values():
            attestations[record.kid] = attestations.get(record.kid, 0) + 1
        return key_uses_from(
            attestations, [(kids, 1, until) for until, kids in self._blocks.values() if until > now]
        )

    async def create_job(self, job: PurgeJob) -> tuple[PurgeJob, bool]:
        async with self._lock:
            for existing in self._jobs.values():
                if existing.subject_hash == job.subject_hash:
                    return copy.deepcopy(existing), False
            if job.job_id in self._jobs:
                raise StoreError("a purge job with this id exists already")
            self._jobs[job.job_id] = copy.deepcopy(job)
            return copy.deepcopy(job), True

    async def get_job(self, job_id: str) -> PurgeJob | None:
        job = self._jobs.get(job_id)
        return copy.deepcopy(job) if job is not None else None

    async def find_job(self, subject_hashes: Sequence[bytes]) -> PurgeJob | None:
        wanted = set(subject_hashes)
        for job in self._jobs.values():
            if job.subject_hash in wanted:
                return copy.deepcopy(job)
        return None

    async def list_jobs(self, *, unfinished_only: bool = False) -> list[PurgeJob]:
        jobs = [j for j in self._jobs.values() if not unfinished_only or j.state not in FINAL_STATES]
        return [copy.deepcopy(j) for j in sorted(jobs, key=lambda j: (j.created_at, j.job_id))]

    async def claim_job(
        self, job_id: str, *, owner: str, until: datetime, now: datetime, takeover: str | None = None
    ) -> bool:
        async with self._lock:
            job = self._jobs.get(job_id)
            if job is None or not lease_is_free(job, owner=owner, takeover=takeover, now=now):
                return False
            job.lease_owner, job.lease_until, job.updated_at = owner, until, now
            if job.state == "failed":
                job.state, job.error = "running", None
            return True

    async def record_step(self, job_id: str, *, owner: str, step: str, count: int, now: datetime) -> bool:
        async with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.lease_owner != owner:
                return False
            job.steps.setdefault(step, count)
            job.updated_at = now
            return True

    async def finish_job(
        self, job_id: str, *, owner: str, state: JobState, now: datetime, error: str | None = None
    ) -> bool:
        async with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.lease_owner != owner:
                return False
            job.state, job.error, job.updated_at = state, error, now
            job.lease_owner = job.lease_until = None
            if state in FINAL_STATES:
                job.finished_at = now
                job.sealed_subject = None
                job.identifier_hashes = ()
            return True

    async def reopen_job(
        self,
        job_id: str,
        *,
        handlers: tuple[str, ...],
        sealed_subject: bytes,
        identifier_hashes: tuple[bytes, ...] = (),
        now: datetime,
    ) -> bool:
        async with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state != "done":
                return False
            job.state, job.handlers, job.sealed_subject = "running", tuple(handlers), sealed_subject
            job.identifier_hashes = tuple(identifier_hashes)
            job.finished_at, job.error, job.updated_at = None, None, now
            job.lease_owner = job.lease_until = None
            return True

    async def delete_job(self, job_id: str) -> bool:
        async with self._lock:
            return self._jobs.pop(job_id, None) is not None

    async def create_report(self, report: ReportRecord) -> None:
        async with self._lock:
            if report.reference in self._reports:
                raise StoreError(f"report {report.reference} exists already")
            self._reports[report.reference] = copy.copy(report)

    async def get_report(self, reference: str) -> ReportRecord | None:
        found = self._reports.get(reference)
        return copy.copy(found) if found is not None else None

    async def list_reports(self) -> list[ReportRecord]:
        reports = sorted(self._reports.values(), key=lambda r: (r.received_at, r.reference))
        return [copy.copy(r) for r in reports]

    async def update_report(self, report: ReportRecord, *, expected: ReportState) -> bool:
        async with self._lock:
            current = self._reports.get(report.reference)
            if current is None or current.state != expected:
                return False
            self._reports[report.reference] = dataclasses.replace(
                copy.copy(report), received_at=current.received_at, due_at=current.due_at
            )
            return True
