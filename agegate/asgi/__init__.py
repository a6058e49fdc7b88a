"""The ASGI side of agegate: the middleware, the screen it serves, and its pages."""

from .middleware import AgeGateMiddleware
from .pages import Pages

__all__ = ["AgeGateMiddleware", "Pages"]
