"""What the purge command tells an operator before a purge (the confirmation it asks for) and when
a purge cannot or did not finish: an id that matched nothing, and Ctrl-C (with the exact command
that finishes the job)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence

from ..purge import PurgeEvent

__all__ = ["Started", "confirmed", "interrupted", "no_match_message", "resume_command"]


def confirmed(warning: str) -> bool:
    """Say on stderr what is about to be done, and whether the operator typed yes to it."""
    print(warning, file=sys.stderr)
    print("Type 'yes' to continue: ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("yes", "y")


def resume_command(args: argparse.Namespace) -> str:
    """The exact command that finishes interrupted purges of this app."""
    spec = args.app or os.environ.get("AGEGATE_APP", "")
    return f"agegate purge --app {shlex.quote(spec.strip())} --resume"


def interrupted(args: argparse.Namespace, job_id: str | None, *, began: bool) -> KeyboardInterrupt:
    """What Ctrl-C says: whether anything was done, and how to finish it."""
    if job_id is None and not began:
        return KeyboardInterrupt("nothing was purged")
    if job_id is None:
        # Stopped between journalling the job and its first step: nothing is deleted or frozen
        # yet, but the job exists and a later --resume would run it.
        return KeyboardInterrupt(
            f"the purge stopped before its first step; nothing is deleted yet. Finish it with: "
            f"{resume_command(args)}"
        )
    return KeyboardInterrupt(
        f"purge job {job_id} stopped part-way; the account is frozen and the finished steps "
        f"stay done. Finish it with: {resume_command(args)}"
    )


class Started:
    """A listener remembering the job a purge started working on."""

    def __init__(self) -> None:
        self.job_id: str | None = None
        self.began = False  # the purge itself was called (a job may exist)

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
