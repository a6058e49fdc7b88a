"""The cross-site rule: a browser request from another origin may not write the gate's cookie."""

from __future__ import annotations

from starlette.types import Scope

__all__ = ["cross_origin"]

_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def cross_origin(scope: Scope, headers: dict[bytes, bytes]) -> bool:
    """True when a browser says the request comes from another origin.

    ``Sec-Fetch-Site`` is set by the browser and cannot be forged by a page, so it decides when
    present (only ``same-origin`` and ``none``, a typed address, pass); otherwise an ``Origin``
    must be this request's own ``scheme://host[:port]``. Neither header: not a browser that
    could be tricked, so it passes. ``headers`` are the request's, lower-case names.
    """
    site = headers.get(b"sec-fetch-site")
    if site is not None:
        return site not in (b"same-origin", b"none")
    origin = headers.get(b"origin")
    if origin is None:
        return False
    scheme = str(scope.get("scheme") or "http")
    host = headers.get(b"host", b"").decode("latin-1").lower()
    if not host and scope.get("server"):
        host = "{}:{}".format(*scope["server"]).lower()  # no Host header (HTTP/2 :authority)
    default_port = _DEFAULT_PORTS.get(scheme)
    if default_port and host.endswith(default_port):
        host = host[: -len(default_port)]
    return not host or origin.decode("latin-1").lower() != f"{scheme}://{host}"
