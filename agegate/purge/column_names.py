"""Which column names look like personal data: the rules the coverage check reads names by.

Names only, never data. The rules are deliberately broad (a column that only looks personal is
declared with ``gate.purger.exempt``); plural and compound names count (``addresses``,
``home_address_line``, ``mailing_address_1``, ``email_addresses``, ``phone_numbers``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

__all__ = ["Kind", "classify", "names_another_party"]

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
#: Last words of a column that points at a row of another table (``address_id``).
_ROW_KEYS = {"id", "uid", "uuid", "guid", "ref", "key", "fk"}


def _tokens(name: str) -> list[str]:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return [t for t in re.split(r"[_\W]+", spaced.lower()) if t]


def _singular(word: str) -> str:
    """English plural to singular, for the words column names use: ``addresses`` is
    ``address`` (not ``addresse``), ``address`` and ``status`` stay as they are."""
    if len(word) <= 3 or not word.endswith("s") or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes", "zes")):
        return word[:-2]
    return word[:-1]


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
        # ``address_id`` points at an address row (whose own columns are checked where they
        # are); an address itself is text.
        if len(tokens) > 1 and tokens[-1] in _ROW_KEYS and words & {"address", "addr"} and not words & _IP:
            return None
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
    # ``user_agent`` describes the row's request, whoever's it is; its ``user`` is no party.
    parties = set() if classify(table, column) == "user agent" else _parties(column)
    if not parties:
        return False
    owners: set[str] = set()
    for key in purged_by:
        # A bare ``id`` stands for the table's own person (``users.id``).
        owners |= _parties(key) or {_singular(t) for t in _tokens(table.rpartition(".")[2])}
    return not parties <= owners
