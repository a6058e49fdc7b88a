"""Purge handlers for Django models: an account's rows, deleted through Django's own
``Collector``, so every ``on_delete`` rule is honoured (``CASCADE`` follows, ``PROTECT`` stops
the purge, ``SET_NULL`` keeps the other rows) and signals are sent, as ``QuerySet.delete()``
does. Only public agegate API is used (``gate.purger.handler``).

::

    purge_model(gate, Order, "user")          # the account's orders (and what cascades from them)
    purge_model(gate, get_user_model(), "pk")  # the account itself, last
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.db import router, transaction
from django.db.models import Model, QuerySet
from django.db.models.deletion import Collector

from ..errors import InvalidInput
from ..gate import AgeGate

__all__ = ["purge_model"]


def purge_model(gate: AgeGate, model: type[Model], field: str = "user", *, name: str | None = None) -> str:
    """Register a purge handler deleting the rows of ``model`` whose ``field`` (a foreign key to
    the account, or ``"pk"`` for the account's own row) is the purged account's id; returns the
    handler's name (default ``"<app_label>.<model>"``). Handlers run in registration order.

    The account id must be the key's canonical text (``"42"``, never ``"042"``): an id the key
    column would convert to another one is refused, and the purge fails rather than delete
    some other account's rows."""
    meta = model._meta
    key = meta.pk if field == "pk" else meta.get_field(field)
    target: Any = getattr(key, "target_field", key)  # a foreign key compares its target's values
    handler_name = name or f"{meta.app_label}.{meta.model_name}"

    def rows(subject: str) -> QuerySet[Any]:
        try:
            value = target.to_python(subject)
        except ValidationError:
            value = None
        if value is None or str(value) != subject:
            raise InvalidInput(f"{handler_name}: the account id is not a canonical {target.name} value")
        return model._default_manager.filter(**{field: value})

    def collect(subject: str) -> Collector:
        queryset = rows(subject)
        collector = Collector(using=router.db_for_write(model))
        collector.collect(queryset)
        return collector

    def delete(subject: str) -> int:
        with transaction.atomic(using=router.db_for_write(model)):
            deleted, _ = collect(subject).delete()
        return int(deleted)

    def count(subject: str) -> int:
        collector = collect(subject)
        found = sum(len(instances) for instances in collector.data.values())
        return int(found + sum(queryset.count() for queryset in collector.fast_deletes))

    gate.purger.handler(handler_name, count=sync_to_async(count))(sync_to_async(delete))
    return handler_name
