"""``agegate purge``, ``audit``, ``receipt`` and ``keys`` (issue 5)."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    """Add the purge commands to the ``agegate`` parser."""
    return None
