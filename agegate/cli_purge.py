"""``agegate purge``, ``audit``, ``receipt`` and ``keys``: the support staff's commands.

``--app MODULE:ATTR`` (or ``AGEGATE_APP``) names the app's :class:`~agegate.AgeGate`: ``ATTR``
may be the gate itself, or any object with a ``.gate`` attribute (the middleware), or an app
with ``.state.gate`` (Starlette/FastAPI ``app.state.gate``). The module is imported from the
working directory, like ``uvicorn`` does. The app builds its gate with its keys (usually
``Keyring.from_env()``), so ``AGEGATE_SECRET_KEYS`` must be set.

Nothing printed here holds the account id or an identifier; errors are one readable line (and,
with ``--json``, also a JSON object ``{"error": ..., "exit": ...}`` on stdout). ``--subject -``
and ``--identifier KIND=-`` read the value from stdin, or from a prompt that does not echo, so
that it stays out of shell history and the process list.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import getpass
import importlib
import json
import os
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, TypeVar

from .errors import AgeGateError, ConfigurationError, UsageError
from .gate import AgeGate
from .keys import Keyring
from .purge import NOTES, PLANNED, PurgeEvent, PurgeReport, job_policy
from .purge.receipts import InvalidReceipt, parse_public_key, public_key_text, verify_receipt
from .stores import PurgeJob

T = TypeVar("T")
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}", re.ASCII)


class AppNotFound(UsageError, ConfigurationError):
    """``--app`` does not lead to an AgeGate (bad usage: exit status 2)."""


class JobNotFound(AgeGateError):
    """No purge job matches what was asked for."""


def _usage(message: str) -> UsageError:
    return UsageError(message)


def load_gate(spec: str | None) -> AgeGate:
    """Import ``MODULE:ATTR`` and find the :class:`AgeGate` it names (see the module docs)."""
    spec = spec or os.environ.get("AGEGATE_APP", "")
    if not spec:
        raise _usage("say which app to use: --app MODULE:ATTR, or set AGEGATE_APP")
    module_name, sep, attr = spec.strip().partition(":")
    if not sep or not module_name or not attr:
        raise _usage("--app takes MODULE:ATTR, for example --app myshop.main:gate")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise AppNotFound(
                f"cannot find the app module {module_name!r}: run this from the app's directory "
                "or add it to PYTHONPATH"
            ) from None
        raise AppNotFound(
            f"the app module {module_name!r} needs {exc.name!r}, which is not installed"
        ) from None
    except AgeGateError:
        raise
    except Exception as exc:
        # Only the exception's class: its message may hold a connection string or a password.
        raise AppNotFound(
            f"importing the app module {module_name!r} failed with {type(exc).__name__}; "
            "run `python -c 'import MODULE'` to see why"
        ) from None
    found: Any = module
    for part in attr.split("."):
        if not hasattr(found, part):
            raise AppNotFound(f"the app module {module_name!r} has no {attr!r}")
        found = getattr(found, part)
    for candidate in (
        found,
        getattr(found, "gate", None),
        getattr(getattr(found, "state", None), "gate", None),
    ):
        if isinstance(candidate, AgeGate):
            return candidate
    raise AppNotFound(f"{spec} is not an AgeGate, nor an object with .gate or .state.gate")


def _run(gate: AgeGate | None, work: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        try:
            return await work()
        finally:
            if gate is not None:
                await gate.aclose()

    return asyncio.run(main())


def _identifiers(items: Sequence[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or ():
        kind, sep, value = item.partition("=")
        kind = kind.strip().lower()
        if not sep or _KIND.fullmatch(kind) is None or not value.strip():
            raise _usage("--identifier takes KIND=VALUE, for example --identifier email=someone@example.org")
        if kind in out:
            raise _usage(f"--identifier {kind}=… is given twice; run the purge once per {kind}")
        out[kind] = _secret(f"the {kind} to block") if value.strip() == "-" else value.strip()
    return out


def _secret(what: str) -> str:
    """A value given as ``-``: one line of stdin, or a no-echo prompt on a terminal."""
    if sys.stdin.isatty():
        try:
            value = getpass.getpass(f"Enter {what} (not shown): ")
        except EOFError:
            value = ""
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not value.strip():
        raise _usage(f"{what} was given as '-' but none was read from stdin")
    return value


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "-"


class _Progress:
    """Shows each step on a terminal as it runs; ``wait`` notices go out even when not a tty."""

    def __init__(self, out: TextIO, *, live: bool) -> None:
        self.out, self.live = out, live

    def __call__(self, event: PurgeEvent) -> None:
        if event.kind == "wait":
            print(
                f"waiting: another process is running purge job {event.job_id}; "
                "its result will be reported when it is done",
                file=self.out,
                flush=True,
            )
        elif not self.live:
            return
        elif event.kind == "start":
            print(f"  {event.step:<28} running…", end="", file=self.out, flush=True)
        elif event.kind == "done":
            print(f"\r  {event.step:<28} {event.count:<10}", file=self.out, flush=True)
        elif event.kind == "skip":
            print(f"  {event.step:<28} {event.count:<10} (done before)", file=self.out, flush=True)


def _report_json(report: PurgeReport, receipt: str | None = None) -> dict[str, Any]:
    return {
        "job_id": report.job_id,
        "state": report.state,
        "already_done": report.already_done,
        "ticket": report.ticket,
        "deleted": report.deleted,
        "identifiers_blocked": report.identifiers_blocked,
        "finished_at": report.finished_at.isoformat() if report.finished_at else None,
        "uncounted": list(report.uncounted),
        "error": report.error,
        "not_run": list(report.not_run),
        "receipt": receipt,
        "plan": [
            {"handler": s.handler, "table": s.table, "path": s.path, "action": s.action, "count": s.count}
            for s in report.plan
        ],
    }


def _print_report(report: PurgeReport, gate: AgeGate) -> None:
    if report.state == "dry_run":
        print(f"Dry run for ticket {report.ticket}: nothing was deleted, frozen or blocked.")
        if report.already_done:
            print(f"This account was already purged (job {report.job_id}).")
        print("A purge would delete:")
    elif report.already_done:
        print(
            f"Already done: this account was purged by job {report.job_id} (ticket {report.ticket}, "
            f"finished {_when(report.finished_at)}). Nothing was deleted now."
        )
    else:
        print(f"Purge done for ticket {report.ticket} (job {report.job_id}), {_when(report.finished_at)}.")
        print("The account is frozen (under_age) everywhere. Deleted:")
    for name, count in report.deleted.items():
        print(f"  {name:<28} {count}")
    for name in report.uncounted:
        print(f"  {name:<28} ? (this handler cannot count in advance)")
    if report.plan:
        print("Plan of the relational handlers (table, reached by, action, rows):")
        for step in report.plan:
            print(f"  {step.handler}: {step.table:<24} {step.path}  [{step.action}] {step.count}")
    if report.not_run:
        print(
            f"  NOT RUN yet: {', '.join(report.not_run)}: registered after this account's purge "
            "finished; run the purge again (without --dry-run) to delete the account's data there."
        )
    if report.identifiers_blocked:
        verb = "would be" if report.state == "dry_run" else "are"
        until = (report.finished_at or datetime.now(UTC)) + gate.identifier_block
        print(
            f"  {report.identifiers_blocked} identifier(s) {verb} blocked from signing up again "
            f"until about {until:%Y-%m-%d}."
        )


async def _write_receipt(gate: AgeGate, job_id: str, path: str) -> str:
    found = await gate.purger.find(job_id=job_id)
    if found is None:
        raise JobNotFound(f"purge job {job_id} is not in the journal")
    _save(path, gate.purger.receipt(found))
    return path


def _save(path: str, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot write the receipt to {path!r}: {exc.strerror}") from None


async def _confirm(gate: AgeGate, args: argparse.Namespace, identifiers: dict[str, str]) -> bool:
    preview = await gate.purger.purge(
        args.subject, ticket=args.ticket, operator=args.operator, identifiers=identifiers, dry_run=True
    )
    if preview.already_done:
        return True
    counts = ", ".join(f"{name} ({count})" for name, count in preview.deleted.items())
    counts += "".join(f", {name} (?)" for name in preview.uncounted)
    print(
        f"About to purge the account for ticket {args.ticket}: freeze it, delete its data from "
        f"{counts or 'no handlers'}, and block {preview.identifiers_blocked} identifier(s). "
        "This cannot be undone.",
        file=sys.stderr,
    )
    print("Type 'yes' to continue: ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("yes", "y")


def _purge(args: argparse.Namespace) -> int:
    modes = [flag for flag, on in (("--resume", args.resume), ("--coverage", args.coverage)) if on]
    if len(modes) > 1:
        raise _usage("--resume and --coverage cannot be used together")
    if modes:
        # Flags that do not fit the mode are refused rather than ignored: a --dry-run that is
        # silently dropped from a --resume would really delete.
        unfit = [
            flag
            for flag, given in (
                ("--subject", args.subject is not None),
                ("--ticket", args.ticket is not None),
                ("--operator", args.operator is not None),
                ("--identifier", bool(args.identifier)),
                ("--dry-run", args.dry_run),
                ("--receipt", args.receipt is not None),
                ("--yes", args.yes and args.coverage),
            )
            if given
        ]
        if unfit:
            raise _usage(f"{modes[0]} does not take {', '.join(unfit)}")
    if not modes:
        missing = [
            f
            for f, v in (
                ("--subject", args.subject),
                ("--ticket", args.ticket),
                ("--operator", args.operator),
            )
            if not v
        ]
        if missing:
            raise _usage(f"a purge needs {', '.join(missing)} (or use --resume or --coverage)")
    if args.subject == "-":
        args.subject = _secret("the account id")
    identifiers = _identifiers(args.identifier)
    gate = load_gate(args.app)
    if args.coverage:
        return _coverage(gate, args)
    if args.resume:
        return _resume(gate, args)
    try:
        gate.purger.check_request(args.subject, args.ticket, args.operator, identifiers)
    except ConfigurationError as exc:
        raise _usage(str(exc)) from None
    if not args.dry_run and not args.yes and not sys.stdin.isatty():
        raise _usage("refusing to purge without confirmation: pass --yes (stdin is not a terminal)")

    async def work() -> tuple[PurgeReport | None, str | None]:
        if not args.dry_run and not args.yes and not await _confirm(gate, args, identifiers):
            return None, None
        stop = gate.purger.listen(_Progress(sys.stderr, live=sys.stderr.isatty() and not args.json))
        try:
            report = await gate.purger.purge(
                args.subject,
                ticket=args.ticket,
                operator=args.operator,
                identifiers=identifiers,
                dry_run=args.dry_run,
            )
        finally:
            stop()
        if args.receipt and report.state == "done":
            return report, await _write_receipt(gate, report.job_id, args.receipt)
        return report, None

    report, receipt = _run(gate, work)
    if report is None:
        print("Not confirmed: nothing was done.", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        print(json.dumps(_report_json(report, receipt)))
    else:
        _print_report(report, gate)
        if receipt:
            print(f"Signed receipt written to {receipt}: send it to the person who reported the account.")
    # Data left behind by handlers that did not run is a failure a script must notice.
    return EXIT_FAILURE if report.not_run and report.state != "dry_run" else EXIT_OK


def _resume(gate: AgeGate, args: argparse.Namespace) -> int:
    stop = gate.purger.listen(_Progress(sys.stderr, live=sys.stderr.isatty() and not args.json))
    try:
        reports = _run(gate, gate.purger.resume)
    finally:
        stop()
    if args.json:
        print(json.dumps([_report_json(r) for r in reports]))
    elif not reports:
        print("Nothing to resume: every purge job has finished.")
    for report in reports:
        if args.json:
            break
        if report.state == "failed":
            print(f"Job {report.job_id} (ticket {report.ticket}) failed again: {report.error}")
        else:
            _print_report(report, gate)
    return EXIT_FAILURE if any(r.state == "failed" for r in reports) else EXIT_OK


def _coverage(gate: AgeGate, args: argparse.Namespace) -> int:
    uncovered, tables = _run(gate, gate.purger.coverage)
    if args.json:
        print(
            json.dumps(
                {
                    "tables_checked": tables,
                    "uncovered": [
                        {"database": u.database, "table": u.table, "column": u.column, "looks_like": u.kind}
                        for u in uncovered
                    ],
                }
            )
        )
    elif tables == 0:
        print("No SQL database is known through the built-in handlers: nothing to check.")
    elif not uncovered:
        print(f"Covered: every personal-looking column in {tables} table(s) is purged or exempt.")
    else:
        print("Not covered by any purge handler (add a handler, or exempt the column if it is not personal):")
        for u in uncovered:
            print(f"  {u.database}  {u.table}.{u.column}  (looks like {u.kind})")
    return EXIT_FAILURE if uncovered else EXIT_OK


def _audit(args: argparse.Namespace) -> int:
    gate = load_gate(args.app)
    jobs = _run(gate, gate.purger.jobs)
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
            f"{_when(job.created_at):<21} {_when(job.finished_at):<21} {steps}"
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
        raise _usage(f"--public-key: {exc}") from None
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
        raise _usage("give exactly one of --job or --ticket")
    gate = load_gate(args.app)
    job = _run(gate, lambda: gate.purger.find(job_id=args.job, ticket=args.ticket))
    if job is None:
        raise JobNotFound("no purge job matches")
    text = gate.purger.receipt(job)
    if args.out:
        _save(args.out, text)
        print(f"Signed receipt for job {job.job_id} written to {args.out}.")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _json_errors(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """With ``--json``, a failure is also printed as JSON on stdout, for scripts that parse it."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except AgeGateError as exc:
            if getattr(args, "json", False):
                code = EXIT_USAGE if isinstance(exc, UsageError) else EXIT_FAILURE
                print(json.dumps({"error": str(exc), "exit": code}))
            raise

    return run


def register(sub: Any) -> None:
    """Add ``purge``, ``audit``, ``keys`` and ``receipt`` to the ``agegate`` parser."""
    app_help = "the app's gate as MODULE:ATTR (default: $AGEGATE_APP)"
    purge = sub.add_parser(
        "purge",
        help="delete a reported child's account data everywhere the app registered",
        description="Freeze an account, delete its data with every registered handler, block its "
        "identifiers, and journal it all. Exit 0 done (or already done), 1 failure, 2 bad usage.",
    )
    purge.add_argument("--app", help=app_help)
    purge.add_argument(
        "--subject", help="the account id to purge (never stored or printed); '-' reads it from stdin"
    )
    purge.add_argument("--ticket", help="the support ticket number (kept in the audit log)")
    purge.add_argument("--operator", help="who runs the purge (kept in the audit log)")
    purge.add_argument(
        "--identifier",
        action="append",
        metavar="KIND=VALUE",
        help="an identifier to block from signing up again: email=, phone= or username= (repeatable); "
        "KIND=- reads the value from stdin",
    )
    purge.add_argument("--dry-run", action="store_true", help="count what would be deleted; change nothing")
    purge.add_argument("--json", action="store_true", help="print JSON")
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    purge.add_argument("--receipt", metavar="FILE", help="write the signed deletion receipt to FILE")
    purge.add_argument("--resume", action="store_true", help="finish every interrupted or failed purge")
    purge.add_argument(
        "--coverage", action="store_true", help="list personal-looking columns no handler purges"
    )
    purge.set_defaults(func=_json_errors(_purge))

    audit = sub.add_parser("audit", help="the purge log (free of personal data)")
    audit.add_argument("--app", help=app_help)
    audit.add_argument("--ticket", help="only this ticket's jobs")
    audit.add_argument("--json", action="store_true", help="print JSON")
    audit.set_defaults(func=_json_errors(_audit))

    keys = sub.add_parser("keys", help="key utilities")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    public = keys_sub.add_parser("public", help="print the public key that verifies deletion receipts")
    public.add_argument("--all", action="store_true", help="one kid:key line per listed key (rotation)")
    public.set_defaults(func=_keys_public)

    receipt = sub.add_parser("receipt", help="deletion receipts")
    receipt_sub = receipt.add_subparsers(dest="receipt_command", required=True, metavar="COMMAND")
    verify = receipt_sub.add_parser("verify", help="check a receipt's signature (exit 0 valid, 1 not)")
    verify.add_argument("file", metavar="FILE")
    verify.add_argument(
        "--public-key", help="the key from `agegate keys public` (default: from AGEGATE_SECRET_KEYS)"
    )
    verify.add_argument("--json", action="store_true", help="print JSON")
    verify.set_defaults(func=_json_errors(_receipt_verify))
    issue = receipt_sub.add_parser("issue", help="(re)issue the receipt of a finished purge")
    issue.add_argument("--app", help=app_help)
    issue.add_argument("--job", help="the job id")
    issue.add_argument("--ticket", help="the ticket (its latest job)")
    issue.add_argument("--out", "-o", metavar="FILE", help="write to FILE instead of printing")
    issue.set_defaults(func=_receipt_issue)
