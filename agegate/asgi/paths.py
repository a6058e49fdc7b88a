"""Paths: the protect/exempt/signup patterns, the path the app routes on, and safe redirects."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote

from starlette.types import Scope

from ..errors import ConfigurationError

__all__ = ["PathRules", "compile_patterns", "readings", "resolve_dots", "route_path", "safe_next"]

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


def _strip_params(path: str) -> str:
    """``path`` without ``;parameters`` in any segment (``/checkout;v=1/x`` → ``/checkout/x``),
    as some servers and proxies read it."""
    return "/".join(segment.partition(";")[0] for segment in path.split("/"))


def _odd(path: str) -> bool:
    """Whether another reader could take ``path`` for a different path."""
    return "//" in path or "/." in path or ";" in path or "\\" in path or (len(path) > 1 and path[-1] == "/")


def readings(scope: Scope) -> tuple[str, ...]:
    """Every path the app, its router or a proxy in front of it may take this request for: as
    sent (still percent-encoded), percent-decoded, and each with dot segments, repeated and
    trailing slashes, ``;parameters`` and backslashes resolved. Usually just one."""
    path = route_path(scope) or "/"
    raw = scope.get("raw_path")
    sent = path
    if raw is not None:
        sent = raw.decode("latin-1").partition("?")[0]
        root = scope.get("root_path")
        if root and sent.startswith(root):
            sent = sent[len(root) :]
        sent = sent or "/"
    if sent == path and not _odd(path):
        return (path,)
    found = dict.fromkeys((path, sent))
    for reading in (path, sent):
        if "\\" in reading:
            found[reading.replace("\\", "/")] = None
            found[resolve_dots(reading.replace("\\", "/"))] = None
        if ";" in reading:
            found[_strip_params(reading)] = None
            found[resolve_dots(_strip_params(reading))] = None
        found[resolve_dots(reading)] = None
    return tuple(found)


class PathRules:
    """Which requests the gate looks at, for every reading of their path (:func:`readings`).

    A request is protected if *any* reading is protected, or is a signup path; it is exempt, a
    signup path, or the screen only if *every* reading agrees. So a path that the app's router
    and the gate read differently can only make the gate stricter, never looser.
    """

    def __init__(
        self,
        *,
        prefix: str,
        protect: Iterable[str] | None,
        exempt: Iterable[str],
        signup_paths: Iterable[str],
    ) -> None:
        self.prefix = prefix
        self._under_prefix = prefix + "/"
        self._protect = None if protect is None else compile_patterns("protect", protect)
        self._protect_all = protect is None
        self._exempt = compile_patterns("exempt", exempt)
        self._signup = compile_patterns("signup_paths", signup_paths)

    def is_screen(self, paths: tuple[str, ...]) -> bool:
        """Whether every reading is the screen's own path."""
        return all(path == self.prefix for path in paths)

    def is_signup(self, paths: tuple[str, ...]) -> bool:
        """Whether every reading is a signup path."""
        signup = self._signup
        return signup is not None and all(signup.fullmatch(path) for path in paths)

    def is_gated(self, paths: tuple[str, ...]) -> bool:
        """Whether an unsafe request on these readings needs a screen result: some reading is
        protected and not every reading is exempt, or some reading is a signup path (signup
        paths are screened whatever ``protect`` and ``exempt`` say: accounts are made there)."""
        signup = self._signup
        if signup is not None and any(signup.fullmatch(path) for path in paths):
            return True
        protect = self._protect
        if not self._protect_all and not (protect is not None and any(protect.fullmatch(p) for p in paths)):
            return False
        return not all(self._exempt_one(path) for path in paths)

    def _exempt_one(self, path: str) -> bool:
        if path == self.prefix or path.startswith(self._under_prefix):
            return True
        return self._exempt is not None and self._exempt.fullmatch(path) is not None
