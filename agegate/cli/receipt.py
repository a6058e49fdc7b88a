"""``agegate receipt verify|issue``: check a deletion receipt's signature, or (re)issue the
receipt of a finished purge."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, JobNotFound
from ..keys import Keyring
from ..purge.receipts import InvalidReceipt, parse_public_key, verify_receipt
from .app import APP_HELP, EXIT_FAILURE, EXIT_OK, json_errors, load_gate, run, save, usage

__all__ = ["register"]


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
    """Add ``receipt`` to the ``agegate`` parser."""
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
    issue.add_argument("--app", help=APP_HELP)
    issue.add_argument("--job", help="the job id")
    issue.add_argument("--ticket", help="the ticket (its latest job)")
    issue.add_argument("--out", "-o", metavar="FILE", help="write to FILE instead of printing")
    issue.set_defaults(func=_receipt_issue)
