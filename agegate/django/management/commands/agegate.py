"""``manage.py agegate …``: agegate's command line, for this site's gate.

``manage.py agegate purge --subject 42 --ticket T-1 --operator ann`` runs ``agegate purge`` with
``--app`` taken from ``AGEGATE["gate"]`` (``AGEGATE_APP`` if set wins), after Django is set up,
so model handlers (:func:`agegate.django.purge_model`) can use the ORM.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from agegate.cli import main
from agegate.django.config import gate_spec

__all__ = ["Command"]


class Command(BaseCommand):
    help = "Run agegate's command line (purge, audit, …) for this site's gate."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("words", nargs=argparse.REMAINDER, help="agegate's arguments, e.g. purge --help")

    def run_from_argv(self, argv: list[str]) -> None:
        # agegate's own parser reads every word: Django's must not take --subject and the like.
        self._run(argv[2:])

    def handle(self, *args: Any, **options: Any) -> None:
        self._run([*args, *options.get("words", ())])

    def _run(self, words: list[str]) -> None:
        if not os.environ.get("AGEGATE_APP"):
            os.environ["AGEGATE_APP"] = gate_spec()
        status = main(words)
        if status:
            raise CommandError(f"agegate exited with status {status}", returncode=status)
