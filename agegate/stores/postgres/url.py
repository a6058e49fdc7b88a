"""A ``postgresql://`` store URL taken apart."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from ...errors import StoreError

__all__ = ["PostgresURL"]

_OPTIONS = ("schema", "pool_min_size", "pool_max_size", "pool_timeout")
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class PostgresURL:
    """A ``postgresql://`` store URL taken apart: what goes to libpq, agegate's own options, and
    a form safe to print (no password)."""

    __slots__ = ("conninfo", "password", "pool_max_size", "pool_min_size", "pool_timeout", "safe", "schema")

    def __init__(self, url: str) -> None:
        if not isinstance(url, str):
            raise StoreError("a PostgreSQL store URL is a string like postgresql://user@host:5432/dbname")
        scheme, sep, _ = url.partition("://")
        if scheme.lower() not in ("postgresql", "postgres") or not sep:
            raise StoreError("a PostgreSQL store URL starts with postgresql:// (or postgres://)")
        try:
            parts = urlsplit(url)
            query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
        except ValueError:
            raise StoreError(
                "the PostgreSQL store URL cannot be parsed: postgresql://user@host:5432/dbname"
            ) from None
        if parts.fragment:
            raise StoreError("a PostgreSQL store URL has no '#' part: postgresql://user@host:5432/dbname")
        userinfo, at, hostport = parts.netloc.rpartition("@")
        user, _, password = userinfo.partition(":")
        options = {k: v for k, v in query if k in _OPTIONS}
        passthrough = [(k, v) for k, v in query if k not in _OPTIONS]
        self.password = password or next((v for k, v in passthrough if k == "password"), "")
        self.schema: str | None = options.get("schema") or None
        if self.schema is not None and not _SCHEMA_NAME.fullmatch(self.schema):
            raise StoreError(
                "the ?schema= of a PostgreSQL store URL is a lower-case name of letters, digits and "
                "underscores (for example ?schema=agegate)"
            )
        self.pool_min_size = _int_option(options, "pool_min_size", 1, minimum=0)
        self.pool_max_size = _int_option(options, "pool_max_size", 10, minimum=1)
        if self.pool_max_size < self.pool_min_size:
            raise StoreError("pool_max_size must not be smaller than pool_min_size in a PostgreSQL store URL")
        self.pool_timeout = float(_int_option(options, "pool_timeout", 30, minimum=1))
        self.conninfo = urlunsplit(parts._replace(query=urlencode(passthrough, quote_via=quote)))
        safe_netloc = (user + "@" if at and user else "") + hostport
        safe_query = urlencode([(k, v) for k, v in query if k != "password"], quote_via=quote)
        self.safe = urlunsplit(parts._replace(netloc=safe_netloc, query=safe_query))

    def scrub(self, text: str) -> str:
        """``text`` with the password taken out (libpq does not put it in messages; be sure)."""
        for secret in (self.password, unquote(self.password)):
            if secret:
                text = text.replace(secret, "***")
        return text


def _int_option(options: dict[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = options.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        raise StoreError(f"{name} in a PostgreSQL store URL is a whole number of at least {minimum}")
    return int(raw)
