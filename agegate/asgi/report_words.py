"""The report form's words that depend on a value: the kinds of account identifier an app
accepts, listed the way the visitor's language lists alternatives, and a field's error message
(raised in English by :mod:`agegate.reports.fields`) in the visitor's language."""

from __future__ import annotations

import re

from ..errors import InvalidReport
from ..i18n import Language
from ..reports.fields import GIVE_KINDS, KEEP_TO, KIND_WORDS, kinds_text

try:  # the optional extra: CLDR's list patterns ("a, b or c" in each language)
    from babel.lists import format_list
except ImportError:  # pragma: no cover - without Babel every page is English
    format_list = None  # type: ignore[assignment]

__all__ = ["field_message", "kinds_in"]

_KEEP_TO = re.compile(re.escape(KEEP_TO).replace(r"\{limit\}", r"(\d+)"))


def kinds_in(kinds: tuple[str, ...], language: Language) -> str:
    """``kinds`` as the visitor reads them: ``email address or username`` in English."""
    if language.tag == "en" or format_list is None:
        return kinds_text(kinds)
    words = [language.gettext(KIND_WORDS[kind]) if kind in KIND_WORDS else kind for kind in kinds]
    return format_list(words, style="or", locale=language.tag.replace("-", "_"))


def field_message(error: InvalidReport, kinds: tuple[str, ...], language: Language) -> str:
    """``error``'s message in ``language`` (the English one when it has no translation)."""
    if language.tag == "en":
        return error.message
    if error.message == GIVE_KINDS.format(kinds=kinds_text(kinds)):
        return language.gettext(GIVE_KINDS).format(kinds=kinds_in(kinds, language))
    if (limit := _KEEP_TO.fullmatch(error.message)) is not None:
        return language.gettext(KEEP_TO).format(limit=limit.group(1))
    return language.gettext(error.message)
