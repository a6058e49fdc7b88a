"""The pages the middleware serves: the neutral screen, the under-age page and the "screen
first" page, in HTML; plus the JSON bodies of every answer.

Everything interpolated into HTML is escaped. No page names the cut-off age or hints at it: the
year field has no minimum or maximum, nothing is pre-selected, and the under-age page offers no
way to try again. An app replaces the look by passing its own ``layout`` or ``css``, or by
subclassing :class:`Pages` and overriding any method.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from html import escape
from urllib.parse import quote

from ..errors import ConfigurationError

#: The fields of the three-part birth date, as the screen form posts them.
DATE_FIELDS = ("birth_year", "birth_month", "birth_day")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
#: Error message element id; every control points at it with ``aria-describedby``.
ERROR_ID = "agegate-error"
#: The ``Content-Security-Policy`` of every page the middleware serves: nothing but the page
#: itself, its inline style, and stylesheets, fonts and images from the app's own origin (for a
#: ``layout`` that links them).
DEFAULT_CSP = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; font-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

DEFAULT_CSS = """
:root{color-scheme:light dark;--fg:#1f2328;--bg:#f6f7f9;--card:#fff;--line:#c8ccd2;--accent:#2458b3;
--err:#b3261e}
@media (prefers-color-scheme:dark){:root{--fg:#e6e7ea;--bg:#15171a;--card:#1e2125;--line:#474c55;
--accent:#8ab4f8;--err:#f2b8b5}}
*{box-sizing:border-box}
body{margin:0;font:1rem/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
background:var(--bg)}
main{max-width:30rem;margin:8vh auto;padding:2rem;background:var(--card);border:1px solid var(--line);
border-radius:.75rem}
h1{font-size:1.5rem;margin:0 0 .75rem}
p{margin:0 0 1rem}
fieldset{border:0;margin:0 0 1.25rem;padding:0}
legend{font-weight:600;margin-bottom:.5rem;padding:0}
.parts{display:flex;gap:.75rem;flex-wrap:wrap}
.part{display:flex;flex-direction:column;gap:.25rem}
label{font-size:.9rem}
input,select{font:inherit;color:inherit;background:var(--card);border:1px solid var(--line);
border-radius:.4rem;padding:.45rem .6rem}
#agegate-year{width:6.5rem}#agegate-day{width:4.5rem}
[aria-invalid=true]{border-color:var(--err)}
.error{color:var(--err);font-weight:600}
button,.button{font:inherit;font-weight:600;color:#fff;background:var(--accent);border:0;
border-radius:.4rem;padding:.6rem 1.2rem;cursor:pointer;text-decoration:none;display:inline-block}
@media (prefers-color-scheme:dark){button,.button{color:#111}}
:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
.note{font-size:.85rem;opacity:.8;margin-top:1.25rem}
""".strip()


@dataclass(frozen=True, slots=True)
class ScreenForm:
    """What the screen form shows: where it posts, the ``next`` path it carries, what the
    visitor typed (re-shown after an error), the error message, the field order, and which
    fields the error is about (empty: the date as a whole)."""

    action: str
    next: str = "/"
    values: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    order: str = "MDY"
    invalid: tuple[str, ...] = ()


def _default_layout(title: str, body: str, css: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="robots" content="noindex"><title>{title}</title><style>{css}</style></head>'
        f"<body><main>{body}</main></body></html>\n"
    )


class Pages:
    """Renders the HTML pages of the screen.

    ``layout(title_html, body_html, css) -> document`` wraps every page (titles and bodies come
    escaped); ``css`` is the inline stylesheet (the default one is small and neutral); ``csp`` is
    the ``Content-Security-Policy`` the pages are served with (:data:`DEFAULT_CSP` allows the
    app's own stylesheets, fonts and images; widen it for a CDN). Subclass and override
    :meth:`screen`, :meth:`under_age`, :meth:`under_age_all` or :meth:`screen_required` to change a
    page.
    """

    def __init__(
        self,
        *,
        css: str = DEFAULT_CSS,
        layout: Callable[[str, str, str], str] | None = None,
        csp: str = DEFAULT_CSP,
    ) -> None:
        if "</style" in css.lower():
            raise ConfigurationError("css must not close the <style> element")
        if not isinstance(csp, str) or not csp.strip() or not csp.isascii() or not csp.isprintable():
            raise ConfigurationError("csp must be a Content-Security-Policy value on one line")
        self.css = css
        self.csp = csp
        self._layout = layout or _default_layout

    def page(self, title: str, body_html: str) -> str:
        """A whole document around ``body_html`` (already HTML) with the plain-text ``title``."""
        return self._layout(escape(title), body_html, self.css)

    def screen(self, form: ScreenForm) -> str:
        """The neutral birth-date form."""
        values = form.values
        marks = dict.fromkeys(("group", *DATE_FIELDS), "")
        error = ""
        if form.error:
            # Every control points at the message; only the fields it is about are marked
            # invalid, or the group when it is about the date as a whole.
            described = f' aria-describedby="{ERROR_ID}"'
            for name in DATE_FIELDS:
                marks[name] = described
            for name in form.invalid or ("group",):
                marks[name] = f' aria-invalid="true"{described}'
            error = f'<p class="error" id="{ERROR_ID}" role="alert">{escape(form.error)}</p>'
        # Only the year is required: a year alone is a valid (partial) answer.
        year = (
            '<div class="part"><label for="agegate-year">Year</label>'
            '<input id="agegate-year" name="birth_year" type="text" inputmode="numeric" '
            'autocomplete="bday-year" pattern="[0-9]{4}" maxlength="4" required'
            f"{_value(values, 'birth_year')}{marks['birth_year']}></div>"
        )
        chosen = values.get("birth_month", "").strip()
        if chosen.isdigit():
            chosen = str(int(chosen))  # "01" is January too
        options = ['<option value="">Choose…</option>'] + [
            f'<option value="{n}"{" selected" if chosen == str(n) else ""}>{name}</option>'
            for n, name in enumerate(_MONTHS, start=1)
        ]
        month = (
            '<div class="part"><label for="agegate-month">Month</label>'
            f'<select id="agegate-month" name="birth_month" autocomplete="bday-month"{marks["birth_month"]}>'
            f"{''.join(options)}</select></div>"
        )
        day = (
            '<div class="part"><label for="agegate-day">Day</label>'
            '<input id="agegate-day" name="birth_day" type="text" inputmode="numeric" '
            'autocomplete="bday-day" pattern="[0-9]{1,2}" maxlength="2"'
            f"{_value(values, 'birth_day')}{marks['birth_day']}></div>"
        )
        parts = {"Y": year, "M": month, "D": day}
        controls = "".join(parts[letter] for letter in form.order)
        body = (
            "<h1>Before you continue</h1>"
            f'<form method="post" action="{escape(form.action)}" novalidate>'
            f'<input type="hidden" name="next" value="{escape(form.next)}">'
            f"<fieldset{marks['group']}><legend>Your date of birth</legend>{error}"
            f'<div class="parts">{controls}</div>'
            "</fieldset>"
            '<button type="submit">Continue</button></form>'
            '<p class="note">We use your answer only to decide what this site can offer you. '
            "We do not keep your date of birth.</p>"
        )
        return self.page("Before you continue", body)

    def under_age(self, home: str = "/") -> str:
        """The page for a visitor the screen turned away: kind, neutral, no way to try again.

        ``home`` is the app's home page (its root path when mounted under one)."""
        body = (
            "<h1>Thank you</h1>"
            "<p>Sorry, you can't create an account, buy things or send us information on this "
            "site right now.</p>"
            "<p>You're welcome to keep looking around.</p>"
            f'<p><a class="button" href="{escape(home)}">Go to the home page</a></p>'
        )
        return self.page("Thank you", body)

    def under_age_all(self) -> str:
        """The refusal when the whole service is gated (``mode="all"``): as neutral as
        :meth:`under_age`, with no way to try again and nothing of the service offered."""
        body = "<h1>Thank you</h1><p>Sorry, this site isn't available to you right now.</p>"
        return self.page("Thank you", body)

    def screen_required(self, screen_url: str) -> str:
        """The page for a visitor who has to answer the screen before doing this."""
        body = (
            "<h1>One step first</h1>"
            "<p>Please answer one quick question before you continue.</p>"
            f'<p><a class="button" href="{escape(screen_url)}">Continue</a></p>'
        )
        return self.page("One step first", body)

    def store_unavailable(self) -> str:
        """The page for a request that needs the gate's store while it cannot answer (503)."""
        body = (
            "<h1>Please try again in a moment</h1>"
            "<p>This can't be done just now. Nothing was saved; please try again shortly.</p>"
        )
        return self.page("Please try again in a moment", body)


def _value(values: Mapping[str, str], name: str) -> str:
    typed = values.get(name, "")
    return f' value="{escape(typed)}"' if typed else ""


def invalid_fields(values: Mapping[str, str]) -> tuple[str, ...]:
    """The birth-date fields that are wrong on their own (a year that is not four digits, a
    numeric month or a day out of range, a day without a month); empty when only the whole date
    is wrong (the 30th of February, a date in the future)."""
    year = values.get("birth_year", "").strip()
    month = values.get("birth_month", "").strip()
    day = values.get("birth_day", "").strip()
    wrong = []
    if not (len(year) == 4 and year.isdigit()):
        wrong.append("birth_year")
    if (month.isdigit() and not 1 <= int(month) <= 12) or (day and not month):
        wrong.append("birth_month")
    if day and not (day.isdigit() and 1 <= int(day) <= 31):
        wrong.append("birth_day")
    return tuple(wrong)


def screen_url(prefix: str, next_path: str) -> str:
    """The screen's address carrying ``next`` (already a safe path)."""
    if next_path == "/":
        return prefix
    return f"{prefix}?next={quote(next_path, safe='/')}"


def json_body(data: Mapping[str, object]) -> bytes:
    """A compact JSON response body."""
    return json.dumps(data, separators=(",", ":")).encode()
