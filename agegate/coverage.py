"""The coverage check: personal-looking SQL columns that no purge handler covers.

A purge that misses one column leaves a child's data behind, and a new column is easy to add
without touching the purge. This check lists, for every SQL database the registered handlers
know, each column whose name looks like it holds an account id, an email, a phone number, a
person's name, an IP address or user agent, a birth date or a postal address, in a table no
handler purges. It reads names only, never data.

A table purged by a built-in row handler (``db.rows("messages", "sender_id")``) is checked too:
its rows go when their ``sender_id`` is the account's, so the columns describing that row's
owner (``email``, ``display_name``) go with them, but a column naming another party
(``recipient_id``, ``recipient_email``, ``created_by``) may hold the account in rows that stay,
and is listed unless another handler covers it. A handler registered with ``covers=`` a whole
table covers all of it.

The name rules are deliberately broad; a column that only looks personal (``products.name``)
is declared with ``gate.purger.exempt(db.table("products"), "name")``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from .handlers import Database, SQLiteDatabase, TableRef

Kind = Literal["account id", "email", "phone", "name", "ip address", "user agent", "birth date", "address"]

#: Words naming a person (or their account) in a column or table name.
_PEOPLE = {
    "account", "user", "customer", "member", "owner", "subject", "profile", "client", "player",
    "person", "people", "child", "children", "kid", "parent", "buyer", "seller", "author",
    "creator", "student", "subscriber", "contact", "recipient", "sender", "login", "reviewer",
    "actor", "friend", "follower", "followee", "assignee", "inviter", "invitee", "guardian",
    "teacher", "uploader", "poster", "commenter", "viewer", "patient", "employee", "participant",
    "attendee", "organizer", "guest", "reporter", "requester", "cardholder", "payer", "payee",
    "partner", "referrer", "referee", "addressee", "learner", "pupil", "fan",
}  # fmt: skip
_ID = {"id", "uid", "uuid", "key", "ref", "no", "num", "number", "code", "guid"}
#: Words that, beside a person's word, still make a reference to a person (``from_user``).
_ROLES = {
    "from", "to", "by", "for", "with", "of", "last", "first", "primary", "secondary", "main",
    "other", "target", "source", "current", "original", "new", "old", "linked", "related",
    "referring", "referred", "external", "legacy", "fk",
}  # fmt: skip
_EMAIL = {"email", "mail", "emailaddress", "emailaddr", "mailaddress"}
_PHONE = {"phone", "mobile", "tel", "telephone", "msisdn", "cell", "sms", "phonenumber", "cellphone"}
_IP = {"ip", "ipv4", "ipv6", "ipaddr", "ipaddress", "clientip", "remoteip", "lastip", "remoteaddr",
       "remoteaddress", "xforwardedfor"}  # fmt: skip
_ADDRESS = {"address", "addr", "street", "streetaddress", "postcode", "postalcode", "zip", "zipcode",
            "addressline", "address1", "address2", "line1", "line2"}  # fmt: skip
_NAME_PARTS = {
    "first", "last", "full", "given", "family", "middle", "display", "user", "nick", "real",
    "legal", "maiden", "screen", "contact", "sur", "child", "parent", "billing", "shipping",
    "delivery", "cardholder", "holder", "card", "person", "personal", "birth", "preferred",
}  # fmt: skip
_NAMES = {
    "username", "nickname", "surname", "firstname", "lastname", "fullname", "displayname",
    "givenname", "familyname", "handle", "screenname", "login", "forename", "realname",
}  # fmt: skip
#: ``<x>_name`` is a person's name unless ``x`` is one of these things (or the table is a
#: catalogue of things, such as ``products``).
_THINGS = {
    "product", "item", "file", "filename", "table", "column", "field", "category", "tag", "plan",
    "brand", "company", "business", "city", "country", "state", "region", "host", "hostname",
    "domain", "server", "event", "group", "team", "role", "key", "class", "type", "model", "app",
    "application", "device", "bucket", "sku", "store", "shop", "project", "page", "site",
    "template", "course", "game", "level", "service", "feature", "variant", "option",
    "attribute", "collection", "list", "folder", "document", "image", "job", "queue", "task",
    "metric", "setting", "config", "module", "package", "repo", "branch", "db", "database",
    "schema", "index", "font", "color", "colour", "theme", "channel", "room", "venue", "org",
    "organisation", "organization", "department", "bank", "merchant", "vendor", "supplier",
    "carrier", "provider", "method", "currency", "unit", "asset", "resource", "step",
    "status", "stage", "source", "route", "path", "action", "permission", "scope", "locale",
    "language", "timezone", "zone", "network", "campaign", "coupon", "promo", "discount",
    "school", "club", "league", "award", "badge", "achievement",
}  # fmt: skip
_THING_TABLES = {
    "product", "item", "category", "tag", "sku", "catalog", "catalogue", "plan", "brand",
    "setting", "config", "migration", "country", "currency", "feature", "permission", "role",
    "variant", "collection", "inventory", "course", "game", "level", "badge", "achievement",
}  # fmt: skip
_OWN_TABLES = re.compile(r"agegate_", re.IGNORECASE)


def _tokens(name: str) -> list[str]:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return [t for t in re.split(r"[_\W]+", spaced.lower()) if t]


def _singular(word: str) -> str:
    return word[:-1] if word.endswith("s") and len(word) > 3 else word


def _person_token(token: str) -> str | None:
    """What a single word says about a person: ``"person"`` (``user``), ``"id"`` (``userid``,
    as PostgreSQL folds ``userId``), ``"name"`` (``customername``) or ``None``."""
    word = _singular(token)
    if word in _PEOPLE:
        return "person"
    for person in _PEOPLE:
        if token.startswith(person) and len(token) > len(person):
            rest = token[len(person) :]
            if rest in _ID:
                return "id"
            if rest in ("name", "names"):
                return "name"
    return None


def _acted_by(token: str) -> bool:
    # created_by, updated_by, approvedby (folded createdBy): a column naming who did something.
    return re.fullmatch(r"[a-z]+edby|sentby|madeby|ownedby", token) is not None


def classify(table: str, column: str) -> Kind | None:
    """What personal data ``table.column`` looks like it holds, by its name, or ``None``."""
    tokens = _tokens(column)
    if not tokens:
        return None
    joined = "".join(tokens)
    words = {_singular(t) for t in tokens}
    table_words = {_singular(t) for t in _tokens(table.rpartition(".")[2])}
    people_table = bool(table_words & _PEOPLE) or any(_person_token(t) for t in table_words)
    thing_table = bool(table_words & _THING_TABLES) and not people_table
    if "email" in joined or words & _EMAIL or joined in _EMAIL:
        return "email"
    if words & _PHONE or joined in _PHONE or any(t.endswith("phone") for t in tokens):
        return "phone"
    if words & _IP or joined in _IP or ("ip" in words and "address" in words):
        return "ip address"
    if joined in ("useragent", "ua", "browseragent") or ("agent" in words and "user" in words):
        return "user agent"
    if "birth" in joined or joined in ("dob", "birthday", "bday") or "dob" in words:
        return "birth date"
    if joined in _NAMES or ("name" in words and words & (_NAME_PARTS | _PEOPLE)):
        return "name"
    kinds = [_person_token(t) for t in tokens]
    if "name" in kinds:
        return "name"
    if joined == "name" and people_table:
        return "name"
    if (
        len(tokens) >= 2
        and tokens[-1] in ("name", "names")
        and not thing_table
        and not set(tokens[:-1]) & _THINGS
    ):
        return "name"
    if words & _ADDRESS or joined in _ADDRESS or joined.endswith("address"):
        return "address"
    if "id" in kinds or joined == "uid":
        return "account id"
    if tokens[-1] == "by" or any(_acted_by(t) for t in tokens):
        return "account id"
    if "person" in kinds:
        others = {w for w, k in zip(tokens, kinds, strict=True) if k is None}
        if not others or others <= (_ID | _ROLES):
            return "account id"
    if joined in _ID and people_table:
        return "account id"
    return None


def _parties(column: str) -> set[str]:
    """The people a column's name refers to: ``{"recipient"}`` for ``recipient_email``,
    ``{"by"}`` for ``created_by``, none for ``email``."""
    out: set[str] = set()
    for word in _tokens(column):
        kind = _person_token(word)
        if kind == "person":
            out.add(_singular(word))
        elif kind is not None:
            out.update(
                p for p in _PEOPLE if word.startswith(p) and word[len(p) :] in (_ID | {"name", "names"})
            )
        elif word == "by" or _acted_by(word):
            out.add("by")
    return out


def names_another_party(table: str, column: str, purged_by: Iterable[str]) -> bool:
    """Whether ``column`` of a table purged by the columns ``purged_by`` may name someone other
    than the rows' owner (``recipient_id`` beside ``sender_id``), so rows that stay may hold the
    account. ``sender_name`` beside ``sender_id`` names the owner; a plain ``email`` too."""
    parties = _parties(column)
    if not parties:
        return False
    owners: set[str] = set()
    for key in purged_by:
        # A bare ``id`` stands for the table's own person (``users.id``).
        owners |= _parties(key) or {_singular(t) for t in _tokens(table.rpartition(".")[2])}
    return not parties <= owners


@dataclass(frozen=True, slots=True)
class Uncovered:
    """A personal-looking column in a table no handler purges."""

    database: str
    table: str
    column: str
    kind: Kind


def _normal(database: Database, table: str) -> str:
    """The name of ``table`` as the database lists it: no default schema (``public.orders`` is
    ``orders``), and case-folded for SQLite, whose names ignore case."""
    if isinstance(database, SQLiteDatabase):
        table = table.casefold()
        return table[len("main.") :] if table.startswith("main.") else table
    return table[len("public.") :] if table.startswith("public.") else table


def _column(database: Database, column: str) -> str:
    return column.casefold() if isinstance(database, SQLiteDatabase) else column


async def find_uncovered(
    covered: Iterable[TableRef], exempt: Iterable[tuple[TableRef, str | None]] = ()
) -> tuple[list[Uncovered], int]:
    """Check every database named in ``covered``; returns the uncovered columns and how many
    tables were checked. ``exempt`` lists (table, column or ``None`` for the whole table).

    A reference with a ``column`` (a built-in row handler) covers that column of its table; one
    without covers the whole table (see the module docs)."""
    databases: dict[str, Database] = {}
    whole: set[tuple[str, str]] = set()
    by_column: dict[tuple[str, str], set[str]] = {}
    for ref in covered:
        database = ref.database
        databases.setdefault(database.key, database)
        ref_name = (database.key, _normal(database, ref.table))
        if ref.column is None:
            whole.add(ref_name)
        else:
            by_column.setdefault(ref_name, set()).add(_column(database, ref.column))
    exempted = {
        (
            ref.database.key,
            _normal(ref.database, ref.table),
            None if column is None else _column(ref.database, column),
        )
        for ref, column in exempt
    }
    out: list[Uncovered] = []
    tables_seen: set[tuple[str, str]] = set()
    for key, database in databases.items():
        for table, column in await database.columns():
            if _OWN_TABLES.match(table.rpartition(".")[2]):
                continue
            name = (key, _normal(database, table))
            tables_seen.add(name)
            if name in whole:
                continue
            if (*name, None) in exempted or (*name, _column(database, column)) in exempted:
                continue
            kind = classify(table, column)
            if kind is None:
                continue
            # A table purged by its rows' owner column: only a column naming another party is left.
            if name in by_column and (
                _column(database, column) in by_column[name]
                or not names_another_party(table, column, by_column[name])
            ):
                continue
            out.append(Uncovered(key, table, column, kind))
    return out, len(tables_seen)
