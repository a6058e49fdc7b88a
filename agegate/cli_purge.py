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
import shlex
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, TypeVar

from .cli_coverage import run_coverage
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


class NoMatch(AgeGateError):
    """The account id matched nothing anywhere (exit status 1); ``--allow-no-match`` purges it
    anyway."""


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
    except AgeGateError as exc:
        # agegate's own messages are written to be shown (no key material, no personal data).
        raise AppNotFound(f"the app module {module_name!r} cannot start: {exc}") from None
    except SystemExit as exc:
        raise AppNotFound(
            f"the app module {module_name!r} exited (status {exc.code}) while being imported"
        ) from None
    except Exception as exc:
        raise _import_failed(module_name, exc) from None
    found: Any = module
    for part in attr.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise AppNotFound(f"the app module {module_name!r} has no {attr!r}") from None
        except AgeGateError as exc:
            raise AppNotFound(f"{spec} cannot start: {exc}") from None
        except Exception as exc:
            # A lazy module attribute (a module __getattr__) that builds the gate failed.
            raise _import_failed(module_name, exc) from None
    for candidate in (
        found,
        getattr(found, "gate", None),
        getattr(getattr(found, "state", None), "gate", None),
    ):
        if isinstance(candidate, AgeGate):
            return candidate
    raise AppNotFound(f"{spec} is not an AgeGate, nor an object with .gate or .state.gate")


def _import_failed(module_name: str, exc: Exception) -> AppNotFound:
    # Only the exception's class: its message may hold a connection string or a password.
    return AppNotFound(
        f"importing the app module {module_name!r} failed with {type(exc).__name__}; "
        f"run `python -c 'import {module_name}'` to see why"
    )


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


#: The flags each mode of ``agegate purge`` takes (besides --app and --json); any other flag
#: given is refused rather than ignored: a --dry-run silently dropped from a --resume would
#: really delete.
_MODE_FLAGS = {
    "--resume": set(),
    "--coverage": set(),
    "--vacuum": set(),
    "--subjects-from": {"--ticket", "--operator", "--dry-run", "--yes", "--allow-no-match", "--concurrency"},
    None: {"--subject", "--ticket", "--operator", "--identifier", "--dry-run", "--receipt", "--yes",
           "--allow-no-match"},
}  # fmt: skip


def _given(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The modes and the other flags given on the command line."""
    modes = [
        flag
        for flag, on in (
            ("--resume", args.resume),
            ("--coverage", args.coverage),
            ("--vacuum", args.vacuum),
            ("--subjects-from", args.subjects_from is not None),
        )
        if on
    ]
    flags = [
        flag
        for flag, on in (
            ("--subject", args.subject is not None),
            ("--ticket", args.ticket is not None),
            ("--operator", args.operator is not None),
            ("--identifier", bool(args.identifier)),
            ("--dry-run", args.dry_run),
            ("--receipt", args.receipt is not None),
            ("--yes", args.yes),
            ("--allow-no-match", args.allow_no_match),
            ("--concurrency", args.concurrency is not None),
        )
        if on
    ]
    return modes, flags


def resume_command(args: argparse.Namespace) -> str:
    """The exact command that finishes interrupted purges of this app."""
    spec = args.app or os.environ.get("AGEGATE_APP", "")
    return f"agegate purge --app {shlex.quote(spec.strip())} --resume"


def interrupted(args: argparse.Namespace, job_id: str | None) -> KeyboardInterrupt:
    """What Ctrl-C says: whether anything was done, and how to finish it."""
    if job_id is None:
        return KeyboardInterrupt("nothing was purged")
    return KeyboardInterrupt(
        f"purge job {job_id} stopped part-way; the account is frozen and the finished steps "
        f"stay done. Finish it with: {resume_command(args)}"
    )


class _Started:
    """A listener remembering the job a purge started working on."""

    def __init__(self) -> None:
        self.job_id: str | None = None

    def __call__(self, event: PurgeEvent) -> None:
        if event.kind in ("start", "skip", "done") and self.job_id is None:
            self.job_id = event.job_id


def no_match_message(uncounted: Sequence[str]) -> str:
    """Why an account id that matched nothing is refused, and what the operator can do."""
    unsure = f" ({', '.join(uncounted)} cannot count in advance, so could not be asked)" if uncounted else ""
    return (
        f"nothing matched this account id: no handler has data of it{unsure} and the gate has no "
        "record of it. Check that it is the account id (not the email or username); if it is "
        "right, run the same command with --allow-no-match"
    )


def _purge(args: argparse.Namespace) -> int:
    modes, flags = _given(args)
    if len(modes) > 1:
        raise _usage(f"{' and '.join(modes)} cannot be used together")
    mode = modes[0] if modes else None
    unfit = [flag for flag in flags if flag not in _MODE_FLAGS[mode]]
    if unfit:
        raise _usage(f"{mode or 'a purge of one account'} does not take {', '.join(unfit)}")
    if mode == "--subjects-from":
        from .cli_batch import run_batch

        return run_batch(args)
    if mode is None:
        needed = (("--subject", args.subject), ("--ticket", args.ticket), ("--operator", args.operator))
        missing = [flag for flag, value in needed if not value]
        if missing:
            raise _usage(
                f"a purge needs {', '.join(missing)} (or use --subjects-from, --resume or --coverage)"
            )
    if args.subject == "-":
        args.subject = _secret("the account id")
    identifiers = _identifiers(args.identifier)
    gate = load_gate(args.app)
    if mode == "--coverage":
        return run_coverage(gate, args)
    if mode == "--vacuum":
        from .cli_vacuum import run_vacuum

        return run_vacuum(gate, args)
    if mode == "--resume":
        return _resume(gate, args)
    receipt = str(Path(args.receipt).resolve()) if args.receipt else None
    try:
        gate.purger.check_request(args.subject, args.ticket, args.operator, identifiers, receipt=receipt)
    except ConfigurationError as exc:
        raise _usage(str(exc)) from None
    if not args.dry_run and not args.yes and not sys.stdin.isatty():
        raise _usage("refusing to purge without confirmation: pass --yes (stdin is not a terminal)")
    started = _Started()

    async def work() -> tuple[PurgeReport | None, str | None]:
        if not args.allow_no_match:
            match = await gate.purger.find_match(args.subject)
            if not match.matched:
                raise NoMatch(no_match_message(match.uncounted))
        if not args.dry_run and not args.yes and not await _confirm(gate, args, identifiers):
            return None, None
        stops = [
            gate.purger.listen(_Progress(sys.stderr, live=sys.stderr.isatty() and not args.json)),
            gate.purger.listen(started),
        ]
        try:
            report = await gate.purger.purge(
                args.subject,
                ticket=args.ticket,
                operator=args.operator,
                identifiers=identifiers,
                dry_run=args.dry_run,
                receipt=receipt,
            )
        finally:
            for stop in stops:
                stop()
        if receipt and report.state == "done":
            return report, await _write_receipt(gate, report.job_id, receipt)
        return report, None

    try:
        report, written = _run(gate, work)
    except KeyboardInterrupt:
        raise interrupted(args, started.job_id) from None
    if report is None:
        print("Not confirmed: nothing was done.", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        print(json.dumps(_report_json(report, written)))
    else:
        _print_report(report, gate)
        if written:
            print(f"Signed receipt written to {written}: send it to the person who reported the account.")
    # Data left behind by handlers that did not run is a failure a script must notice.
    return EXIT_FAILURE if report.not_run and report.state != "dry_run" else EXIT_OK


def _resume(gate: AgeGate, args: argparse.Namespace) -> int:
    stop = gate.purger.listen(_Progress(sys.stderr, live=sys.stderr.isatty() and not args.json))

    async def work() -> tuple[list[PurgeReport], dict[str, str]]:
        reports = await gate.purger.resume()
        # A receipt asked for when the job began is part of the job: written now it is done.
        written: dict[str, str] = {}
        for report in reports:
            if report.state == "done" and report.receipt:
                written[report.job_id] = await _write_receipt(gate, report.job_id, report.receipt)
        return reports, written

    try:
        reports, written = _run(gate, work)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"run it again to finish: {resume_command(args)}") from None
    finally:
        stop()
    if args.json:
        print(json.dumps([_report_json(r, written.get(r.job_id)) for r in reports]))
    elif not reports:
        print("Nothing to resume: every purge job has finished.")
    for report in reports:
        if args.json:
            break
        if report.state == "failed":
            print(f"Job {report.job_id} (ticket {report.ticket}) failed again: {report.error}")
        else:
            _print_report(report, gate)
            if report.job_id in written:
                print(f"Signed receipt written to {written[report.job_id]} (asked for when the purge began).")
    return EXIT_FAILURE if any(r.state == "failed" for r in reports) else EXIT_OK


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
        "--coverage",
        action="store_true",
        help="list personal-looking columns no handler purges (exit 1 if any, 2 if no database is known)",
    )
    purge.add_argument(
        "--allow-no-match",
        action="store_true",
        help="purge an account id even though no handler and no record of the gate matches it",
    )
    purge.add_argument(
        "--subjects-from",
        metavar="FILE",
        help="purge every account listed in FILE ('-' for stdin): one 'ID [ticket=T] [email=… …]' per line",
    )
    purge.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="with --subjects-from: how many accounts are purged at once (default 4)",
    )
    purge.add_argument(
        "--vacuum",
        action="store_true",
        help="clear deleted rows from the databases' files (SQLite VACUUM, PostgreSQL VACUUM)",
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
