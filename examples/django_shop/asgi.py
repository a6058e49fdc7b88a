import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_shop.settings")

from agegate.django import asgi_application

application = asgi_application()  # Django's own, with the gate's store in the server's lifespan
