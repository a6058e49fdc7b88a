"""``agegate audit``, ``keys public`` and ``receipt verify|issue``: the purge log and the
deletion receipts, free of personal data."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, JobNotFound
from ..keys import Keyring
from ..purge import NOTES, PLANNED, job_policy
from ..purge.receipts import InvalidReceipt, parse_public_key, public_key_text, verify_receipt
from ..stores import PurgeJob
from .app import EXIT_FAILURE, EXIT_OK, json_errors, load_gate, run, save, usage, when


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
        steps = " ".join(f"{n}={c}" for n, c in job.steps.items() if not n.startswith(NOTES))
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
        "steps": {n: c for n, c in job.steps.items() if not n.startswith(NOTES)},
        "policy": job_policy(job),
        # What each handler's count side saw before it ran (see agegate.purge).
        "planned": {n[len(PLANNED) :]: c for n, c in job.steps.items() if n.startswith(PLANNED)},
        "created_at": job.created_at.isoformat(),
        "updated_at": job.updated_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "error": job.error,
    }


def _keys_public(args: argparse.Namespace) -> int:
    keys = Keyring.from_env()
    if args.all:
        for kid in keys.kids:
            print(f"{kid}:{public_key_text(keys, kid)}")
    else:
        print(public_key_text(keys))
    return EXIT_OK


def _receipt_verify(args: argparse.Namespace) -> int:
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {args.file!r}: {exc.strerror}") from None
    try:
        key = parse_public_key(args.public_key) if args.public_key else Keyring.from_env()
    except InvalidReceipt as exc:
        raise usage(f"--public-key: {exc}") from None
    try:
        payload = verify_receipt(data, key)
    except InvalidReceipt as exc:
        if args.json:
            print(json.dumps({"valid": False, "error": str(exc)}))
        else:
            print(f"INVALID: {exc}")
        return EXIT_FAILURE
    if args.json:
        print(json.dumps({"valid": True, "receipt": payload}))
        return EXIT_OK
    handlers = ", ".join(f"{h.get('name')} {h.get('deleted')}" for h in payload.get("handlers", []))
    print(
        f"Valid receipt: job {payload.get('job_id')}, ticket {payload.get('ticket')}, "
        f"completed {payload.get('completed_at')}, policy {payload.get('policy')}."
    )
    print(f"Deleted: {handlers or 'nothing'}; identifiers blocked: {payload.get('identifiers_blocked', 0)}.")
    return EXIT_OK


def _receipt_issue(args: argparse.Namespace) -> int:
    if bool(args.job) == bool(args.ticket):
        raise usage("give exactly one of --job or --ticket")
    gate = load_gate(args.app)
    job = run(gate, lambda: gate.purger.find(job_id=args.job, ticket=args.ticket))
    if job is None:
        raise JobNotFound("no purge job matches")
    text = gate.purger.receipt(job)
    if args.out:
        save(args.out, text)
        print(f"Signed receipt for job {job.job_id} written to {args.out}.")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def register(sub: Any) -> None:
    """Add ``audit``, ``keys`` and ``receipt`` to the ``agegate`` parser."""
    app_help = "the app's gate as MODULE:ATTR (default: $AGEGATE_APP)"
    audit = sub.add_parser("audit", help="the purge log (free of personal data)")
    audit.add_argument("--app", help=app_help)
    audit.add_argument("--ticket", help="only this ticket's jobs")
    audit.add_argument("--json", action="store_true", help="print JSON")
    audit.set_defaults(func=json_errors(_audit))

    keys = sub.add_parser("keys", help="key utilities")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    public = keys_sub.add_parser("public", help="print the public key that verifies deletion receipts")
    public.add_argument("--all", action="store_true", help="one kid:key line per listed key (rotation)")
    public.set_defaults(func=_keys_public)
    from .keys import register as register_keys

    register_keys(keys_sub, app_help)

    receipt = sub.add_parser("receipt", help="deletion receipts")
    receipt_sub = receipt.add_subparsers(dest="receipt_command", required=True, metavar="COMMAND")
    verify = receipt_sub.add_parser("verify", help="check a receipt's signature (exit 0 valid, 1 not)")
    verify.add_argument("file", metavar="FILE")
    verify.add_argument(
        "--public-key", help="the key from `agegate keys public` (default: from AGEGATE_SECRET_KEYS)"
    )
    verify.add_argument("--json", action="store_true", help="print JSON")
    verify.set_defaults(func=json_errors(_receipt_verify))
    issue = receipt_sub.add_parser("issue", help="(re)issue the receipt of a finished purge")
    issue.add_argument("--app", help=app_help)
    issue.add_argument("--job", help="the job id")
    issue.add_argument("--ticket", help="the ticket (its latest job)")
    issue.add_argument("--out", "-o", metavar="FILE", help="write to FILE instead of printing")
    issue.set_defaults(func=_receipt_issue)
