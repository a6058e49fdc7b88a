"""The Django shop's gate and its purge handlers: Django models, deleted through Django's
collector (an order's lines go with it, by ``on_delete=CASCADE``)."""

from __future__ import annotations

import os

from django.contrib.auth import get_user_model

from agegate import AgeGate, Keyring
from agegate.django import purge_model
from examples.django_shop.models import Order

gate = AgeGate(keys=Keyring.from_env(), store=os.environ.get("AGEGATE_STORE", "sqlite:///agegate.sqlite3"))
purge_model(gate, Order, "user")  # the account's orders, and their lines
purge_model(gate, get_user_model(), "pk")  # the account itself, last
