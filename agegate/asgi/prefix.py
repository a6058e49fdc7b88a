"""The gate's own endpoints under its prefix, built once per middleware and routed: the screen,
the parents' report form, and the digital-ID endpoints when the app accepts digital IDs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.types import Receive, Scope, Send

from ..errors import ConfigurationError, StoreUnavailable
from ..gate import AgeGate
from ..regions import REGION_KEY, RegionFunc
from .account import region_of
from .answers import Headers, Unavailable
from .cookie import GateCookie
from .endpoints import Screen
from .language import LanguageChooser
from .origin import OriginRule
from .pages import Pages
from .paths import PathRules

if TYPE_CHECKING:
    from ..credentials import CredentialVerifier
    from .credential import CredentialEndpoint
    from .report import ReportEndpoint

__all__ = ["PrefixEndpoints"]


class PrefixEndpoints:
    """The endpoints under one gate's prefix; :meth:`serve` answers a request for one of them."""

    def __init__(
        self,
        gate: AgeGate,
        *,
        paths: PathRules,
        pages: Pages,
        cookie: GateCookie,
        headers: Headers,
        origins: OriginRule,
        language: LanguageChooser,
        unavailable: Unavailable,
        whole_service: bool,
        credentials: CredentialVerifier | None,
        secure: bool,
        region: RegionFunc | None,
    ) -> None:
        self._paths = paths
        self._region = region
        self._unavailable = unavailable
        #: The screen (the middleware also renders its refusal page and cross-site errors).
        self.screen = Screen(
            gate,
            prefix=paths.prefix,
            pages=pages,
            cookie=cookie,
            headers=headers,
            origins=origins,
            language=language,
            whole_service=whole_service,
            digital_id=credentials is not None,
        )
        self._gate, self._pages, self._headers = gate, pages, headers
        self._origins, self._language = origins, language
        self._report: ReportEndpoint | None = None  # built on the first report: most apps get none
        self._credential = _digital_ids(
            gate,
            credentials,
            cookie=cookie,
            headers=headers,
            origins=origins,
            screen=self.screen,
            secure=secure,
        )

    async def serve(self, scope: Scope, receive: Receive, send: Send, paths: tuple[str, ...]) -> bool:
        """Answer an HTTP request whose path readings are ``paths`` if it is for one of the
        endpoints (``OPTIONS`` never is: CORS preflights go to the app); whether it was."""
        if self._credential is not None and (route := self._credential.route(paths)):
            if await self._regional(scope, receive, send):  # the age asked for
                await self._credential(scope, receive, send, route)
            return True
        if scope["method"] == "OPTIONS":
            return False
        if self._paths.is_screen(paths):
            if await self._regional(scope, receive, send):  # for the screen's policy
                await self.screen(scope, receive, send)
            return True
        if self._paths.is_report(paths):
            await self._report_endpoint()(scope, receive, send)  # reports from parents: open to all
            return True
        return False

    async def _regional(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Put the request's region in its scope (with ``region=``); whether it could be: when
        the app's region function answers what the gate cannot use, the request is answered
        503 here (and logged)."""
        if self._region is not None:
            try:
                scope[REGION_KEY] = await region_of(self._region, scope)
            except StoreUnavailable as exc:
                await self._unavailable(scope, receive, send, exc.retry_after)
                return False
        return True

    def _report_endpoint(self) -> ReportEndpoint:
        if self._report is None:
            from .report import ReportEndpoint

            self._report = ReportEndpoint(
                self._gate,
                prefix=self._paths.prefix,
                pages=self._pages,
                headers=self._headers,
                origins=self._origins,
                language=self._language,
            )
        return self._report


def _digital_ids(
    gate: AgeGate,
    credentials: CredentialVerifier | None,
    *,
    cookie: GateCookie,
    headers: Headers,
    origins: OriginRule,
    screen: Screen,
    secure: bool,
) -> CredentialEndpoint | None:
    """The digital-ID endpoints, when the app accepts digital IDs (imported only then: the
    verifier's libraries are the optional extra ``agegate[credentials]``)."""
    if credentials is None:
        return None
    from ..credentials import CredentialVerifier
    from .credential import CredentialEndpoint

    if not isinstance(credentials, CredentialVerifier):
        raise ConfigurationError("credentials must be an agegate.credentials.CredentialVerifier")
    return CredentialEndpoint(
        gate,
        credentials,
        prefix=screen.prefix,
        cookie=cookie,
        headers=headers,
        origins=origins,
        screen=screen,
        secure=secure,
    )
