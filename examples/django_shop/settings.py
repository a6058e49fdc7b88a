"""Settings of the small Django shop (see :mod:`examples.frameworks.common` for the endpoints).

Run it under WSGI or ASGI::

    export AGEGATE_SECRET_KEYS="$(agegate keygen)"
    export SHOP_SESSION_SECRET="$(python -c 'import secrets; print(secrets.token_hex())')"
    python examples/django_shop/manage.py migrate
    gunicorn examples.django_shop.wsgi        # or: uvicorn examples.django_shop.asgi:application
"""

from __future__ import annotations

import os

SECRET_KEY = os.environ["SHOP_SESSION_SECRET"]
DEV = os.environ.get("SHOP_DEV") == "1"  # plain-http development: no Secure cookies
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "examples.django_shop.urls"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ.get("SHOP_DB", "shop.sqlite3")}
}
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "agegate.django",
    "examples.django_shop",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "agegate.django.AgeGateMiddleware",  # after authentication: request.user is the subject
]
LOGIN_URL = "/login"  # exempt from the gate by default: signing in from a new device works
SESSION_COOKIE_SECURE = not DEV
AGEGATE = {
    "gate": "examples.django_shop.gate:gate",
    "signup_paths": ["/signup"],
    "secure_cookies": not DEV,
}
