"""The report form under the gate's prefix (``{prefix}/report``): anyone who believes a child
has an account says so, without logging in.

``GET`` shows the form (HTML) or describes it (JSON); ``POST`` takes a form or JSON
``{"account", "relation", "contact", "details"}`` and answers ``202 {"reference", "answer_by"}``
(JSON) or ``303`` to a confirmation page (HTML, post/redirect/get). The account is never looked
up here, so the answer is the same whether or not it exists. The cross-site rule and the
bounded body reader are the screen's; the rate limit keeps no IP address
(:mod:`agegate.reports.limit`).
"""

from __future__ import annotations

import logging
from datetime import datetime
from html import escape
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope, Send

from ..errors import InvalidReport, KeyringError, StoreError, StoreUnavailable
from ..gate import AgeGate
from ..i18n import ENGLISH, N_, Language
from ..reports.fields import FIELD_NAMES, MAX_ACCOUNT, MAX_CONTACT, MAX_DETAILS, RELATIONS
from ..reports.service import is_reference
from .answers import Headers, respond
from .endpoints import screen_headers
from .forms import FormRefused, is_json, media_type, read_items
from .language import LanguageChooser
from .origin import OriginRule
from .pages import Pages, json_body
from .report_words import field_message, kinds_in

__all__ = ["MAX_REPORT_BODY", "ReportEndpoint"]

_log = logging.getLogger("agegate.asgi")

#: Largest report body accepted, in bytes: the free text at its longest, urlencoded, fits.
MAX_REPORT_BODY = 32 * 1024
_ERRORS = {
    "cross_site_request": N_("This form was sent from another site. Please fill it in again here."),
    "request_too_large": N_("That was more than this form takes. Please shorten the text."),
    "unsupported_media_type": N_("This form could not be read. Please fill it in again."),
    "invalid_request": N_("This form could not be read. Please fill it in again."),
    "method_not_allowed": N_("This form could not be read. Please fill it in again."),
    "rate_limited": N_("Many reports are arriving just now. Please try again in a few minutes."),
    "store_unavailable": N_("Your report could not be saved just now. Please try again shortly."),
}
#: The labels of the fixed ``relation`` values, marked for translation.
_RELATION_WORDS = {
    "parent": N_("I am the child's parent"),
    "guardian": N_("I am the child's guardian"),
    "other": N_("Other"),
}


class ReportEndpoint:
    """The ASGI endpoint at ``{prefix}/report``."""

    def __init__(
        self,
        gate: AgeGate,
        *,
        prefix: str,
        pages: Pages,
        headers: Headers,
        origins: OriginRule,
        language: LanguageChooser | None = None,
    ) -> None:
        self.gate = gate
        self.language = language or LanguageChooser()
        self.path = prefix + "/report"
        self.pages = pages
        self.headers = headers
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        seen = screen_headers(scope)
        html = b"text/html" in seen.get(b"accept", b"")
        action = (scope.get("root_path") or "") + self.path
        # Only the pages follow the visitor's language; the JSON answers stay as they are.
        words = await self.language(scope) if html else ENGLISH
        if method in ("GET", "HEAD"):
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            reference = query.get("ref", "")
            if html and is_reference(reference):
                body = self._received(reference, action, words).encode()
            elif html:
                body = self.form(action, language=words).encode()
            else:
                body = json_body(
                    {
                        "report": action,
                        "fields": list(FIELD_NAMES),
                        "relations": list(RELATIONS),
                        "account_kinds": list(self.gate.reports.account_kinds),
                    }
                )
            headers = self.headers.html if html else self.headers.json
            await respond(send, 200, headers, b"" if method == "HEAD" else body, len(body))
            return
        if method != "POST":
            allow = [(b"allow", b"GET, HEAD, POST")]
            await self._error(send, html, 405, "method_not_allowed", action, allow, words)
            return
        if self.origins.cross_origin(scope, seen):
            # Another site must not be able to file reports in a visitor's name.
            await self._error(send, html, 403, "cross_site_request", action, language=words)
            return
        media = media_type(seen.get(b"content-type"))
        html = html and not is_json(media)
        try:
            items, _ = await read_items(
                media, seen.get(b"content-length"), receive, MAX_REPORT_BODY, check_values=False
            )
        except FormRefused as refused:
            await self._error(send, html, refused.status, refused.error, action, language=words)
            return
        if items is None:
            return  # the client went away
        data = dict(items)
        reports = self.gate.reports
        try:
            fields = reports.check(data)
        except InvalidReport as exc:
            if html:
                typed = {k: v for k, v in data.items() if k in FIELD_NAMES and isinstance(v, str)}
                page = self.form(action, typed, error=exc, language=words)
                await respond(send, 400, self.headers.html, page.encode())
            else:
                answer = {"error": "invalid_report", "field": exc.field, "message": exc.message}
                await respond(send, 400, self.headers.json, json_body(answer))
            return
        wait = reports.limit.take(reports.account_key(fields.account))
        if wait is not None:
            retry = [(b"retry-after", str(wait).encode())]
            await self._error(send, html, 429, "rate_limited", action, retry, words)
            return
        try:
            record = await reports.submit(fields)
        except StoreUnavailable as exc:
            retry = [(b"retry-after", str(exc.retry_after).encode())]
            await self._error(send, html, 503, "store_unavailable", action, retry, words)
            return
        except (StoreError, KeyringError) as exc:
            # A store the gate cannot use at all: refused, and said loudly for the operator (the
            # message names key ids and store errors, never the report).
            _log.error("the age gate cannot store a report: %s", exc)
            await self._error(send, html, 503, "store_unavailable", action, [(b"retry-after", b"60")], words)
            return
        if html:
            location = f"{action}?ref={record.reference}".encode("latin-1")
            await respond(send, 303, [*self.headers.private, (b"location", location)], b"")
        else:
            answer = {"reference": record.reference, "answer_by": _day(record.due_at)}
            await respond(send, 202, self.headers.json, json_body(answer))

    # -- pages ---------------------------------------------------------------------------------

    def form(
        self,
        action: str,
        values: dict[str, str] | None = None,
        *,
        error: InvalidReport | None = None,
        language: Language = ENGLISH,
    ) -> str:
        """The report form in ``language``; after an error, with what was typed and the message
        by its field."""
        _ = language.gettext
        values = values or {}
        kinds = kinds_in(tuple(self.gate.reports.account_kinds), language)

        def marks(name: str) -> str:
            hint = f' aria-describedby="report-{name}-hint"' if name in ("account", "details") else ""
            if error is not None and error.field == name:
                return ' aria-invalid="true" aria-describedby="report-error"'
            return hint

        def value(name: str) -> str:
            return f' value="{escape(values[name])}"' if values.get(name) else ""

        message = ""
        if error is not None:
            said = field_message(error, tuple(self.gate.reports.account_kinds), language)
            message = f'<p class="error" id="report-error" role="alert">{escape(said)}</p>'
        chosen = values.get("relation", "")
        relations = "".join(
            f'<div><input type="radio" id="report-relation-{r}" name="relation" value="{r}" required'
            f"{' checked' if chosen == r else ''}{marks('relation')}>"
            f' <label for="report-relation-{r}">{escape(_(_RELATION_WORDS[r]))}</label></div>'
            for r in RELATIONS
        )
        # Every message is read here, outside the f-strings, where `pybabel extract` finds it.
        heading, account = escape(_("Tell us about a child's account")), escape(_("The account"))
        intro = escape(
            _(
                "If you believe a child has an account here, tell us: we will look into it, delete "
                "the account's data if it is a child's, and answer you."
            )
        )
        hint = escape(_("Its {kinds}.").format(kinds=kinds))
        legend = escape(_("Your relation to the child"))
        contact = escape(_("Your email address, for our answer"))
        details = escape(_("Anything else we should know (optional)"))
        limit = escape(_("Up to {count} characters.").format(count=MAX_DETAILS))
        button = escape(_("Send report"))
        privacy = escape(
            _(
                "We keep what you send here locked away, use it only to handle this report, and "
                "erase your address and text once we have answered you."
            )
        )
        body = (
            f"<h1>{heading}</h1><p>{intro}</p>"
            f'<form method="post" action="{escape(action)}" novalidate>{message}'
            f'<div class="part"><label for="report-account">{account}</label>'
            f'<input id="report-account" name="account" type="text" maxlength="{MAX_ACCOUNT}" required'
            f"{value('account')}{marks('account')}>"
            f'<p class="note" id="report-account-hint">{hint}</p></div>'
            f"<fieldset{marks('relation') if error is not None and error.field == 'relation' else ''}>"
            f"<legend>{legend}</legend>{relations}</fieldset>"
            f'<div class="part"><label for="report-contact">{contact}</label>'
            '<input id="report-contact" name="contact" type="email" autocomplete="email" '
            f'maxlength="{MAX_CONTACT}" required{value("contact")}{marks("contact")}></div>'
            f'<div class="part"><label for="report-details">{details}</label>'
            f'<textarea id="report-details" name="details" rows="5" maxlength="{MAX_DETAILS}"'
            f"{marks('details')}>{escape(values.get('details', ''))}</textarea>"
            f'<p class="note" id="report-details-hint">{limit}</p></div>'
            f'<button type="submit">{button}</button></form><p class="note">{privacy}</p>'
        )
        return self.pages.page(_("Report a child's account"), body, language)

    def _received(self, reference: str, action: str, language: Language = ENGLISH) -> str:
        _ = language.gettext
        days = self.gate.reports.deadline.days
        strong = f'<strong id="report-reference">{escape(reference)}</strong>'
        steps = (
            _("Our support team looks into the account you told us about."),
            _("If it is a child's account, we delete its data everywhere we keep it."),
            _(
                "Within {days} days we answer you at the address you gave, with a signed "
                "deletion receipt if we deleted the account."
            ).format(days=days),
        )
        title = _("Thank you: we have your report")
        kept = escape(_("Your reference is {reference}. Please keep it.")).format(reference=strong)
        after = escape(_("What happens next"))
        same = escape(_("We answer every report the same way, whether or not we find the account."))
        another = escape(_("Report another account"))
        body = (
            f"<h1>{escape(title)}</h1><p>{kept}</p><h2>{after}</h2><ol>"
            + "".join(f"<li>{escape(step)}</li>" for step in steps)
            + f'</ol><p>{same}</p><p><a href="{escape(action)}">{another}</a></p>'
        )
        return self.pages.page(title, body, language)

    async def _error(
        self,
        send: Send,
        html: bool,
        status: int,
        error: str,
        action: str,
        extra: list[tuple[bytes, bytes]] | None = None,
        language: Language = ENGLISH,
    ) -> None:
        if html:
            _ = language.gettext
            back, again = escape(_("Back to the form")), escape(_("Please try again"))
            text = (
                f"<h1>{again}</h1><p>{escape(_(_ERRORS[error]))}</p>"
                f'<p><a class="button" href="{escape(action)}">{back}</a></p>'
            )
            page = self.pages.page(_("Something went wrong"), text, language)
            await respond(send, status, [*self.headers.html, *(extra or [])], page.encode())
        else:
            await respond(send, status, [*self.headers.json, *(extra or [])], json_body({"error": error}))


def _day(moment: datetime) -> str:
    return moment.date().isoformat()
