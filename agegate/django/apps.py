"""The Django app ``agegate.django``: system checks for the gate's settings and middleware."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

__all__ = ["AgeGateConfig", "check_settings"]

_MIDDLEWARE = "agegate.django.AgeGateMiddleware"
_AUTH = "django.contrib.auth.middleware.AuthenticationMiddleware"


class AgeGateConfig(AppConfig):
    """``agegate.django`` in ``INSTALLED_APPS``."""

    name = "agegate.django"
    label = "agegate"
    verbose_name = "Age gate"

    def ready(self) -> None:
        checks.register(check_settings)


async def _nothing(scope: Any, receive: Any, send: Any) -> None:
    """The app behind the middleware a check builds (it never serves a request)."""


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``AGEGATE`` names a gate, and the middleware is installed after authentication (so the
    logged-in account counts)."""
    from ..asgi.middleware import AgeGateMiddleware
    from ..errors import ConfigurationError
    from .config import get_gate, middleware_options

    errors: list[checks.CheckMessage] = []
    try:
        # Built as the middleware builds it, so an option set wrong is said here, not on the
        # first request.
        AgeGateMiddleware(_nothing, gate=get_gate(), **middleware_options())
    except (ImproperlyConfigured, ImportError, ConfigurationError) as exc:
        errors.append(checks.Error(str(exc), id="agegate.E001"))
    middleware = list(getattr(settings, "MIDDLEWARE", None) or ())
    if _MIDDLEWARE not in middleware:
        errors.append(
            checks.Error(f"add {_MIDDLEWARE!r} to MIDDLEWARE", id="agegate.E002"),
        )
    elif _AUTH in middleware and middleware.index(_AUTH) > middleware.index(_MIDDLEWARE):
        errors.append(
            checks.Error(
                f"{_MIDDLEWARE!r} must come after {_AUTH!r}: a purged account would not be known",
                id="agegate.E003",
            )
        )
    return errors
