"""Input checks for a purge request: the account id, the ticket and operator, the identifiers.

Every check raises :class:`~agegate.errors.InvalidInput` before anything is frozen or
journalled, and no message ever repeats the account id or an identifier's value.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Iterable, Mapping

from ..errors import InvalidInput
from ..reports.service import is_reference

__all__ = [
    "IDENTIFIER_KINDS",
    "check_identifiers",
    "check_key_form",
    "contains_secret",
    "key_form",
    "known_kind",
    "label",
    "refuse_pii_in_labels",
]

#: Identifier kinds a purge blocks unless the app lists others in ``Purger.identifier_kinds``.
IDENTIFIER_KINDS = ("email", "phone", "username")
_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}", re.ASCII)
_MAX_LABEL = 200


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch).startswith("C") for ch in text)


def label(what: str, value: str) -> str:
    """A ticket or operator name, trimmed: one line of at most 200 characters."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"a purge needs a {what}")
    value = value.strip()
    if len(value) > _MAX_LABEL or _has_control(value):
        raise InvalidInput(f"the {what} must be one line of at most {_MAX_LABEL} characters")
    return value


def known_kind(kind: object, kinds: Iterable[str]) -> str:
    """``kind`` case-folded and trimmed, if it is one of ``kinds``; else :class:`InvalidInput`
    (which names the kind only when it looks like one, so that a value pasted in its place, an
    email, never reaches an error message)."""
    if not isinstance(kind, str):
        raise InvalidInput("identifiers map kinds (email, phone, username) to strings")
    known = {k.strip().lower() for k in kinds}
    folded = kind.strip().lower()
    if folded not in known:
        shown = f" {folded!r}" if _KIND.fullmatch(folded) else ""
        raise InvalidInput(f"unknown identifier kind{shown}: use one of {', '.join(sorted(known))}")
    return folded


def check_identifiers(identifiers: Mapping[str, str] | None, kinds: Iterable[str]) -> int:
    """Check the identifiers a purge is to block; returns how many distinct ones it blocks.

    Each kind must be one of ``kinds`` (case and surrounding spaces do not matter) and each value
    must keep something after normalisation (a phone number needs digits).
    """
    from ..gate import normalise_identifier  # gate imports this package

    if identifiers is None:
        return 0
    if not isinstance(identifiers, Mapping):
        raise InvalidInput("identifiers map kinds (email, phone, username) to strings")
    kinds = tuple(kinds)
    seen: set[tuple[str, str]] = set()
    for kind, value in identifiers.items():
        folded = known_kind(kind, kinds)
        if not isinstance(value, str):
            raise InvalidInput("identifiers map kinds (email, phone, username) to strings")
        normal = normalise_identifier(folded, value)
        if not normal:
            raise InvalidInput(
                f"the {folded} identifier is empty"
                + (" (a phone number needs digits)" if folded == "phone" else "")
            )
        seen.add((folded, normal))
    return len(seen)


def _words(text: str) -> str:
    """``text`` as its words, case-folded, between single spaces: split at anything but a letter
    or digit, and where letters meet digits (``acct42`` is ``acct 42``)."""
    spaced = re.sub(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])", " ", text.casefold())
    return " " + " ".join(re.findall(r"[^\W_]+", spaced)) + " "


def contains_secret(text: str, secret: str, *, short_words: bool = True) -> bool:
    """Whether ``text`` (a ticket or operator name) holds ``secret`` (an account id or an
    identifier). Values of five characters or more are looked for anywhere; shorter ones, which
    would match ordinary text by accident, only as whole words (``42`` is in ``acct 42`` and
    ``acct42``, not in ``SUP-1423``), and not at all with ``short_words=False``."""
    secret = secret.strip().casefold()
    if len(secret) >= 5:
        return secret in text.casefold()
    if not short_words:
        return False
    words = _words(secret)
    return words.strip() != "" and words in _words(text)


def refuse_pii_in_labels(
    subject: str, identifiers: Mapping[str, str] | None, labels: Mapping[str, str]
) -> None:
    """Refuse a ticket or operator that holds the account id or an identifier.

    They are kept in the clear in the audit log: they must not smuggle the account id or an
    identifier into it (see :func:`contains_secret` for how short values are looked for). A
    ticket that is a report's reference is not searched for short values as words: agegate
    draws references at random, so one can hold an id such as ``a`` or ``7`` by chance
    (``R-0FAN-WNQ9-6X4A``), which would refuse the purge of that report for good. Longer
    values are still looked for in it.
    """
    secrets_ = [subject, *(v for v in (identifiers or {}).values() if isinstance(v, str))]
    for what, text in labels.items():
        short_words = what != "ticket" or not is_reference(text)
        if any(contains_secret(text, s, short_words=short_words) for s in secrets_):
            raise InvalidInput(
                f"the {what} must not contain the account id or an identifier: "
                "use the support system's ticket number and your own name"
            )


_CANONICAL_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)", re.ASCII)
#: What SQLite's numeric affinity reads as a number (spaces around, a sign, decimals, exponent).
_SQLITE_NUMBER = re.compile(r"\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*", re.ASCII)
_INTEGER_BITS = {"smallint": 16, "integer": 32, "bigint": 64, "oid": 32}
_POSTGRES_NUMBERS = {"numeric", "real", "double precision", "money"}
_INTEGER_HINT = "an integer with no sign, spaces, leading zeros or decimals, such as 351"


def key_form(type_name: str, dialect: str) -> str | None:
    """How a key column of this type reads an account id given as text: ``"integer"``,
    ``"uuid"``, or ``None`` when it compares the text as it is."""
    type_name = type_name.lower().strip()
    if dialect == "sqlite":
        # SQLite's type affinity: a column of INTEGER, REAL or NUMERIC affinity turns '+351',
        # ' 351' or '351.0' into the number 351; TEXT and BLOB affinity compare the text.
        if "int" in type_name:
            return "integer"
        if (
            any(word in type_name for word in ("char", "clob", "text"))
            or not type_name
            or "blob" in type_name
        ):
            return None
        return "integer"
    base = type_name.split("(")[0].strip()
    if base in _INTEGER_BITS or base in _POSTGRES_NUMBERS:
        return "integer"
    if base == "uuid":
        return "uuid"
    return None


def check_key_form(subject: str, type_name: str, dialect: str, where: str) -> None:
    """Refuse an account id that the key column ``where`` (of type ``type_name``) would read as
    another text (``+351`` and ``0351`` are the integer 351): the freeze and the journal are
    keyed on the text, so only the one form the database shows is accepted. The message never
    repeats the id."""
    form = key_form(type_name, dialect)
    if form == "integer" and dialect == "sqlite" and _SQLITE_NUMBER.fullmatch(subject) is None:
        return  # SQLite keeps text that does not read as a number as text: nothing converts it
    if form == "integer":
        if _CANONICAL_INTEGER.fullmatch(subject) is None or subject == "-0":
            raise InvalidInput(f"the account id must be written as {where} stores it: {_INTEGER_HINT}")
        # SQLite integers are 64-bit whatever the declared type; numeric has no bound.
        bits = 64 if dialect == "sqlite" else _INTEGER_BITS.get(type_name.lower().split("(")[0].strip(), 0)
        if bits and not -(2 ** (bits - 1)) <= int(subject) < 2 ** (bits - 1):
            raise InvalidInput(f"the account id is out of the range of {where} ({type_name})")
    elif form == "uuid":
        try:
            canonical = str(uuid.UUID(subject))
        except ValueError:
            canonical = ""
        if canonical != subject:
            raise InvalidInput(
                f"the account id must be written as {where} stores it: a UUID in lower case with "
                "hyphens, such as 123e4567-e89b-12d3-a456-426614174000"
            )
