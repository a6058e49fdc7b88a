"""The visitor's language: which one a request asks for, and what the pages need from it.

With the optional extra ``agegate[i18n]`` (Babel), the pages speak every language shipped in
``agegate/locale/`` and take month names, the order of the date fields and the writing direction
from CLDR. Without Babel, every page is English and nothing else changes. The catalogs are
gettext ``.po`` files compiled to ``.mo``; ``docs/regions-and-languages.md`` says how to add one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "CATALOGS",
    "DOMAIN",
    "ENGLISH",
    "LOCALE_DIR",
    "N_",
    "Language",
    "available",
    "choose",
    "language",
    "preferred_tags",
]

#: The gettext domain of the package's catalogs.
DOMAIN = "agegate"
#: Where the compiled catalogs live: ``LOCALE_DIR/<catalog>/LC_MESSAGES/agegate.mo`` (a
#: ``pathlib.Path``, made when first asked for: pathlib is not loaded for an English-only app).
LOCALE_DIR: Path
_LOCALE_DIR = os.path.join(os.path.dirname(os.path.realpath(__file__)), "locale")
#: The shipped translations (English is the source language and needs no catalog).
CATALOGS = ("es", "fr", "de", "it", "nl", "pt_BR", "pl", "ja", "ko", "zh_Hans", "ar", "he")
#: An ``Accept-Language`` value longer than this is not read past this point.
MAX_HEADER = 512
#: At most this many language ranges of one header are considered.
MAX_RANGES = 16

_MONTHS_EN = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_TAG = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*", re.ASCII)
_Q = re.compile(r"q=(0(?:\.\d{0,3})?|1(?:\.0{0,3})?)", re.ASCII | re.IGNORECASE)
#: Tags that name a catalog outright (lower case); other tags match by their language subtag.
_EXACT = {"zh-hans": "zh_Hans", "zh-cn": "zh_Hans", "zh-sg": "zh_Hans", "zh-my": "zh_Hans"}
#: Chinese in traditional script is not served the simplified catalog: the next choice is tried.
_TRADITIONAL = frozenset({"zh-hant", "zh-tw", "zh-hk", "zh-mo"})
_BY_LANGUAGE = {c.split("_", 1)[0]: c for c in CATALOGS}


def N_(message: str) -> str:
    """Mark ``message`` for extraction into the catalogs without translating it here."""
    return message


@dataclass(frozen=True, slots=True)
class Language:
    """What a page needs to speak one language: the ``lang`` tag, the writing direction, the
    twelve month names, the order of the day, month and year fields (``None``: the gate's own
    ``date_order``) and the translation function."""

    tag: str
    rtl: bool
    months: tuple[str, ...]
    order: str | None
    gettext: Callable[[str], str]

    @property
    def dir(self) -> str:
        """``"rtl"`` or ``"ltr"``, for the ``dir`` attribute."""
        return "rtl" if self.rtl else "ltr"

    @property
    def key(self) -> tuple[str, str | None]:
        """What a rendered page depends on (for caches)."""
        return (self.tag, self.order)


#: The source language, and what every visitor gets without Babel.
ENGLISH = Language("en", False, _MONTHS_EN, None, str)


@lru_cache(maxsize=1)
def _babel() -> Any:
    """Babel's ``Locale``, or ``None`` without the optional extra ``agegate[i18n]``. Imported
    when first needed: an app whose pages only speak English never loads CLDR."""
    try:
        from babel import Locale
    except ImportError:  # exercised by a test that hides Babel in a subprocess
        return None
    return Locale


def available() -> tuple[str, ...]:
    """The languages the pages can speak here: English, plus the shipped catalogs when Babel is
    installed."""
    return ("en", *CATALOGS) if _babel() is not None else ("en",)


def preferred_tags(header: str) -> list[str]:
    """The language tags of an ``Accept-Language`` value, most wanted first (``q=0`` and ``*``
    left out; equal weights keep their order)."""
    ranked: list[tuple[float, int, str]] = []
    for index, item in enumerate(header[:MAX_HEADER].split(",")[:MAX_RANGES]):
        tag, _, params = item.strip().partition(";")
        tag = tag.strip()
        if not _TAG.fullmatch(tag):
            continue
        weight = 1.0
        if params:
            found = _Q.fullmatch(params.strip().replace(" ", ""))
            if found is None:
                continue  # a weight nobody can read: leave the range out
            weight = float(found.group(1))
        if weight > 0:
            ranked.append((-weight, index, tag))
    return [tag for _, _, tag in sorted(ranked)]


def _catalog_for(tag: str) -> str | None:
    low = tag.lower()
    for known, catalog in _EXACT.items():
        if low == known or low.startswith(known + "-"):
            return catalog
    if any(low == t or low.startswith(t + "-") for t in _TRADITIONAL):
        return None
    primary = low.split("-", 1)[0]
    if primary == "en":
        return "en"
    return _BY_LANGUAGE.get(primary)


def choose(header: str | None, override: str | None = None) -> Language:
    """The :class:`Language` for a request: the app's ``override`` tag when it names a language
    the pages speak, else the first of the visitor's ``Accept-Language`` that does, else English.
    Without Babel, always English."""
    if _babel() is None:
        return ENGLISH
    wanted = ([override] if override else []) + preferred_tags(header or "")
    for tag in wanted:
        if _TAG.fullmatch(tag) and (catalog := _catalog_for(tag)) is not None:
            return language(catalog, tag)
    return ENGLISH


def _field_order(pattern: str) -> str | None:
    """``"DMY"``, ``"MDY"`` or ``"YMD"`` from a CLDR date pattern (quoted literals skipped)."""
    unquoted = re.sub(r"'[^']*'", "", pattern)
    seen = ""
    for char in unquoted:
        letter = {"y": "Y", "M": "M", "L": "M", "d": "D"}.get(char)
        if letter and letter not in seen:
            seen += letter
    return seen if seen in ("DMY", "MDY", "YMD") else None


def _regional(tag: str) -> str | None:
    """The language, script and region subtags of ``tag`` (``zh-Hans-CN``, ``de-CH``), the only
    parts CLDR's date order depends on; so that any other subtags cannot multiply cache entries."""
    kept = [part for part in tag.split("-")[1:3] if re.fullmatch(r"[A-Za-z]{4}|[A-Za-z]{2}|[0-9]{3}", part)]
    return "-".join([tag.split("-", 1)[0], *kept]) if kept else None


def language(catalog: str, tag: str | None = None) -> Language:
    """The :class:`Language` of ``catalog`` (one of :data:`CATALOGS` or ``"en"``), with the date
    field order of the visitor's own ``tag`` (``de-CH``, ``en-GB``) when CLDR knows it."""
    return _language(catalog, _regional(tag) if tag else None)


@lru_cache(maxsize=1024)
def _language(catalog: str, tag: str | None) -> Language:
    cldr = _babel()
    if cldr is None or (catalog != "en" and catalog not in CATALOGS):
        return ENGLISH
    import gettext

    from babel import UnknownLocaleError

    base = cldr.parse(catalog)
    fmt = base
    if tag:
        try:
            visitor = cldr.parse(tag, sep="-")
        except (ValueError, TypeError, UnknownLocaleError):
            visitor = None
        if visitor is not None and visitor.language == base.language:
            fmt = visitor
    months = tuple(str(base.months["stand-alone"]["wide"][m]) for m in range(1, 13))
    order = _field_order(fmt.date_formats["short"].pattern)
    if catalog == "en":
        if fmt == base:
            return ENGLISH  # no regional English asked for: the gate's own date_order
        return Language("en", False, _MONTHS_EN, order, str)
    translations = gettext.translation(DOMAIN, _LOCALE_DIR, languages=[catalog])
    tag_out = catalog.replace("_", "-")
    return Language(tag_out, base.character_order == "right-to-left", months, order, translations.gettext)


@dataclass(frozen=True, slots=True)
class DateWords:
    """The words a typed date may hold in any shipped language (case-folded, no trailing dot):
    month names (and their forms with a prefix CLDR writes, such as Hebrew ``ב``), weekday names,
    and the small words of the long date patterns (``de`` in ``1 de junio de 2013``)."""

    months: dict[str, int]
    weekdays: frozenset[str]
    fillers: frozenset[str]


@lru_cache(maxsize=1)
def date_words() -> DateWords:
    """The :class:`DateWords` of every shipped language from CLDR; empty without Babel."""
    cldr = _babel()
    if cldr is None:
        return DateWords({}, frozenset(), frozenset())
    months: dict[str, set[int]] = {}
    weekdays: set[str] = set()
    fillers: set[str] = set()
    for catalog in ("en", *CATALOGS):
        locale = cldr.parse(catalog)
        pattern = locale.date_formats["long"].pattern
        fillers.update(w.casefold() for w in re.findall(r"'([^']+)'", pattern) if w.isalpha())
        # A letter written straight before the month name ("d בMMMM y") is part of the word.
        prefixes = ["", *re.findall(r"([^\W\d_M]+)M{3,4}", re.sub(r"'[^']*'", " ", pattern))]
        for context in ("format", "stand-alone"):
            for width in ("wide", "abbreviated"):
                for number, name in locale.months[context][width].items():
                    for prefix in prefixes:
                        word = (prefix + str(name)).casefold().rstrip(".")
                        months.setdefault(word, set()).add(int(number))
                for name in locale.days[context][width].values():
                    weekdays.add(str(name).casefold().rstrip("."))
    # A word two languages read as different months is left out rather than guessed.
    unique = {word: next(iter(found)) for word, found in months.items() if len(found) == 1}
    return DateWords(unique, frozenset(weekdays - unique.keys()), frozenset(fillers))


def __getattr__(name: str) -> Any:
    if name == "LOCALE_DIR":
        from pathlib import Path

        return Path(_LOCALE_DIR)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
