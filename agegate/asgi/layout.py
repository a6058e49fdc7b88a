"""The frame of every page the middleware serves: the document around a page's body, its
inline stylesheet and ``Content-Security-Policy``, and the app's name, logo and colours on it
(see :class:`~agegate.asgi.pages.Pages`, which renders each page inside it)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from html import escape
from urllib.parse import urlsplit

from ..errors import ConfigurationError
from ..i18n import ENGLISH, Language

__all__ = ["COLOR_NAMES", "DEFAULT_CSP", "DEFAULT_CSS", "PageLayout"]

#: The ``Content-Security-Policy`` of every page the middleware serves: nothing but the page
#: itself, its inline style, and stylesheets, fonts and images from the app's own origin (for a
#: ``layout`` that links them).
DEFAULT_CSP = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; font-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
#: The colours an app may set with ``Pages(colors=...)``: CSS custom properties of the pages.
COLOR_NAMES = frozenset({"fg", "bg", "card", "line", "accent", "accent-fg", "err"})
_COLOR_VALUE = re.compile(
    r"#[0-9A-Fa-f]{3,8}|[a-z]{3,20}|(?:rgb|rgba|hsl|hsla|oklch)\([0-9., %/a-z-]{1,60}\)"
)

DEFAULT_CSS = """
:root{color-scheme:light dark;--fg:#1f2328;--bg:#f6f7f9;--card:#fff;--line:#767b84;--accent:#2458b3;
--accent-fg:#fff;--err:#b3261e}
@media (prefers-color-scheme:dark){:root{--fg:#e6e7ea;--bg:#15171a;--card:#1e2125;--line:#8b919b;
--accent:#8ab4f8;--accent-fg:#111;--err:#f2b8b5}}
*{box-sizing:border-box}
body{margin:0;padding:0 1rem;font:1rem/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:var(--bg)}
main{max-width:30rem;margin:8vh auto;padding:2rem;background:var(--card);border:1px solid var(--line);
border-radius:.75rem}
@media (max-width:30rem){main{margin:1rem auto;padding:1.25rem}}
.brand{display:flex;align-items:center;gap:.6rem;margin:0 0 1rem;font-weight:600}
.brand img{max-height:2.5rem;max-width:10rem}
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
button,.button{font:inherit;font-weight:600;color:var(--accent-fg);background:var(--accent);border:0;
border-radius:.4rem;padding:.6rem 1.2rem;cursor:pointer;text-decoration:none;display:inline-block}
:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
.note{font-size:.85rem;margin-top:1.25rem}
.note a{color:inherit}
""".strip()


def _default_layout(title: str, body: str, css: str) -> str:
    return _document(title, body, css, ENGLISH, "")


def _document(title: str, body: str, css: str, language: Language, brand: str) -> str:
    return (
        f'<!doctype html>\n<html lang="{escape(language.tag)}" dir="{language.dir}">'
        '<head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="robots" content="noindex"><title>{title}</title><style>{css}</style></head>'
        f"<body><main>{brand}{body}</main></body></html>\n"
    )


def _link(value: str | None, what: str) -> str | None:
    """``value`` when it is an https URL or a path on this site, else a ConfigurationError."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.isprintable() or any(c in value for c in "\"'<> "):
        raise ConfigurationError(f"{what} must be an https:// URL or a path starting with /")
    parts = urlsplit(value)
    if (parts.scheme, bool(parts.netloc)) == ("https", True) or (
        not parts.scheme and not parts.netloc and value.startswith("/") and not value.startswith("//")
    ):
        return value
    raise ConfigurationError(f"{what} must be an https:// URL or a path starting with /")


class PageLayout:
    """The look of the pages: the base class of :class:`~agegate.asgi.pages.Pages`, whose
    docstring tells its arguments."""

    def __init__(
        self,
        *,
        css: str = DEFAULT_CSS,
        layout: Callable[[str, str, str], str] | None = None,
        csp: str = DEFAULT_CSP,
        site_name: str | None = None,
        logo_url: str | None = None,
        colors: Mapping[str, str] | None = None,
        privacy_url: str | None = None,
    ) -> None:
        if "</style" in css.lower():
            raise ConfigurationError("css must not close the <style> element")
        if not isinstance(csp, str) or not csp.strip() or not csp.isascii() or not csp.isprintable():
            raise ConfigurationError("csp must be a Content-Security-Policy value on one line")
        if site_name is not None and (not isinstance(site_name, str) or not site_name.strip()):
            raise ConfigurationError("site_name must be a non-empty string")
        self.logo_url = _link(logo_url, "logo_url")
        self.privacy_url = _link(privacy_url, "privacy_url")
        self.site_name = site_name
        custom = []
        for name, value in (colors or {}).items():
            if name not in COLOR_NAMES:
                raise ConfigurationError(f"colors: unknown colour {name!r}; known: {sorted(COLOR_NAMES)}")
            if not isinstance(value, str) or not _COLOR_VALUE.fullmatch(value.strip()):
                raise ConfigurationError(f"colors: {name!r} must be a CSS colour such as '#0b6e4f'")
            custom.append(f"--{name}:{value.strip()}")
        if custom:
            css = f"{css}\n:root{{{';'.join(custom)}}}"
        if self.logo_url and self.logo_url.startswith("https://") and csp == DEFAULT_CSP:
            origin = "https://" + urlsplit(self.logo_url).netloc
            csp = csp.replace("img-src 'self' data:", f"img-src 'self' data: {origin}")
        self.css = css
        self.csp = csp
        self._layout = layout

    def page(self, title: str, body_html: str, language: Language = ENGLISH) -> str:
        """A whole document around ``body_html`` (already HTML) with the plain-text ``title``."""
        if self._layout is not None:
            if language.tag != ENGLISH.tag:
                # The app's layout is not told the language: mark the body itself, so that a
                # screen reader speaks it in its language and Arabic and Hebrew run right to left.
                body_html = f'<div lang="{escape(language.tag)}" dir="{language.dir}">{body_html}</div>'
            return self._layout(escape(title), body_html, self.css)
        full_title = f"{title} \N{EN DASH} {self.site_name}" if self.site_name else title
        return _document(escape(full_title), body_html, self.css, language, self._brand())

    def _brand(self) -> str:
        if not (self.site_name or self.logo_url):
            return ""
        name = escape(self.site_name or "")
        # The name is said in text beside the logo, so the image itself is decorative.
        logo = f'<img src="{escape(self.logo_url)}" alt="{"" if name else "logo"}">' if self.logo_url else ""
        return f'<header class="brand">{logo}<span>{name}</span></header>'
