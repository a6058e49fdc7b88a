"""``agegate audit``: the purge log, free of personal data."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..purge.journal import job_policy, planned, steps_of
from ..stores import PurgeJob
from .app import APP_HELP, EXIT_OK, json_errors, load_gate, run, when

__all__ = ["register"]


def _audit(args: argparse.Namespace) -> int:
    gate = load_gate(args.app)
    jobs = run(gate, gate.purger.jobs)
    if args.ticket:
        jobs = [job for job in jobs if job.ticket == args.ticket]
    if args.json:
        print(json.dumps([_job_json(job) for job in jobs]))
        return EXIT_OK
    if not jobs:
        print("No purge jobs.")
        return EXIT_OK
    print(f"{'JOB':<17} {'TICKET':<16} {'OPERATOR':<14} {'STATE':<8} {'STARTED':<21} {'FINISHED':<21} STEPS")
    for job in jobs:
        steps = " ".join(f"{n}={c}" for n, c in steps_of(job).items())
        line = (
            f"{job.job_id:<17} {job.ticket:<16} {job.operator:<14} {job.state:<8} "
            f"{when(job.created_at):<21} {when(job.finished_at):<21} {steps}"
        )
        print(line + (f"  error: {job.error}" if job.error else ""))
    return EXIT_OK


def _job_json(job: PurgeJob) -> dict[str, Any]:
    # Deliberately no subject hash, sealed subject or identifier hashes: the audit log is for
    # people, and those add nothing a person can use.
    return {
        "job_id": job.job_id,
        "ticket": job.ticket,
        "operator": job.operator,
        "state": job.state,
        "handlers": list(job.handlers),
        "steps": steps_of(job),
        "policy": job_policy(job),
        "planned": planned(job),
        "created_at": job.created_at.isoformat(),
        "updated_at": job.updated_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "error": job.error,
    }


def register(sub: Any) -> None:
    """Add ``audit`` to the ``agegate`` parser."""
    audit = sub.add_parser("audit", help="the purge log (free of personal data)")
    audit.add_argument("--app", help=APP_HELP)
    audit.add_argument("--ticket", help="only this ticket's jobs")
    audit.add_argument("--json", action="store_true", help="print JSON")
    audit.set_defaults(func=json_errors(_audit))
