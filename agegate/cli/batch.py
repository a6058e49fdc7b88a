"""``agegate purge --subjects-from FILE``: purge many accounts in one run.

The file (``-`` for stdin) lists one account per line::

    # comments and blank lines are ignored
    48213
    48214  ticket=SUP-1240  email=kid@example.org  phone=+15550100
    acct-77  username=skater77   # a comment may end a line too

Fields are separated by spaces or tabs: first the account id, then any of ``ticket=T`` (the
line's ticket; ``--ticket`` is the default for lines without one) and ``KIND=VALUE`` for each
identifier to block (``email``, ``phone``, ``username``, or the kinds the app lists). Values
hold no spaces (write a phone number without them). ``--operator`` applies to every line.

The whole file is checked before anything is purged: a malformed line stops the batch (exit
2) with its line number. Then up to ``--concurrency`` accounts (default 4) are purged at once;
each gets one summary line (by line number and ticket: the account id is never printed), a
failed account never stops the others and stays resumable (``agegate purge --resume``), and a
last line gives the totals. Exit status 0 when every account is done (or was already), 1 when
any failed or matched nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AgeGateError, ConfigurationError, InvalidInput, UsageError
from ..gate import AgeGate
from .app import load_gate, run
from .safety import confirmed, no_match_message, resume_command

__all__ = ["DEFAULT_CONCURRENCY", "BatchLine", "Outcome", "parse_subjects", "run_batch"]

DEFAULT_CONCURRENCY = 4
_MAX_CONCURRENCY = 64
_MAX_SHOWN_ERRORS = 10


@dataclass(frozen=True, slots=True)
class BatchLine:
    """One account of a batch file: its line number, id, ticket and identifiers."""

    number: int
    subject: str
    ticket: str | None
    identifiers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Outcome:
    """How one account of a batch ended: ``state`` is ``done``, ``already done``, ``dry run``,
    ``failed`` or ``no match``."""

    line: int
    ticket: str
    state: str
    job_id: str = ""
    deleted: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.state in ("done", "already done", "dry run")


def _fields(text: str) -> list[str]:
    out = []
    for word in text.split():
        if word.startswith("#"):
            break  # the rest of the line is a comment
        out.append(word)
    return out


def parse_subjects(lines: Iterable[str]) -> tuple[list[BatchLine], list[str]]:
    """Read a batch file's lines; returns the accounts and the errors (``"line N: …"``, never
    repeating an id or a value)."""
    accounts: list[BatchLine] = []
    errors: list[str] = []
    for number, raw in enumerate(lines, start=1):
        words = _fields(raw)
        if not words:
            continue
        subject, ticket, identifiers = words[0], None, {}
        for word in words[1:]:
            key, sep, value = word.partition("=")
            key = key.lower()
            if not sep or not key or not value:
                errors.append(
                    f"line {number}: after the account id, fields are KEY=VALUE (ticket=, email=, …)"
                )
                break
            if key in identifiers or (key == "ticket" and ticket is not None):
                errors.append(f"line {number}: a field is given twice")
                break
            if key == "ticket":
                ticket = value
            else:
                identifiers[key] = value
        else:
            accounts.append(BatchLine(number, subject, ticket, identifiers))
    return accounts, errors


def _read(source: str) -> list[str]:
    if source == "-":
        return sys.stdin.read().splitlines()
    try:
        return Path(source).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        raise UsageError(f"cannot read --subjects-from {source!r}: {why}") from None


def _check(gate: AgeGate, accounts: list[BatchLine], args: argparse.Namespace) -> list[str]:
    """Every line as a purge would check it, before anything is done."""
    errors = []
    seen: dict[str, int] = {}
    for account in accounts:
        ticket = account.ticket or args.ticket
        try:
            if ticket:
                gate.purger.check_request(account.subject, ticket, args.operator, account.identifiers)
            else:
                gate.purger.check_subject(account.subject)
                gate.purger.check_identifiers(account.identifiers)
                errors.append(f"line {account.number}: no ticket (give ticket=T on the line, or --ticket)")
        except (ConfigurationError, InvalidInput) as exc:
            errors.append(f"line {account.number}: {exc}")
        if account.subject in seen:
            errors.append(f"line {account.number}: the same account as line {seen[account.subject]}")
        seen.setdefault(account.subject, account.number)
    return errors


async def _purge_one(gate: AgeGate, account: BatchLine, args: argparse.Namespace) -> Outcome:
    ticket = account.ticket or args.ticket
    outcome = Outcome(account.number, ticket, "failed")
    try:
        if not args.allow_no_match:
            match = await gate.purger.find_match(account.subject)
            if not match.matched:
                outcome.state, outcome.error = "no match", no_match_message(match.uncounted)
                return outcome
        report = await gate.purger.purge(
            account.subject,
            ticket=ticket,
            operator=args.operator,
            identifiers=account.identifiers,
            dry_run=args.dry_run,
        )
    except AgeGateError as exc:  # PurgeError names the job and the handler, never the account
        outcome.job_id, outcome.error = getattr(exc, "job_id", ""), str(exc)
        return outcome
    except Exception as exc:
        outcome.error = f"{type(exc).__name__} (the other accounts go on)"
        return outcome
    outcome.job_id, outcome.deleted = report.job_id, sum(report.deleted.values())
    if report.state == "dry_run":
        outcome.state = "dry run"
    elif report.not_run:
        outcome.error = f"handlers not run: {', '.join(report.not_run)}"
    else:
        outcome.state = "already done" if report.already_done else "done"
    return outcome


def _summary(outcome: Outcome) -> str:
    job = f"  job {outcome.job_id}" if outcome.job_id else ""
    if outcome.ok:
        verb = "would delete" if outcome.state == "dry run" else "deleted"
        return (
            f"line {outcome.line:<6} ticket {outcome.ticket}  {outcome.state}{job}  {verb} {outcome.deleted}"
        )
    return f"line {outcome.line:<6} ticket {outcome.ticket}  {outcome.state.upper()}{job}: {outcome.error}"


def _confirm(count: int, args: argparse.Namespace) -> bool:
    if args.dry_run or args.yes:
        return True
    if args.subjects_from == "-" or not sys.stdin.isatty():
        raise UsageError("refusing to purge without confirmation: pass --yes")
    return confirmed(
        f"About to purge {count} account(s) from {args.subjects_from}: freeze each, delete its data "
        "everywhere and block the identifiers listed. This cannot be undone."
    )


def run_batch(args: argparse.Namespace) -> int:
    """Run ``agegate purge --subjects-from``; returns the exit status."""
    concurrency = DEFAULT_CONCURRENCY if args.concurrency is None else args.concurrency
    if not 1 <= concurrency <= _MAX_CONCURRENCY:
        raise UsageError(f"--concurrency takes 1 to {_MAX_CONCURRENCY}")
    if not args.operator:
        raise UsageError("a batch needs --operator (and a ticket: --ticket, or ticket= on each line)")
    accounts, errors = parse_subjects(_read(args.subjects_from))
    gate = load_gate(args.app)
    errors += _check(gate, accounts, args)
    if errors:
        shown = "; ".join(errors[:_MAX_SHOWN_ERRORS])
        more = f" (and {len(errors) - _MAX_SHOWN_ERRORS} more)" if len(errors) > _MAX_SHOWN_ERRORS else ""
        raise UsageError(f"nothing was purged: {shown}{more}")
    if not accounts:
        raise UsageError(f"{args.subjects_from} lists no account")
    if not _confirm(len(accounts), args):
        print("Not confirmed: nothing was done.", file=sys.stderr)
        return 1
    outcomes: list[Outcome] = []

    async def work() -> None:
        # Every purge may hold a worker thread waiting for a database lock while the purge that
        # holds the lock needs another thread to commit: more threads than purges at once, so
        # that the lock's holder always finds one (the default pool is sized by CPUs).
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=2 * concurrency + 4, thread_name_prefix="agegate-batch")
        )
        slots = asyncio.Semaphore(concurrency)

        async def one(account: BatchLine) -> None:
            async with slots:
                outcome = await _purge_one(gate, account, args)
            outcomes.append(outcome)
            if not args.json:
                print(_summary(outcome), flush=True)

        await asyncio.gather(*(one(account) for account in accounts))

    try:
        run(gate, work)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            f"{len(outcomes)} of {len(accounts)} account(s) finished. Finish the purges that began "
            f"with: {resume_command(args)}; then run this batch again (finished accounts say "
            "'already done')"
        ) from None
    outcomes.sort(key=lambda o: o.line)
    total = _totals(outcomes)
    if args.json:
        print(json.dumps({"accounts": [_json(o) for o in outcomes], "total": total}))
    else:
        _print_totals(outcomes, total, resume_command(args))
    return 0 if total["failed"] == total["no_match"] == 0 else 1


def _totals(outcomes: list[Outcome]) -> dict[str, int]:
    states = [o.state for o in outcomes]
    return {
        "accounts": len(outcomes),
        "done": states.count("done"),
        "already_done": states.count("already done"),
        "dry_run": states.count("dry run"),
        "failed": states.count("failed"),
        "no_match": states.count("no match"),
    }


def _json(outcome: Outcome) -> dict[str, Any]:
    return {
        "line": outcome.line,
        "ticket": outcome.ticket,
        "state": outcome.state,
        "job_id": outcome.job_id or None,
        "deleted": outcome.deleted,
        "error": outcome.error,
    }


def _lines(outcomes: list[Outcome], state: str) -> str:
    return ", ".join(str(o.line) for o in outcomes if o.state == state)


def _print_totals(outcomes: list[Outcome], total: dict[str, int], resume: str) -> None:
    parts = [f"{total['done']} done", f"{total['already_done']} already done"]
    if total["dry_run"]:
        parts = [f"{total['dry_run']} dry run(s), nothing changed"]
    parts += [f"{total['failed']} failed", f"{total['no_match']} matched nothing"]
    print(f"Total: {total['accounts']} account(s): {', '.join(parts)}.")
    resumable = ", ".join(str(o.line) for o in outcomes if o.state == "failed" and o.job_id)
    refused = ", ".join(str(o.line) for o in outcomes if o.state == "failed" and not o.job_id)
    if resumable:
        print(f"Failed (lines {resumable}): fix the cause, then finish them with: {resume}")
    if refused:
        print(f"Refused before anything was done (lines {refused}): fix those lines and run them again")
    if total["no_match"]:
        print(
            f"Matched nothing (lines {_lines(outcomes, 'no match')}): check those ids; if they are "
            "right, run those lines again with --allow-no-match"
        )
