"""The ``agegate`` console script: one module per command group, :func:`main` runs them.

Exit status: 0 success, 1 failure (for ``check``: under age), 2 bad usage or bad input.
"""

from ..errors import UsageError
from .dispatch import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, build_parser, main

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "UsageError", "build_parser", "main"]
