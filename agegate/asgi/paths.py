"""Paths: the protect/exempt/signup patterns, the path the app routes on, and safe redirects."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, unquote

from starlette.types import Scope

from ..errors import ConfigurationError
from .pages import screen_url

__all__ = [
    "GATED",
    "OPEN",
    "PATH_SAFE",
    "SIGNUP",
    "PathRules",
    "Patterns",
    "readings",
    "resolve_dots",
    "route_path",
    "safe_next",
    "screen_location",
]

#: What stays unescaped in a path written into a ``Location`` header (ASCII only).
PATH_SAFE = "/-._~!$&'()*+,;=:@"
_PATTERN = re.compile(r"/[^\s\x00-\x1f\x7f]{0,1023}")
#: Escapes that can change how a path splits into segments: . / \\ ; ? # % and NUL.
_STRUCTURAL = re.compile(r"%(?:2[eEfF]|5[cC]|3[bBfF]|23|25|00)")
_NEXT = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/?%#]{0,2047}", re.ASCII)


class Patterns:
    """A list of path patterns, ready to match: ``*`` matches anything (``/`` included); a
    trailing ``/*`` also matches the bare path (``/checkout/*`` covers ``/checkout``); and a
    pattern also matches its path with one trailing slash (``/contact`` covers ``/contact/``).

    Matching takes time linear in the path for every pattern: patterns with one ``*`` are one
    regular expression, and those with more are matched by finding their literal pieces in turn
    (a regular expression of several ``.*`` backtracks without bound on a long path).
    """

    def __init__(self, name: str, patterns: Iterable[str]) -> None:
        if isinstance(patterns, str | bytes):
            raise ConfigurationError(f"{name} takes a list of path patterns, for example ['/checkout/*']")
        try:
            items = list(patterns)
        except TypeError:
            raise ConfigurationError(f"{name} takes a list of path patterns") from None
        simple: list[str] = []
        self._pieces: list[tuple[list[str], bool]] = []
        for pattern in items:
            if not isinstance(pattern, str) or not _PATTERN.fullmatch(pattern):
                raise ConfigurationError(
                    f"{name}: a path pattern starts with '/' and has no spaces, for example '/checkout/*'"
                )
            bare = pattern.endswith("/*") and len(pattern) > 2
            if bare:
                pattern = pattern[:-2]
            if pattern.count("*") > 1:
                self._pieces.append((pattern.split("*"), bare))
                continue
            tail = "(?:/.*)?" if bare else "/?"
            simple.append(".*".join(re.escape(piece) for piece in pattern.split("*")) + tail)
        self._regex = re.compile("|".join(simple), re.DOTALL) if simple else None
        #: Whether there are no patterns at all (nothing can match).
        self.empty = not items

    def match(self, path: str) -> bool:
        """Whether ``path`` matches any of the patterns."""
        if self._regex is not None and self._regex.fullmatch(path):
            return True
        for pieces, bare in self._pieces:
            if _glob(pieces, path) or (path[-1:] == "/" and _glob(pieces, path[:-1])):
                return True
            if bare and _glob([*pieces[:-1], pieces[-1] + "/", ""], path):
                return True
        return False

    def match_any(self, paths: Iterable[str]) -> bool:
        """Whether any of ``paths`` (the readings of one path) matches any of the patterns."""
        return any(self.match(path) for path in paths)


def _glob(pieces: list[str], path: str) -> bool:
    """Whether ``path`` is ``pieces`` joined by runs of any characters (``*``), in linear time:
    the first piece leads, the last ends, and the others are found in turn, leftmost first."""
    first, *middle, last = pieces
    if len(path) < len(first) + len(last) or not path.startswith(first) or not path.endswith(last):
        return False
    at, end = len(first), len(path) - len(last)
    for piece in middle:
        found = path.find(piece, at, end)
        if found < 0:
            return False
        at = found + len(piece)
    return True


def _strip_root(path: str, root: str | None) -> str:
    # As Starlette's router does: the root path only counts up to a "/" ("/v" is not the root
    # of "/vip"), so the gate and the app route on the same path.
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :]
    return path


def route_path(scope: Scope) -> str:
    """The path the app routes on: without the root path the app is mounted under."""
    return _strip_root(scope["path"], scope.get("root_path"))


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


def screen_location(root: str, prefix: str, target: str, query: bytes | None) -> bytes:
    """The address of the screen at ``prefix`` under the root path ``root``, for ``Location``
    (ASCII), with ``next`` the address as sent (``target``, ``query``) when it is a same-site
    path (else the app's home page)."""
    home = quote(root, safe=PATH_SAFE) + "/"
    back = safe_next(target, home)
    if query and back == target:
        back = safe_next(f"{target}?{query.decode('latin-1')}", back)
    return screen_url(home[:-1] + prefix, back).encode("ascii")


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
        sent = _strip_root(raw.decode("latin-1").partition("?")[0], scope.get("root_path")) or "/"
        if sent != path and not _STRUCTURAL.search(sent) and unquote(sent) == path:
            # Escapes of plain characters ("%C3%A9", "%3A") change no segment: the decoded path
            # says all the as-sent one does.
            sent = path
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


#: What :meth:`PathRules.classify` answers.
OPEN, GATED, SIGNUP = "open", "gated", "signup"


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
        self._protect = None if protect is None else Patterns("protect", protect)
        self._exempt = Patterns("exempt", exempt)
        self._signup = Patterns("signup_paths", signup_paths)
        #: Every path outside the screen's prefix is gated (no protect, exempt or signup
        #: patterns): a request whose path does not contain the prefix needs no readings.
        self.gates_all = self._protect is None and self._exempt.empty and self._signup.empty

    def is_screen(self, paths: tuple[str, ...]) -> bool:
        """Whether every reading is the screen's own path."""
        return all(path == self.prefix for path in paths)

    def is_report(self, paths: tuple[str, ...]) -> bool:
        """Whether every reading is the report form's path (``{prefix}/report``)."""
        return all(path == self._under_prefix + "report" for path in paths)

    def classify(self, paths: tuple[str, ...]) -> str:
        """:data:`OPEN` (the gate stays out of the way), :data:`SIGNUP` (every reading is a
        signup path: screened inline by the app's signup hook) or :data:`GATED` (a screen result
        is needed). Signup paths are screened whatever ``protect`` and ``exempt`` say: accounts
        are made there."""
        if len(paths) == 1:  # the common case, without the generators
            path = paths[0]
            if self._signup.match(path):
                return SIGNUP
            if self._protect is not None and not self._protect.match(path):
                return OPEN
            return OPEN if self._exempt_one(path) else GATED
        signup = [self._signup.match(path) for path in paths]
        if any(signup):
            return SIGNUP if all(signup) else GATED
        protect = self._protect
        if protect is not None and not any(protect.match(path) for path in paths):
            return OPEN
        return OPEN if all(self._exempt_one(path) for path in paths) else GATED

    def _exempt_one(self, path: str) -> bool:
        if path == self.prefix or path.startswith(self._under_prefix):
            return True
        return self._exempt.match(path)
