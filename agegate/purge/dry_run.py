"""What a purge checks and counts before it changes anything: account ids against typed key
columns, and, for a dry run, each handler's count (a relational handler's whole plan)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..errors import ConfigurationError, InvalidInput, PurgeError
from .registry import Registered, rows_deleted
from .report import PlanStep

__all__ = ["check_ids", "count_handlers"]


async def check_ids(handlers: Iterable[Registered], subject: str) -> None:
    """Ask each handler that knows its key column's type (``check_id``) whether ``subject`` is
    written as that column stores it; :class:`ConfigurationError` if not."""
    for registered in handlers:
        check = getattr(registered.obj, "check_id", None)
        if check is None:
            continue
        try:
            await check(subject)
        except (ConfigurationError, InvalidInput):
            raise
        except Exception as exc:
            raise PurgeError(
                f"handler {registered.name!r} could not check the account id ({type(exc).__name__})"
            ) from None


async def count_handlers(
    handlers: Iterable[Registered], subject: str, counted: Callable[[str, int | None], None]
) -> tuple[dict[str, int], list[str], list[PlanStep]]:
    """Each handler's count for a dry run (``counted(name, count)`` after each), the handlers
    that cannot count, and the relational handlers' plans."""
    counts: dict[str, int] = {}
    uncounted: list[str] = []
    plan: list[PlanStep] = []
    for registered in handlers:
        planner = getattr(registered.obj, "plan", None)
        if registered.count is None and planner is None:
            uncounted.append(registered.name)
            counted(registered.name, None)
            continue
        try:
            if planner is not None:
                steps = [PlanStep(registered.name, *row) for row in await planner(subject)]
                plan += steps
                counts[registered.name] = sum(s.count for s in steps if s.action != "set null")
            elif registered.count is not None:
                counts[registered.name] = rows_deleted(await registered.count(subject), registered.name)
        except (ConfigurationError, InvalidInput):
            raise
        except Exception as exc:
            raise PurgeError(f"counting handler {registered.name!r} failed ({type(exc).__name__})") from None
        counted(registered.name, counts[registered.name])
    return counts, uncounted, plan
