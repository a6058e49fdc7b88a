"""Which language a request's pages speak: the app's choice (a ``locale=`` callable over the
ASGI scope), else the visitor's ``Accept-Language``, else English (see :mod:`agegate.i18n`).

Only the answers that render a page or a message ask; the pass and block paths never do.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import Scope

from ..errors import ConfigurationError
from ..i18n import ENGLISH, Language, available, choose

__all__ = ["LanguageChooser", "LocaleFunc"]

#: The app's own language choice for a request: a language tag (``"de"``, ``"pt-BR"``) or
#: ``None`` to follow ``Accept-Language``; plain or async.
LocaleFunc = Callable[[Scope], str | None] | Callable[[Scope], Awaitable[str | None]]

_log = logging.getLogger("agegate.asgi")


class LanguageChooser:
    """Picks the :class:`~agegate.i18n.Language` of a request; built once per middleware."""

    def __init__(self, locale: LocaleFunc | None = None) -> None:
        if locale is not None and not callable(locale):
            raise ConfigurationError("locale must be a function of the ASGI scope, or None")
        self._locale = locale
        #: Whether pages can differ by language here (Babel installed): ``Vary: Accept-Language``.
        self.varies = len(available()) > 1

    async def __call__(self, scope: Scope) -> Language:
        if not self.varies:
            return ENGLISH
        override: Any = None
        if self._locale is not None:
            try:
                override = self._locale(scope)
                if inspect.isawaitable(override):
                    override = await override
            except Exception as exc:
                # A fault in the app's function: the page is still served, by Accept-Language,
                # and the operator told (the type only: the message could quote the request).
                _log.error("the age gate's locale function raised %s", type(exc).__name__)
                override = None
            if override is not None and not isinstance(override, str):
                _log.error(
                    "the age gate's locale function returned %s, not a language tag", type(override).__name__
                )
                override = None
        header = None
        for name, value in scope["headers"]:
            if name == b"accept-language":
                header = value.decode("latin-1")
                break
        return choose(header, override)
