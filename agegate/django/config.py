"""The ``AGEGATE`` setting: the app's gate and the middleware's options."""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.shortcuts import resolve_url
from django.urls import NoReverseMatch

from ..gate import AgeGate

__all__ = ["gate_spec", "get_gate", "middleware_options"]

_OPTIONS = frozenset(
    {
        "protect",
        "exempt",
        "signup_paths",
        "secure_cookies",
        "prefix",
        "cookie_name",
        "origins",
        "trust_forwarded_host",
        "pages",
        "mode",
    }
)
#: Options that are the app's functions of the ASGI scope: a callable, or ``"MODULE:ATTR"``.
_FUNCTIONS = frozenset({"region", "signal", "locale"})


def _setting() -> dict[str, Any]:
    value = getattr(settings, "AGEGATE", None)
    if not isinstance(value, dict):
        raise ImproperlyConfigured('set AGEGATE = {"gate": "mysite.gate:gate", ...} in the settings')
    unknown = set(value) - _OPTIONS - _FUNCTIONS - {"gate", "exempt_login"}
    if unknown:
        raise ImproperlyConfigured(f"AGEGATE has unknown keys: {', '.join(sorted(unknown))}")
    return value


def gate_spec() -> str:
    """``AGEGATE["gate"]``: the gate as ``MODULE:ATTR``."""
    spec = _setting().get("gate")
    if not isinstance(spec, str) or ":" not in spec:
        raise ImproperlyConfigured('AGEGATE["gate"] names the gate as "MODULE:ATTR", e.g. "mysite.gate:gate"')
    return spec


@cache
def get_gate() -> AgeGate:
    """The app's :class:`~agegate.AgeGate`, imported once from ``AGEGATE["gate"]``."""
    module, _, attr = gate_spec().partition(":")
    gate = getattr(importlib.import_module(module), attr, None)
    if not isinstance(gate, AgeGate):
        raise ImproperlyConfigured(f'AGEGATE["gate"]: {attr!r} in {module!r} is not an AgeGate')
    return gate


def login_path() -> str | None:
    """The path of ``settings.LOGIN_URL``, when it is one of this site's paths."""
    try:
        url = str(resolve_url(settings.LOGIN_URL))
    except NoReverseMatch:
        return None
    return url.partition("?")[0] if url.startswith("/") and not url.startswith("//") else None


def _function(key: str, value: object) -> Any:
    """``AGEGATE[key]``: a callable, or one named ``"MODULE:ATTR"``, imported."""
    if isinstance(value, str):
        module, sep, attr = value.partition(":")
        if not (sep and module and attr):
            raise ImproperlyConfigured(f'AGEGATE["{key}"] names a function as "MODULE:ATTR"')
        value = getattr(importlib.import_module(module), attr, None)
    if not callable(value):
        raise ImproperlyConfigured(f'AGEGATE["{key}"] is not a function of the ASGI scope')
    return value


def middleware_options() -> dict[str, Any]:
    """The options of :class:`~agegate.AgeGateMiddleware` from ``AGEGATE``; the login page is
    exempt (signing in from a new device is not providing data) unless ``exempt_login`` is
    false. ``region``, ``signal`` and ``locale`` may name their function as ``"MODULE:ATTR"``."""
    value = _setting()
    options = {key: value[key] for key in _OPTIONS if key in value}
    options.update({key: _function(key, value[key]) for key in _FUNCTIONS if key in value})
    login = login_path() if value.get("exempt_login", True) else None
    if login:
        exempt = options.get("exempt", ())
        if not isinstance(exempt, list | tuple):
            raise ImproperlyConfigured('AGEGATE["exempt"] is a list of path patterns, such as ["/health"]')
        options["exempt"] = [*exempt, login]
    return options
