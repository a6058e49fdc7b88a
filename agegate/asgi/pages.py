"""The pages the middleware serves: the neutral screen, the under-age page and the "screen
first" page, in HTML; plus the JSON bodies of every answer.

Everything interpolated into HTML is escaped. No page names the cut-off age or hints at it: the
year field has no minimum or maximum, nothing is pre-selected, and the under-age page offers no
way to try again. An app replaces the look by passing its own ``layout`` or ``css``, or by
subclassing :class:`Pages` and overriding any method.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape
from urllib.parse import quote

from ..birthdate import EXAMPLES, MESSAGES
from ..i18n import ENGLISH, N_, Language
from .layout import COLOR_NAMES, DEFAULT_CSP, DEFAULT_CSS, PageLayout

__all__ = [
    "COLOR_NAMES",
    "DATE_FIELDS",
    "DEFAULT_CSP",
    "DEFAULT_CSS",
    "ERROR_ID",
    "ERROR_TEXT",
    "Pages",
    "ScreenForm",
    "error_message",
    "invalid_fields",
    "json_body",
    "screen_url",
]

#: The fields of the three-part birth date, as the screen form posts them.
DATE_FIELDS = ("birth_year", "birth_month", "birth_day")
#: Error message element id; every control points at it with ``aria-describedby``.
ERROR_ID = "agegate-error"
#: What each refusal page of the screen says (by its JSON error code); each links back.
ERROR_TEXT = {
    "cross_site_request": N_("This form was sent from another site."),
    "request_too_large": N_("That was more than this form takes."),
    "unsupported_media_type": N_("This form could not be read."),
    "invalid_request": N_("This form could not be read."),
    "method_not_allowed": N_("This form could not be read."),
}


@dataclass(frozen=True, slots=True)
class ScreenForm:
    """What the screen form shows: where it posts, the ``next`` path it carries, what the
    visitor typed (re-shown after an error), the error message, the field order, which
    fields the error is about (empty: the date as a whole), and the visitor's language."""

    action: str
    next: str = "/"
    values: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    order: str = "MDY"
    invalid: tuple[str, ...] = ()
    language: Language = ENGLISH
    #: The gate's prefix when the app accepts digital IDs (:mod:`agegate.credentials`): the
    #: page then offers one, where the browser can (``{prefix}/dc.js`` decides).
    digital_id: str | None = None


class Pages(PageLayout):
    """Renders the HTML pages of the screen, in the visitor's language.

    ``site_name``, ``logo_url`` (an ``https://`` URL or a path; its origin is added to the
    default ``img-src``), ``colors`` (values for the custom properties in :data:`COLOR_NAMES`,
    such as ``{"accent": "#0b6e4f"}``; they apply in light and dark mode) and ``privacy_url``
    make the pages the app's own without a template. ``layout(title_html, body_html, css) ->
    document`` replaces the whole document instead (titles and bodies come escaped); ``css`` is
    the inline stylesheet; ``csp`` is the ``Content-Security-Policy`` the pages are served with
    (:data:`DEFAULT_CSP` allows the app's own stylesheets, fonts and images; widen it for a
    CDN). Subclass and override :meth:`screen`, :meth:`under_age`, :meth:`under_age_all` or
    :meth:`screen_required` to change a page.
    """

    def date_fields(
        self,
        values: Mapping[str, str] | None = None,
        *,
        language: Language = ENGLISH,
        order: str = "MDY",
        error: str | None = None,
        invalid: tuple[str, ...] = (),
    ) -> str:
        """The birth-date control (a fieldset of year, month and day in ``order``, month names
        in ``language``), the same on the screen and in an app's own signup form."""
        _ = language.gettext
        # Translated outside the f-strings, where the catalog extractor finds them.
        year_label, month_label, day_label = escape(_("Year")), escape(_("Month")), escape(_("Day"))
        choose, legend = escape(_("Choose…")), escape(_("Your date of birth"))
        values = values or {}
        marks = dict.fromkeys(("group", *DATE_FIELDS), "")
        message = ""
        if error:
            # Every control points at the message; only the fields it is about are marked
            # invalid, or the group when it is about the date as a whole.
            described = f' aria-describedby="{ERROR_ID}"'
            for name in DATE_FIELDS:
                marks[name] = described
            for name in invalid or ("group",):
                marks[name] = f' aria-invalid="true"{described}'
            message = f'<p class="error" id="{ERROR_ID}" role="alert">{escape(error)}</p>'
        # Only the year is required: a year alone is a valid (partial) answer.
        year = (
            f'<div class="part"><label for="agegate-year">{year_label}</label>'
            '<input id="agegate-year" name="birth_year" type="text" inputmode="numeric" '
            'autocomplete="bday-year" pattern="[0-9]{4}" maxlength="4" required'
            f"{_value(values, 'birth_year')}{marks['birth_year']}></div>"
        )
        chosen = values.get("birth_month", "").strip()
        if chosen.isdigit():
            chosen = str(int(chosen))  # "01" is January too
        options = [f'<option value="">{choose}</option>'] + [
            f'<option value="{n}"{" selected" if chosen == str(n) else ""}>{escape(name)}</option>'
            for n, name in enumerate(language.months, start=1)
        ]
        month = (
            f'<div class="part"><label for="agegate-month">{month_label}</label>'
            f'<select id="agegate-month" name="birth_month" autocomplete="bday-month"{marks["birth_month"]}>'
            f"{''.join(options)}</select></div>"
        )
        day = (
            f'<div class="part"><label for="agegate-day">{day_label}</label>'
            '<input id="agegate-day" name="birth_day" type="text" inputmode="numeric" '
            'autocomplete="bday-day" pattern="[0-9]{1,2}" maxlength="2"'
            f"{_value(values, 'birth_day')}{marks['birth_day']}></div>"
        )
        parts = {"Y": year, "M": month, "D": day}
        controls = "".join(parts[letter] for letter in order)
        return (
            f"<fieldset{marks['group']}><legend>{legend}</legend>{message}"
            f'<div class="parts">{controls}</div></fieldset>'
        )

    def screen(self, form: ScreenForm) -> str:
        """The neutral birth-date form."""
        _ = form.language.gettext
        title, button = _("Before you continue"), escape(_("Continue"))
        privacy = ""
        if self.privacy_url:
            policy = escape(_("Privacy policy"))
            privacy = f' <a href="{escape(self.privacy_url)}">{policy}</a>'
        fields = self.date_fields(
            form.values, language=form.language, order=form.order, error=form.error, invalid=form.invalid
        )
        body = (
            f"<h1>{escape(title)}</h1>"
            f'<form method="post" action="{escape(form.action)}" novalidate>'
            f'<input type="hidden" name="next" value="{escape(form.next)}">'
            f"{fields}"
            f'<button type="submit">{button}</button></form>'
            f"{self.digital_id_option(form) if form.digital_id else ''}"
            '<p class="note">'
            + escape(
                _(
                    "We use your answer only to decide what this site can offer you. "
                    "We do not keep your date of birth."
                )
            )
            + f"{privacy}</p>"
        )
        return self.page(title, body, form.language)

    def digital_id_option(self, form: ScreenForm) -> str:
        """The "Use a digital ID" option under the form: hidden, and shown by
        ``{prefix}/dc.js`` only where the browser has the Digital Credentials API. It names no
        age: the request, fetched when chosen, carries the claim."""
        _ = form.language.gettext
        base = escape(form.digital_id or "")
        failed = escape(_("That digital ID could not be used. Please enter your date of birth instead."))
        intro, button = escape(_("Or, if your device holds a digital ID:")), escape(_("Use a digital ID"))
        return (
            '<div id="agegate-dc" style="margin-top:1.25rem" hidden '
            f'data-request="{base}/credential/request" '
            f'data-verify="{base}/credential" data-next="{escape(form.next)}" '
            f'data-failed="{failed}">'
            f"<p>{intro}</p>"
            f'<button type="button" id="agegate-dc-button">{button}</button>'
            '<p id="agegate-dc-status" class="error" role="status"></p></div>'
            f'<script src="{base}/dc.js" defer></script>'
        )

    def verification_required(self, screen_url: str, language: Language = ENGLISH) -> str:
        """The page for a visitor who needs a verified answer (a digital ID) to do this."""
        _ = language.gettext
        text = _("Please confirm your age with a digital ID before you continue.")
        return self._one_step(text, screen_url, language)

    def under_age(self, home: str = "/", language: Language = ENGLISH) -> str:
        """The page for a visitor the screen turned away: kind, neutral, one message, no way to
        try again.

        ``home`` is the app's home page (its root path when mounted under one)."""
        _ = language.gettext
        title = _("You can keep looking around")
        text = _("Signing up, buying things and sending us information aren't available to you here.")
        button = escape(_("Go to the home page"))
        body = (
            f"<h1>{escape(title)}</h1><p>{escape(text)}</p>"
            f'<p><a class="button" href="{escape(home)}">{button}</a></p>'
        )
        return self.page(title, body, language)

    def under_age_all(self, language: Language = ENGLISH) -> str:
        """The refusal when the whole service is gated (``mode="all"``): as neutral as
        :meth:`under_age`, one message, no way to try again and nothing of the service offered."""
        _ = language.gettext
        title = _("This site isn't available to you")
        return self.page(title, f"<h1>{escape(title)}</h1>", language)

    def screen_required(self, screen_url: str, language: Language = ENGLISH) -> str:
        """The page for a visitor who has to answer the screen before doing this."""
        _ = language.gettext
        text = _("Please answer one quick question before you continue.")
        return self._one_step(text, screen_url, language)

    def _one_step(self, text: str, screen_url: str, language: Language) -> str:
        """A "one step first" page saying ``text`` (translated), linking to the screen."""
        _ = language.gettext
        title, button = _("One step first"), escape(_("Continue"))
        body = (
            f"<h1>{escape(title)}</h1><p>{escape(text)}</p>"
            f'<p><a class="button" href="{escape(screen_url)}">{button}</a></p>'
        )
        return self.page(title, body, language)

    def store_unavailable(self, language: Language = ENGLISH) -> str:
        """The page for a request that needs the gate's store while it cannot answer (503)."""
        _ = language.gettext
        title = _("Please try again in a moment")
        text = _("This can't be done just now. Nothing was saved; please try again shortly.")
        body = f"<h1>{escape(title)}</h1><p>{escape(text)}</p>"
        return self.page(title, body, language)

    def refused(self, error: str, screen_url: str, language: Language = ENGLISH) -> str:
        """The page for a screen request that cannot be used (``error`` is a key of
        :data:`ERROR_TEXT`); it links back to the screen."""
        _ = language.gettext
        heading, text, button = _("Please start again"), _(ERROR_TEXT[error]), escape(_("Start again"))
        body = (
            f"<h1>{escape(heading)}</h1><p>{escape(text)}</p>"
            f'<p><a class="button" href="{escape(screen_url)}">{button}</a></p>'
        )
        return self.page(_("Something went wrong"), body, language)


def error_message(reason: str, fallback: str, order: str, language: Language = ENGLISH) -> str:
    """The birth-date error ``reason`` (a key of :data:`agegate.birthdate.MESSAGES`) in
    ``language``; ``fallback`` when the reason is unknown."""
    template = MESSAGES.get(reason)
    if template is None:
        return fallback
    return language.gettext(template).format(example=EXAMPLES.get(order, EXAMPLES["MDY"]))


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
