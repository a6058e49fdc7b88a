"""What a report says, checked: the account it is about (and what kind of identifier that is),
the reporter's relation to the child, the address for the answer, and optional free text."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Literal

from ..errors import InvalidReport
from ..i18n import N_

__all__ = [
    "ACCOUNT_KINDS",
    "GIVE_KINDS",
    "KEEP_TO",
    "KIND_WORDS",
    "MAX_ACCOUNT",
    "MAX_CONTACT",
    "MAX_DETAILS",
    "RELATIONS",
    "ReportFields",
    "account_kind",
    "read_fields",
]

AccountKind = Literal["email", "username", "phone", "url"]
#: Every kind of account identifier a report may give; an app accepts some of them.
ACCOUNT_KINDS: tuple[AccountKind, ...] = ("email", "username", "phone", "url")
Relation = Literal["parent", "guardian", "other"]
RELATIONS: tuple[Relation, ...] = ("parent", "guardian", "other")
MAX_ACCOUNT = 256
MAX_CONTACT = 254  # the longest email address (RFC 5321 path)
MAX_DETAILS = 2000
#: The messages that carry a value, marked for translation (the form shows them in the
#: visitor's language; the JSON API and the exception keep the English).
GIVE_KINDS = N_("Please give the account's {kinds}.")
KEEP_TO = N_("Please keep this to {limit} characters.")
#: What a report's fields are called, in the form and the JSON API.
FIELD_NAMES = ("account", "relation", "contact", "details")

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_PHONE = re.compile(r"\+?[0-9 ()./-]{7,32}")
_USERNAME = re.compile(r"[^\s]{1,64}")
# Control characters (tab and line breaks are allowed in the free text only) and lone surrogates.
_CONTROL = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_TEXT_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class ReportFields:
    """A report's content, checked. Personal data: it is kept only sealed, and shown only by
    the support commands."""

    account: str
    kind: AccountKind
    relation: Relation
    contact: str
    details: str = ""

    def to_bytes(self, reference: str) -> bytes:
        """What is sealed: these fields and the reference they belong to (checked on opening,
        so a sealed part copied onto another report does not open as that one)."""
        return json.dumps({"reference": reference, **asdict(self)}, ensure_ascii=False).encode()

    @classmethod
    def from_bytes(cls, raw: bytes, reference: str) -> ReportFields:
        """The fields sealed by :meth:`to_bytes` for ``reference``; ``ValueError`` otherwise
        (:class:`~agegate.InvalidReport` when they are another report's)."""
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict) or data.pop("reference", None) != reference:
            raise InvalidReport("reference", "sealed for another report")
        return cls(**data)


def account_kind(value: str) -> AccountKind:
    """What kind of identifier ``value`` (already trimmed) is, by its shape: a web address is a
    profile ``url``, something with one ``@`` an ``email``, digits with the usual punctuation
    a ``phone``, and one word a ``username``. ``InvalidReport`` for anything else."""
    if value.lower().startswith(("https://", "http://")):
        return "url"
    if "@" in value:
        if _EMAIL.fullmatch(value):
            return "email"
        raise InvalidReport("account", N_("This does not look like an email address."))
    if _PHONE.fullmatch(value) and sum(ch.isdigit() for ch in value) >= 7:
        return "phone"
    if _USERNAME.fullmatch(value):
        return "username"
    raise InvalidReport(
        "account", N_("Please give one email address, username, phone number or profile link.")
    )


#: What each kind of account identifier is called, marked for translation.
KIND_WORDS = {
    "email": N_("email address"),
    "username": N_("username"),
    "phone": N_("phone number"),
    "url": N_("profile link"),
}


def kinds_text(kinds: tuple[str, ...]) -> str:
    """``("email", "username")`` as people read it: ``email address or username``."""
    words = [KIND_WORDS.get(kind, kind) for kind in kinds]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _text(data: Mapping[str, object], name: str, limit: int, *, required: bool, lines: bool = False) -> str:
    value = data.get(name, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidReport(name, N_("This must be text."))
    value = value.strip()
    if required and not value:
        raise InvalidReport(name, N_("Please fill this in."))
    if len(value) > limit:
        raise InvalidReport(name, KEEP_TO.format(limit=limit))
    if (_TEXT_CONTROL if lines else _CONTROL).search(value):
        raise InvalidReport(name, N_("This holds characters that cannot be read."))
    return value


def read_fields(data: Mapping[str, object], kinds: tuple[str, ...] = ACCOUNT_KINDS) -> ReportFields:
    """The checked fields of a report from form or JSON ``data`` (other keys are ignored);
    ``kinds`` are the account identifiers the app accepts. Raises :class:`InvalidReport`
    naming the first field that cannot be used, in form order."""
    account = _text(data, "account", MAX_ACCOUNT, required=True)
    kind = account_kind(account)
    if kind not in kinds:
        raise InvalidReport("account", GIVE_KINDS.format(kinds=kinds_text(kinds)))
    relation = _text(data, "relation", 16, required=True)
    if relation not in RELATIONS:
        raise InvalidReport("relation", N_("Please choose parent, guardian or other."))
    contact = _text(data, "contact", MAX_CONTACT, required=True)
    if not _EMAIL.fullmatch(contact):
        raise InvalidReport("contact", N_("Please give an email address we can answer you at."))
    details = _text(data, "details", MAX_DETAILS, required=False, lines=True)
    return ReportFields(account, kind, relation, contact, details)
