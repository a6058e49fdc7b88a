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
from ..reports.fields import FIELD_NAMES, MAX_ACCOUNT, MAX_CONTACT, MAX_DETAILS, RELATIONS, kinds_text
from ..reports.service import is_reference
from .answers import Headers, respond
from .endpoints import screen_headers
from .forms import FormRefused, is_json, media_type, read_items
from .origin import OriginRule
from .pages import Pages, json_body

__all__ = ["MAX_REPORT_BODY", "ReportEndpoint"]

_log = logging.getLogger("agegate.asgi")

#: Largest report body accepted, in bytes: the free text at its longest, urlencoded, fits.
MAX_REPORT_BODY = 32 * 1024
_ERRORS = {
    "cross_site_request": "This form was sent from another site. Please fill it in again here.",
    "request_too_large": "That was more than this form takes. Please shorten the text.",
    "unsupported_media_type": "This form could not be read. Please fill it in again.",
    "invalid_request": "This form could not be read. Please fill it in again.",
    "method_not_allowed": "This form could not be read. Please fill it in again.",
    "rate_limited": "Many reports are arriving just now. Please try again in a few minutes.",
    "store_unavailable": "Your report could not be saved just now. Please try again shortly.",
}
_RELATION_WORDS = {
    "parent": "I am the child's parent",
    "guardian": "I am the child's guardian",
    "other": "Other",
}


class ReportEndpoint:
    """The ASGI endpoint at ``{prefix}/report``."""

    def __init__(
        self, gate: AgeGate, *, prefix: str, pages: Pages, headers: Headers, origins: OriginRule
    ) -> None:
        self.gate = gate
        self.path = prefix + "/report"
        self.pages = pages
        self.headers = headers
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        seen = screen_headers(scope)
        html = b"text/html" in seen.get(b"accept", b"")
        action = (scope.get("root_path") or "") + self.path
        if method in ("GET", "HEAD"):
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            reference = query.get("ref", "")
            if html and is_reference(reference):
                body = self._received(reference, action).encode()
            elif html:
                body = self.form(action).encode()
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
            await self._error(send, html, 405, "method_not_allowed", action, [(b"allow", b"GET, HEAD, POST")])
            return
        if self.origins.cross_origin(scope, seen):
            # Another site must not be able to file reports in a visitor's name.
            await self._error(send, html, 403, "cross_site_request", action)
            return
        media = media_type(seen.get(b"content-type"))
        html = html and not is_json(media)
        try:
            items, _ = await read_items(
                media, seen.get(b"content-length"), receive, MAX_REPORT_BODY, check_values=False
            )
        except FormRefused as refused:
            await self._error(send, html, refused.status, refused.error, action)
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
                page = self.form(action, typed, error=exc)
                await respond(send, 400, self.headers.html, page.encode())
            else:
                answer = {"error": "invalid_report", "field": exc.field, "message": exc.message}
                await respond(send, 400, self.headers.json, json_body(answer))
            return
        wait = reports.limit.take(reports.account_key(fields.account))
        if wait is not None:
            await self._error(send, html, 429, "rate_limited", action, [(b"retry-after", str(wait).encode())])
            return
        try:
            record = await reports.submit(fields)
        except StoreUnavailable as exc:
            retry = [(b"retry-after", str(exc.retry_after).encode())]
            await self._error(send, html, 503, "store_unavailable", action, retry)
            return
        except (StoreError, KeyringError) as exc:
            # A store the gate cannot use at all: refused, and said loudly for the operator (the
            # message names key ids and store errors, never the report).
            _log.error("the age gate cannot store a report: %s", exc)
            await self._error(send, html, 503, "store_unavailable", action, [(b"retry-after", b"60")])
            return
        if html:
            location = f"{action}?ref={record.reference}".encode("latin-1")
            await respond(send, 303, [*self.headers.private, (b"location", location)], b"")
        else:
            answer = {"reference": record.reference, "answer_by": _day(record.due_at)}
            await respond(send, 202, self.headers.json, json_body(answer))

    # -- pages ---------------------------------------------------------------------------------

    def form(
        self, action: str, values: dict[str, str] | None = None, *, error: InvalidReport | None = None
    ) -> str:
        """The report form; after an error, with what was typed and the message by its field."""
        values = values or {}
        kinds = kinds_text(tuple(self.gate.reports.account_kinds))

        def marks(name: str) -> str:
            hint = f' aria-describedby="report-{name}-hint"' if name in ("account", "details") else ""
            if error is not None and error.field == name:
                return ' aria-invalid="true" aria-describedby="report-error"'
            return hint

        def value(name: str) -> str:
            return f' value="{escape(values[name])}"' if values.get(name) else ""

        message = ""
        if error is not None:
            message = f'<p class="error" id="report-error" role="alert">{escape(error.message)}</p>'
        chosen = values.get("relation", "")
        relations = "".join(
            f'<div><input type="radio" id="report-relation-{r}" name="relation" value="{r}" required'
            f"{' checked' if chosen == r else ''}{marks('relation')}>"
            f' <label for="report-relation-{r}">{_RELATION_WORDS[r]}</label></div>'
            for r in RELATIONS
        )
        body = (
            "<h1>Tell us about a child's account</h1>"
            "<p>If you believe a child has an account here, tell us: we will look into it, delete "
            "the account's data if it is a child's, and answer you.</p>"
            f'<form method="post" action="{escape(action)}" novalidate>{message}'
            '<div class="part"><label for="report-account">The account</label>'
            f'<input id="report-account" name="account" type="text" maxlength="{MAX_ACCOUNT}" required'
            f"{value('account')}{marks('account')}>"
            f'<p class="note" id="report-account-hint">Its {escape(kinds)}.</p></div>'
            f"<fieldset{marks('relation') if error is not None and error.field == 'relation' else ''}>"
            f"<legend>Your relation to the child</legend>{relations}</fieldset>"
            '<div class="part"><label for="report-contact">Your email address, for our answer</label>'
            f'<input id="report-contact" name="contact" type="email" autocomplete="email" '
            f'maxlength="{MAX_CONTACT}" required{value("contact")}{marks("contact")}></div>'
            '<div class="part"><label for="report-details">Anything else we should know (optional)</label>'
            f'<textarea id="report-details" name="details" rows="5" maxlength="{MAX_DETAILS}"'
            f"{marks('details')}>{escape(values.get('details', ''))}</textarea>"
            f'<p class="note" id="report-details-hint">Up to {MAX_DETAILS} characters.</p></div>'
            '<button type="submit">Send report</button></form>'
            '<p class="note">We keep what you send here locked away, use it only to handle this '
            "report, and erase your address and text once we have answered you.</p>"
        )
        return self.pages.page("Report a child's account", body)

    def _received(self, reference: str, action: str) -> str:
        days = self.gate.reports.deadline.days
        body = (
            "<h1>Thank you: we have your report</h1>"
            f'<p>Your reference is <strong id="report-reference">{escape(reference)}</strong>. '
            "Please keep it.</p><h2>What happens next</h2><ol>"
            "<li>Our support team looks into the account you told us about.</li>"
            "<li>If it is a child's account, we delete its data everywhere we keep it.</li>"
            f"<li>Within {days} days we answer you at the address you gave, with a signed "
            "deletion receipt if we deleted the account.</li></ol>"
            "<p>We answer every report the same way, whether or not we find the account.</p>"
            f'<p><a href="{escape(action)}">Report another account</a></p>'
        )
        return self.pages.page("Thank you: we have your report", body)

    async def _error(
        self,
        send: Send,
        html: bool,
        status: int,
        error: str,
        action: str,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        if html:
            back = f'<p><a class="button" href="{escape(action)}">Back to the form</a></p>'
            page = self.pages.page(
                "Something went wrong", f"<h1>Please try again</h1><p>{_ERRORS[error]}</p>{back}"
            )
            await respond(send, status, [*self.headers.html, *(extra or [])], page.encode())
        else:
            await respond(send, status, [*self.headers.json, *(extra or [])], json_body({"error": error}))


def _day(moment: datetime) -> str:
    return moment.date().isoformat()
