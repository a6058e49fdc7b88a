"""The names a purge job's journal uses: its fixed steps and its notes, and how to read them.

A job's ``steps`` map holds, in order: the fixed step ``freeze``, one entry per handler, the
fixed step ``block_identifiers``, and notes (``planned:NAME``, ``policy:NAME``, ``key:KID``,
``receipt:PATH``)
that are facts about the job rather than steps of it.
"""

from __future__ import annotations

from ..stores import PurgeJob

__all__ = [
    "BLOCK",
    "FREEZE",
    "NOTES",
    "PLANNED",
    "POLICY",
    "RECEIPT",
    "RESERVED_STEPS",
    "SIGNING_KEY",
    "handler_steps",
    "job_policy",
    "note",
    "planned",
    "steps_of",
]

#: Steps that are not handlers; no handler may take these names.
FREEZE, BLOCK = "freeze", "block_identifiers"
RESERVED_STEPS = (FREEZE, BLOCK)
#: Journal entries ``planned:NAME`` hold what a handler's ``count`` side saw before it ran.
PLANNED = "planned:"
#: The journal entry ``policy:NAME`` (count 0) names the age policy in force when the job began;
#: the job's receipt names it, whatever the app's policy is when the receipt is issued.
POLICY = "policy:"
#: The journal entry ``key:KID`` (count 0) names the key that was active when the job began: the
#: job's receipt is signed with it while it is listed, so re-issuing gives the same document.
SIGNING_KEY = "key:"
#: The journal entry ``receipt:PATH`` (count 0) names the file the operator asked the job's signed
#: receipt to be written to: whoever finishes the job (``agegate purge --resume``) writes it.
RECEIPT = "receipt:"
#: Journal entries that are notes about the job, not steps of it.
NOTES = (PLANNED, POLICY, SIGNING_KEY, RECEIPT)


def handler_steps(job: PurgeJob) -> dict[str, int]:
    """The job's finished handlers and their counts (no fixed steps, no notes)."""
    return {n: c for n, c in job.steps.items() if n not in RESERVED_STEPS and not n.startswith(NOTES)}


def steps_of(job: PurgeJob) -> dict[str, int]:
    """The job's steps, fixed ones and handlers, in order: its journal without the notes."""
    return {n: c for n, c in job.steps.items() if not n.startswith(NOTES)}


def planned(job: PurgeJob) -> dict[str, int]:
    """What each handler's count side saw before it ran (its ``planned:NAME`` notes), by name."""
    return {n[len(PLANNED) :]: c for n, c in job.steps.items() if n.startswith(PLANNED)}


def note(job: PurgeJob, prefix: str) -> str | None:
    """The value of the job's first note starting with ``prefix``, if any."""
    for step in job.steps:
        if step.startswith(prefix):
            return step[len(prefix) :]
    return None


def job_policy(job: PurgeJob) -> str | None:
    """The name of the age policy in force when ``job`` began (``None`` for jobs journalled
    before agegate recorded it)."""
    return note(job, POLICY)
