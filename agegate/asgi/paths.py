"""Paths: the protect/exempt/signup patterns, the path the app routes on, and safe redirects."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote

from starlette.types import Scope

from ..errors import ConfigurationError

__all__ = ["compile_patterns", "resolve_dots", "route_path", "safe_next"]

_PATTERN = re.compile(r"/[^\s\x00-\x1f\x7f]{0,1023}")
_NEXT = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/?%#]{0,2047}", re.ASCII)


def compile_patterns(name: str, patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One regex for a list of path patterns: ``*`` matches anything; a trailing ``/*`` also
    matches the bare path (``/checkout/*`` covers ``/checkout``). ``None`` for an empty list."""
    if isinstance(patterns, str | bytes):
        raise ConfigurationError(f"{name} takes a list of path patterns, for example ['/checkout/*']")
    try:
        items = list(patterns)
    except TypeError:
        raise ConfigurationError(f"{name} takes a list of path patterns") from None
    parts = []
    for pattern in items:
        if not isinstance(pattern, str) or not _PATTERN.fullmatch(pattern):
            raise ConfigurationError(
                f"{name}: a path pattern starts with '/' and has no spaces, for example '/checkout/*'"
            )
        tail = ""
        if pattern.endswith("/*") and len(pattern) > 2:
            pattern, tail = pattern[:-2], "(?:/.*)?"
        parts.append(".*".join(re.escape(piece) for piece in pattern.split("*")) + tail)
    if not parts:
        return None
    return re.compile("|".join(parts), re.DOTALL)


def route_path(scope: Scope) -> str:
    """The path the app routes on: without the root path the app is mounted under."""
    path: str = scope["path"]
    root = scope.get("root_path")
    if root and path.startswith(root):
        return path[len(root) :]
    return path


def resolve_dots(path: str) -> str:
    """``path`` with repeated slashes collapsed, ``.``/``..`` segments resolved and no trailing
    slash, as a client, a proxy or the app's router may read it; never climbs above ``/``."""
    parts: list[str] = []
    for part in path.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part and part != ".":
            parts.append(part)
    return "/" + "/".join(parts)


def safe_next(value: str | None, default: str = "/") -> str:
    """``value`` when it is a same-site relative path, else ``default``.

    Refused: anything not starting with one ``/`` (schemes, ``//host``, ``/\\host``), control
    characters and spaces, non-ASCII, invalid UTF-8 escapes, and any of these hidden behind
    percent-encoding.
    """
    if not value or not _NEXT.fullmatch(value):
        return default
    decoded = value
    for _ in range(3):  # double- and triple-encoded variants too
        if "%" in decoded:
            try:
                decoded = unquote(decoded, errors="strict")
            except UnicodeDecodeError:
                return default
        # Every form here starts with "/" (the pattern above, and "/" is never unquoted away).
        if decoded.startswith("//") or "\\" in decoded or not decoded.isprintable():
            return default
    return value
