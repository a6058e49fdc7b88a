"""The bounded body reader of the screen and the report form: a small urlencoded form or JSON
object, read from raw ASGI messages."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl

from starlette.types import Receive

from ..birthdate import BIRTH_FIELDS
from ..errors import FormRefused
from .paths import safe_next

__all__ = [
    "MAX_SCREEN_BODY",
    "FormRefused",
    "is_json",
    "is_text",
    "media_type",
    "read_bounded",
    "read_items",
    "read_screen_body",
]

#: Largest request body the screen accepts, in bytes (a birth date needs a few dozen).
MAX_SCREEN_BODY = 8 * 1024
#: What no form field holds: lone surrogates (JSON's "\ud800" escapes decode to them, yet they
#: are not Unicode, so no encoder or database takes them) and control characters other than tab
#: and line breaks (NUL truncates C strings and some columns).
_NOT_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def is_text(value: str) -> bool:
    """Whether ``value`` is text a form field may hold: valid Unicode (no lone surrogates) with
    no control characters other than tab, line feed and carriage return."""
    return _NOT_TEXT.search(value) is None


def media_type(raw: bytes | None) -> str:
    """The media type of a ``Content-Type`` value, lower case, without parameters (``""`` when
    not given)."""
    return (raw or b"").split(b";", 1)[0].strip().lower().decode("latin-1")


def is_json(media: str) -> bool:
    """Whether ``media`` (from :func:`media_type`) is JSON."""
    return media == "application/json" or media.endswith("+json")


async def read_bounded(declared: bytes | None, receive: Receive, limit: int) -> bytes | None:
    """The whole body, of declared length ``declared``, if it is at most ``limit`` bytes;
    ``None`` when the client disconnected. Raises :class:`FormRefused` (413, or 400 for a bad
    ``Content-Length``) without reading more than ``limit`` bytes."""
    if declared is not None:
        if not declared.isdigit():  # bytes.isdigit: ASCII digits only
            raise FormRefused(400, "invalid_request")
        # int() refuses thousands of digits (ValueError): a length that long is huge anyway.
        digits = declared.lstrip(b"0")
        if len(digits) > 9 or int(digits or b"0") > limit:
            raise FormRefused(413, "request_too_large")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise FormRefused(413, "request_too_large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def read_items(
    media: str,
    declared: bytes | None,
    receive: Receive,
    limit: int,
    *,
    max_fields: int = 32,
    check_values: bool = True,
) -> tuple[list[tuple[str, object]] | None, bool]:
    """The fields of a urlencoded form or a JSON object body of media type ``media`` and
    declared length ``declared`` (values as sent: JSON may give numbers, lists…), and whether it
    was JSON. Reads at most ``limit`` bytes; ``(None, …)`` when the client disconnected. Keys,
    and string values unless ``check_values`` is false (the caller then checks each field and
    names the one at fault), are text (:func:`is_text`). Raises :class:`FormRefused`."""
    json_body = is_json(media)
    if not json_body and media not in ("", "application/x-www-form-urlencoded"):
        raise FormRefused(415, "unsupported_media_type")
    raw = await read_bounded(declared, receive, limit)
    if raw is None:
        return None, json_body
    try:
        text = raw.decode("utf-8")
        items: list[tuple[str, object]]
        if json_body:
            data = json.loads(text) if text.strip() else {}
            if not isinstance(data, dict):
                raise ValueError("not an object")
            items = list(data.items())
        else:
            items = list(parse_qsl(text, keep_blank_values=True, max_num_fields=max_fields))
    except (ValueError, RecursionError):
        raise FormRefused(400, "invalid_request") from None
    for key, value in items:
        if not is_text(key) or (check_values and isinstance(value, str) and not is_text(value)):
            raise FormRefused(400, "invalid_request")
    return items, json_body


async def read_screen_body(
    media: str, declared: bytes | None, receive: Receive, home: str
) -> tuple[dict[str, str] | None, str, bool]:
    """The birth-date fields, the safe ``next`` path (``home`` by default) and whether the body
    was JSON, from a body of media type ``media`` and declared length ``declared``.

    Reads at most :data:`MAX_SCREEN_BODY` bytes; ``(None, …)`` when the client disconnected.
    Raises :class:`FormRefused`.
    """
    items, json_body = await read_items(media, declared, receive, MAX_SCREEN_BODY)
    if items is None:
        return None, home, json_body
    fields: dict[str, str] = {}
    next_path = home
    for key, value in items:
        if isinstance(value, bool) or not isinstance(value, str | int):
            if key in BIRTH_FIELDS or key == "next":
                raise FormRefused(400, "invalid_request")
            continue
        if key in BIRTH_FIELDS:
            fields[key] = str(value)
        elif key == "next":
            next_path = safe_next(str(value), home)
    # Empty form fields mean "not given", so that a year alone still reads as a partial date.
    return {k: v for k, v in fields.items() if v.strip()}, next_path, json_body
