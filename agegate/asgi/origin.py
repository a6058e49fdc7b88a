"""The cross-site rule: a browser request from another origin may not write the gate's cookie.

Behind a proxy the ``Host`` the app receives may not be the one the browser used (a proxy that
does not forward it, or drops a non-default port), so the app may name its public origins, and
may trust the proxy's ``X-Forwarded-Host`` (never by default: only a proxy that sets it itself
may be trusted with it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import Scope

from ..errors import ConfigurationError

__all__ = ["OriginRule", "cross_origin"]

_DEFAULT_PORTS = {"http": ":80", "https": ":443"}
#: A host name (ASCII: browsers send IDNs in punycode) or an IPv6 address without brackets.
_HOST = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|[0-9a-f:.]*:[0-9a-f:.]*")


def _without_default_port(scheme: str, host: str) -> str:
    default_port = _DEFAULT_PORTS.get(scheme)
    if default_port and host.endswith(default_port):
        return host[: -len(default_port)]
    return host


def public_origin(value: object) -> str:
    """``value`` as an origin a browser sends (``scheme://host[:port]``, lower case, without the
    default port); :class:`~agegate.ConfigurationError` for anything else (a path, a query,
    user info, another scheme, a host that is not ASCII)."""
    problem = "an origin is scheme://host[:port], for example 'https://shop.example'"
    if not isinstance(value, str) or not value.isascii() or not value.isprintable() or " " in value:
        raise ConfigurationError(f"origins: {problem}")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ConfigurationError(f"origins: {problem}") from None
    if (
        parts.scheme not in _DEFAULT_PORTS
        or not parts.hostname
        or not _HOST.fullmatch(parts.hostname)
        or port == 0
        or parts.username is not None
        or parts.password is not None
        or parts.path
        or parts.query
        or parts.fragment
        or value.endswith(("?", "#"))
    ):
        raise ConfigurationError(f"origins: {problem} (no path, no trailing slash)")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return _without_default_port(
        parts.scheme, f"{parts.scheme}://{host}:{port}" if port else f"{parts.scheme}://{host}"
    )


class OriginRule:
    """The cross-site rule of one gate.

    ``origins`` are the app's public origins (``["https://shop.example"]``): an ``Origin`` that
    is one of them is this site, whatever ``Host`` the app receives. ``trust_forwarded_host``
    also accepts ``scheme://`` plus the first ``X-Forwarded-Host`` value: only for an app that
    is reachable through its proxy alone, and whose proxy sets that header itself.
    """

    __slots__ = ("_origins", "_trust_forwarded_host")

    def __init__(self, origins: Iterable[str] = (), *, trust_forwarded_host: bool = False) -> None:
        if isinstance(origins, str | bytes):
            raise ConfigurationError("origins takes a list of origins, for example ['https://shop.example']")
        try:
            items = list(origins)
        except TypeError:
            raise ConfigurationError("origins takes a list of origins") from None
        if not isinstance(trust_forwarded_host, bool):
            raise ConfigurationError("trust_forwarded_host must be True or False")
        self._origins = frozenset(public_origin(item) for item in items)
        self._trust_forwarded_host = trust_forwarded_host

    def cross_origin(self, scope: Scope, headers: dict[bytes, bytes]) -> bool:
        """True when a browser says the request comes from another origin.

        ``Sec-Fetch-Site`` is set by the browser and cannot be forged by a page, so it decides
        when present (only ``same-origin`` and ``none``, a typed address, pass); otherwise an
        ``Origin`` must be this request's own ``scheme://host[:port]`` (from ``Host``, or the
        trusted ``X-Forwarded-Host``) or one of the public origins. Neither header: not a
        browser that could be tricked, so it passes. ``headers`` are the request's, lower-case
        names; at least ``sec-fetch-site``, ``origin`` and ``host`` when sent.
        """
        site = headers.get(b"sec-fetch-site")
        if site is not None:
            return site not in (b"same-origin", b"none")
        raw = headers.get(b"origin")
        if raw is None:
            return False
        origin = raw.decode("latin-1").lower()
        scheme = str(scope.get("scheme") or "http")
        if origin in self._origins or origin == _own_origin(scope, headers, scheme):
            return False
        if self._trust_forwarded_host:
            forwarded = _forwarded_host(scope)
            if forwarded and origin == f"{scheme}://{_without_default_port(scheme, forwarded)}":
                return False
        return True


def _own_origin(scope: Scope, headers: dict[bytes, bytes], scheme: str) -> str | None:
    host = headers.get(b"host", b"").decode("latin-1").lower()
    if not host and scope.get("server"):
        host = "{}:{}".format(*scope["server"]).lower()  # no Host header (HTTP/2 :authority)
    return f"{scheme}://{_without_default_port(scheme, host)}" if host else None


def _forwarded_host(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-forwarded-host":
            # The first value is the client-facing proxy's: later ones were added on the way in.
            return bytes(value).split(b",", 1)[0].strip().decode("latin-1").lower() or None
    return None


#: The rule with no public origins and no forwarded host: what :func:`cross_origin` applies.
_DEFAULT_RULE = OriginRule()


def cross_origin(scope: Scope, headers: dict[bytes, bytes], rule: OriginRule | None = None) -> bool:
    """True when a browser says the request comes from another origin, under ``rule`` (a
    gate's :class:`OriginRule`; default: ``Host`` alone). See :meth:`OriginRule.cross_origin`."""
    return (rule or _DEFAULT_RULE).cross_origin(scope, headers)
