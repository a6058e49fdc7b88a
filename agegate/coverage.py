"""The coverage check: personal-looking SQL columns that no purge handler covers.

A purge that misses one column leaves a child's data behind, and a new column is easy to add
without touching the purge. This check lists, for every SQL database the registered handlers
know, each column whose name looks like it holds an account id, an email, a phone number or a
person's name, in a table no handler purges. It reads names only, never data.

The name rules are deliberately broad; a column that only looks personal (``products.name``)
is declared with ``gate.purger.exempt(db.table("products"), "name")``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from .handlers import Database, TableRef

Kind = Literal["account id", "email", "phone", "name"]

_PEOPLE = {
    "account", "user", "customer", "member", "owner", "subject", "profile", "client", "player",
    "person", "people", "child", "children", "kid", "parent", "buyer", "author", "creator",
    "student", "subscriber", "contact", "recipient", "sender", "login",
}  # fmt: skip
_ID = {"id", "uid", "uuid", "key", "ref", "no", "number"}
_EMAIL = {"email", "mail", "emailaddress"}
_PHONE = {"phone", "mobile", "tel", "telephone", "msisdn", "cell", "sms", "phonenumber"}
_NAME_PARTS = {
    "first", "last", "full", "given", "family", "middle", "display", "user", "nick", "real",
    "legal", "maiden", "screen", "contact", "sur", "child", "parent",
}  # fmt: skip
_NAMES = {
    "username", "nickname", "surname", "firstname", "lastname", "fullname", "displayname",
    "givenname", "familyname", "handle", "screenname", "login",
}  # fmt: skip
_OWN_TABLES = re.compile(r"agegate_", re.IGNORECASE)


def _tokens(name: str) -> list[str]:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return [t for t in re.split(r"[_\W]+", spaced.lower()) if t]


def _singular(word: str) -> str:
    return word[:-1] if word.endswith("s") and len(word) > 3 else word


def classify(table: str, column: str) -> Kind | None:
    """What personal data ``table.column`` looks like it holds, by its name, or ``None``."""
    tokens = _tokens(column)
    joined = "".join(tokens)
    words = {_singular(t) for t in tokens}
    table_words = {_singular(t) for t in _tokens(table.rpartition(".")[2])}
    if words & _EMAIL or joined in _EMAIL:
        return "email"
    if words & _PHONE or joined in _PHONE:
        return "phone"
    if joined in _NAMES or ("name" in words and words & _NAME_PARTS):
        return "name"
    if joined == "name" and table_words & _PEOPLE:
        return "name"
    if words & _PEOPLE and (words & _ID or len(words) == 1):
        return "account id"
    if joined in _ID and table_words & _PEOPLE:
        return "account id"
    return None


@dataclass(frozen=True, slots=True)
class Uncovered:
    """A personal-looking column in a table no handler purges."""

    database: str
    table: str
    column: str
    kind: Kind


async def find_uncovered(
    covered: Iterable[TableRef], exempt: Iterable[tuple[TableRef, str | None]] = ()
) -> tuple[list[Uncovered], int]:
    """Check every database named in ``covered``; returns the uncovered columns and how many
    tables were checked. ``exempt`` lists (table, column or ``None`` for the whole table)."""
    databases: dict[str, Database] = {}
    covered_tables: set[tuple[str, str]] = set()
    for ref in covered:
        databases.setdefault(ref.database.key, ref.database)
        covered_tables.add((ref.database.key, ref.table))
    exempted = {(ref.database.key, ref.table, column) for ref, column in exempt}
    out: list[Uncovered] = []
    tables_seen: set[tuple[str, str]] = set()
    for key, database in databases.items():
        for table, column in await database.columns():
            if _OWN_TABLES.match(table.rpartition(".")[2]):
                continue
            tables_seen.add((key, table))
            if (key, table) in covered_tables:
                continue
            if (key, table, None) in exempted or (key, table, column) in exempted:
                continue
            kind = classify(table, column)
            if kind is not None:
                out.append(Uncovered(key, table, column, kind))
    return out, len(tables_seen)
