"""Account ids: the one rule that every entry point applies to the app's account ids.

``signup``, ``signup_form``, ``status_of``, the middleware's ``subject=``, ``purge`` and the
command line all check an account id with :func:`check_account_id`, so an id one of them
accepts, all of them accept: a purge can always reach an account a signup created.
"""

from __future__ import annotations

import re
import unicodedata

from .errors import InvalidAccountId

__all__ = ["MAX_ACCOUNT_ID", "AccountFormat", "check_account_id"]

#: The longest account id, in characters.
MAX_ACCOUNT_ID = 512
#: An app's own shape for its account ids: a pattern the whole id must match, and how to say it
#: (``"a numeric account id"``); set with ``gate.purger.subject_format(pattern, description)``.
AccountFormat = tuple[re.Pattern[str], str]


def _invisible(text: str) -> bool:
    # Control, format (zero-width), surrogate, private-use and unassigned characters: an id
    # holding one is not the id a person sees, and a copy of it will not be the same id.
    return any(unicodedata.category(ch)[0] == "C" for ch in text)


def check_account_id(value: object, account_format: AccountFormat | None = None) -> str:
    """``value`` if it is a usable account id, else :class:`~agegate.InvalidAccountId` (whose
    message never repeats the id): 1 to :data:`MAX_ACCOUNT_ID` characters, no space around it,
    no invisible characters, and matching the app's ``account_format`` when it set one."""
    if not isinstance(value, str) or not value or len(value) > MAX_ACCOUNT_ID:
        raise InvalidAccountId(f"an account id is a string of 1 to {MAX_ACCOUNT_ID} characters")
    if value != value.strip() or _invisible(value):
        raise InvalidAccountId("the account id has spaces around it or invisible characters")
    if account_format is not None:
        pattern, description = account_format
        if pattern.fullmatch(value) is None:
            raise InvalidAccountId(f"the account id does not look like {description}")
    return value
