"""Django: the age gate as Django middleware, under WSGI and ASGI, with the same contract, cookie
and answers as :class:`agegate.AgeGateMiddleware` (the same code decides).

Settings (needs the optional extra ``agegate[django]``)::

    INSTALLED_APPS = [..., "agegate.django"]
    MIDDLEWARE = [..., "django.contrib.auth.middleware.AuthenticationMiddleware", ...,
                  "agegate.django.AgeGateMiddleware"]
    AGEGATE = {"gate": "mysite.gate:gate", "signup_paths": ["/signup/"]}

``AGEGATE["gate"]`` names the app's :class:`~agegate.AgeGate` as ``MODULE:ATTR``; the other keys
are :class:`~agegate.AgeGateMiddleware`'s options (``protect``, ``exempt``, ``signup_paths``,
``secure_cookies``, ``prefix``, ``cookie_name``, ``origins``, ``trust_forwarded_host``,
``pages``, ``mode``, and ``region``, ``signal`` and ``locale`` as functions or ``"MODULE:ATTR"``
names of functions of the ASGI scope the middleware builds from the request). The
logged-in user (``request.user.pk``) is the subject; ``settings.LOGIN_URL`` is exempt unless
``"exempt_login": False``. Signups go through :func:`signup` (sync views) or :func:`asignup`;
``manage.py agegate purge …`` runs the purge; :func:`purge_model` registers model handlers.
Under ASGI, :func:`asgi_application` replaces ``get_asgi_application()`` so the server's
lifespan opens and closes the gate's store (under WSGI the middleware opens it as the server
loads it, and it is closed at exit).
"""

from __future__ import annotations

from .asgi import asgi_application
from .config import get_gate
from .middleware import AgeGateMiddleware
from .purge import purge_model
from .signup import asignup, signup

__all__ = ["AgeGateMiddleware", "asgi_application", "asignup", "get_gate", "purge_model", "signup"]
