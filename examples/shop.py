"""Trail Shop, the example app: its SQLite tables, log-in sessions, HTML and request handlers.

The agegate parts are :class:`Shop` (the gate, the purge handlers that cover every table the
shop keeps, and the signup handler that screens inline); ``starlette_app.py`` and
``fastapi_app.py`` put the handlers behind :class:`~agegate.AgeGateMiddleware` in each framework.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Callable, Mapping
from contextlib import closing
from html import escape
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from agegate import AgeGate, InvalidBirthDate, Keyring, Pages, StoreUnavailable, UnderAgeError
from agegate.asgi.cookie import read_cookie
from agegate.signup import InvalidSignupForm, read_form, signup_fields

T = TypeVar("T")

PRODUCTS = {
    "kite": ("A red kite", 1500),
    "tent": ("A two-person tent", 8900),
    "lamp": ("A camping lamp", 2400),
}
SESSION_COOKIE = "shop_session"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (id TEXT PRIMARY KEY, username TEXT UNIQUE NOT NULL, email TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS profiles (account_id TEXT PRIMARY KEY, display_name TEXT, city TEXT);
CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, account_id TEXT NOT NULL, product TEXT NOT NULL);
"""


class ShopDB:
    """The shop's own tables in one SQLite file (a connection per call, off the event loop)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._call(lambda db: db.executescript(_SCHEMA))

    def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with closing(sqlite3.connect(self.path)) as db, db:
            return work(db)

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await anyio.to_thread.run_sync(self._call, work)

    async def create_account(self, account_id: str, username: str, email: str) -> None:
        await self._run(
            lambda db: db.execute("INSERT INTO accounts VALUES (?, ?, ?)", (account_id, username, email))
        )

    async def username_taken(self, username: str) -> bool:
        row = await self._run(
            lambda db: db.execute("SELECT 1 FROM accounts WHERE username = ?", (username,)).fetchone()
        )
        return row is not None

    async def account(self, account_id: str) -> dict[str, Any] | None:
        def read(db: sqlite3.Connection) -> dict[str, Any] | None:
            db.row_factory = sqlite3.Row
            row = db.execute(
                "SELECT a.username, a.email, p.display_name, p.city FROM accounts a "
                "LEFT JOIN profiles p ON p.account_id = a.id WHERE a.id = ?",
                (account_id,),
            ).fetchone()
            return dict(row) if row else None

        return await self._run(read)

    async def save_profile(self, account_id: str, display_name: str, city: str) -> None:
        await self._run(
            lambda db: db.execute(
                "INSERT INTO profiles VALUES (?, ?, ?) ON CONFLICT (account_id) DO UPDATE "
                "SET display_name = excluded.display_name, city = excluded.city",
                (account_id, display_name, city),
            )
        )

    async def place_order(self, account_id: str, product: str) -> None:
        await self._run(
            lambda db: db.execute(
                "INSERT INTO orders (account_id, product) VALUES (?, ?)", (account_id, product)
            )
        )

    async def orders(self, account_id: str) -> list[str]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT product FROM orders WHERE account_id = ? ORDER BY id", (account_id,)
            ).fetchall()
        )
        return [row[0] for row in rows]

    async def delete(self, table: str, column: str, account_id: str) -> int:
        """Delete an account's rows from one of the shop's tables; returns how many."""
        if (table, column) not in {("accounts", "id"), ("profiles", "account_id"), ("orders", "account_id")}:
            raise ValueError("not a shop table")
        sql = f"DELETE FROM {table} WHERE {column} = ?"  # the names come from the set above
        return await self._run(lambda db: db.execute(sql, (account_id,)).rowcount)


async def form_fields(request: Request) -> dict[str, str]:
    """One of the shop's own small forms, read without python-multipart ({} if unreadable)."""
    try:
        return await read_form(request, max_bytes=4096)
    except InvalidSignupForm:
        return {}


class Sessions:
    """Who is logged in, by a random cookie token (kept in memory: the demo forgets on restart)."""

    def __init__(self, *, secure: bool) -> None:
        self._accounts: dict[str, str] = {}
        self._attrs = "; HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")

    def start(self, account_id: str, root: str = "") -> str:
        """A new session for ``account_id``; returns the ``Set-Cookie`` header value (for the
        shop's own paths only: ``root`` is the path it is mounted under)."""
        token = secrets.token_urlsafe(24)
        self._accounts[token] = account_id
        return f"{SESSION_COOKIE}={token}; Path={root or '/'}{self._attrs}"

    def end(self, headers: Mapping[str, str], root: str = "") -> str:
        """Forget the session of a request; returns the ``Set-Cookie`` header that clears it."""
        token = read_cookie(headers.get("cookie", ""), SESSION_COOKIE)
        if token:
            self._accounts.pop(token, None)
        return f"{SESSION_COOKIE}=; Max-Age=0; Path={root or '/'}{self._attrs}"

    def end_all(self, account_id: str) -> int:
        """Log an account out everywhere (a purged account); returns how many sessions ended."""
        tokens = [t for t, a in self._accounts.items() if a == account_id]
        for token in tokens:
            del self._accounts[token]
        return len(tokens)

    def account_of(self, scope: Mapping[str, Any]) -> str | None:
        """The logged-in account id of an ASGI scope, or ``None``: agegate's ``subject=``."""
        for name, value in scope["headers"]:
            if name == b"cookie":
                token = read_cookie(value.decode("latin-1"), SESSION_COOKIE)
                return self._accounts.get(token) if token else None
        return None


# -- HTML -----------------------------------------------------------------------------------------

_CSS = """
body{margin:0;font:1rem/1.5 system-ui,sans-serif;color:#1f2328;background:#f6f7f9}
header{background:#24303f;color:#fff;padding:.75rem 1.5rem;display:flex;gap:1.25rem;align-items:center}
header a{color:#fff}header strong{margin-right:auto}
main{max-width:36rem;margin:2rem auto;padding:1.5rem 2rem;background:#fff;border:1px solid #d0d4da;
border-radius:.75rem}
label{display:block;margin:.75rem 0 .25rem}
input,select{font:inherit;padding:.4rem .55rem;border:1px solid #b9bec6;border-radius:.35rem}
fieldset{border:0;padding:0;margin:1rem 0}legend{font-weight:600}
.parts{display:flex;gap:.75rem;flex-wrap:wrap}.parts label{margin-top:.25rem}
.part{display:flex;flex-direction:column}#agegate-year{width:6.5rem}#agegate-day{width:4.5rem}
button{font:inherit;font-weight:600;margin-top:1rem;padding:.55rem 1.1rem;border:0;border-radius:.35rem;
background:#2458b3;color:#fff;cursor:pointer}
.error{color:#b3261e;font-weight:600}
:focus-visible{outline:3px solid #2458b3;outline-offset:2px}
""".strip()


_DATE_CONTROL = Pages()


def root_of(request: Request) -> str:
    """The path the shop is mounted under (``""`` at the site's root), ready for a link: every
    link and redirect starts with it, so the shop works under a sub-path (``--root-path``)."""
    return quote(request.scope.get("root_path", ""))


def page(title: str, body: str, *, account: Mapping[str, Any] | None = None, root: str = "") -> str:
    """A shop page around ``body`` (HTML); ``root`` is :func:`root_of` the request."""
    root = escape(root)
    who = (
        f"<span>Signed in as {escape(account['username'])}</span>"
        f'<form method="post" action="{root}/logout"><button type="submit">Sign out</button></form>'
        if account
        else f'<a href="{root}/signup">Sign up</a>'
    )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)} · Trail Shop'
        f'</title><meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style>'
        f'</head><body><header><strong>Trail Shop</strong><a href="{root}/">Home</a>'
        f'<a href="{root}/profile">Profile</a><a href="{root}/checkout">Checkout</a>{who}</header>'
        f"<main>{body}</main></body></html>"
    )


def home_page(account: Mapping[str, Any] | None, root: str = "") -> str:
    items = "".join(f"<li>{escape(name)}: ${cents / 100:.2f}</li>" for name, cents in PRODUCTS.values())
    return page(
        "Home",
        f"<h1>Welcome to Trail Shop</h1><ul>{items}</ul>"
        f'<p><a href="{escape(root)}/checkout">Go to checkout</a> or '
        f'<a href="{escape(root)}/signup">create an account</a>.</p>',
        account=account,
        root=root,
    )


def _text(name: str, label: str, values: Mapping[str, str], *, kind: str = "text", auto: str = "") -> str:
    value = escape(values.get(name, ""))
    return (
        f'<label for="{name}">{label}</label><input id="{name}" name="{name}" type="{kind}" '
        f'value="{value}" autocomplete="{auto or "off"}" required>'
    )


def signup_page(values: Mapping[str, str] | None = None, error: str | None = None, *, root: str = "") -> str:
    """The signup form: the birth date is asked here too, and screened before anything is stored."""
    values = values or {}
    err = f'<p class="error" id="signup-error" role="alert">{escape(error)}</p>' if error else ""
    # The same date control as the screen's (month names, field order), from agegate.Pages.
    dates = _DATE_CONTROL.date_fields({k: v for k, v in values.items() if k.startswith("birth_")})
    body = (
        f"<h1>Create an account</h1>{err}"
        f'<form method="post" action="{escape(root)}/signup">'
        f"{_text('username', 'Username', values, auto='username')}"
        f"{_text('email', 'Email', values, kind='email', auto='email')}"
        f"{dates}"
        '<button type="submit">Create account</button></form>'
    )
    return page("Sign up", body, root=root)


def profile_page(account: Mapping[str, Any], *, saved: bool = False, root: str = "") -> str:
    note = "<p role='status'>Profile saved.</p>" if saved else ""
    values = {"display_name": account.get("display_name") or "", "city": account.get("city") or ""}
    body = (
        f"<h1>Your profile</h1>{note}"
        f'<form method="post" action="{escape(root)}/profile">'
        f"{_text('display_name', 'Display name', values, auto='nickname')}"
        f"{_text('city', 'City', values, auto='address-level2')}"
        '<button type="submit">Save profile</button></form>'
    )
    return page("Profile", body, account=account, root=root)


def checkout_page(
    account: Mapping[str, Any] | None, orders: list[str], *, placed: bool = False, root: str = ""
) -> str:
    note = "<p role='status'>Thank you for your order!</p>" if placed else ""
    options = "".join(
        f'<option value="{key}">{escape(name)} (${cents / 100:.2f})</option>'
        for key, (name, cents) in PRODUCTS.items()
    )
    mine = "".join(f"<li>{escape(PRODUCTS.get(p, (p, 0))[0])}</li>" for p in orders)
    history = f"<h2>Your orders</h2><ul>{mine}</ul>" if mine else ""
    login = "" if account else f'<p>Please <a href="{escape(root)}/signup">create an account</a> first.</p>'
    body = (
        f"<h1>Checkout</h1>{note}{login}"
        f'<form method="post" action="{escape(root)}/checkout">'
        f'<label for="product">Product</label><select id="product" name="product">{options}</select>'
        f'<button type="submit">Place order</button></form>{history}'
    )
    return page("Checkout", body, account=account, root=root)


# -- the shop itself ------------------------------------------------------------------------------


class Shop:
    """The shop's gate, tables and sessions, and its request handlers (Starlette ``Request`` in,
    ``Response`` out, so FastAPI takes them as they are).

    ``store`` defaults to an SQLite file in ``data_dir`` (default ``$SHOP_DATA_DIR`` or
    ``./shop-data``); ``keys`` default to ``AGEGATE_SECRET_KEYS``.
    """

    def __init__(
        self,
        *,
        keys: Keyring | None = None,
        data_dir: str | Path | None = None,
        store: str | None = None,
        secure_cookies: bool = True,
    ) -> None:
        folder = Path(data_dir or os.environ.get("SHOP_DATA_DIR", "shop-data"))
        folder.mkdir(parents=True, exist_ok=True)
        self.gate = AgeGate(
            keys=keys or Keyring.from_env(),
            store=store or f"sqlite:///{(folder / 'agegate.sqlite3').resolve()}",
        )
        self.db = ShopDB(folder / "shop.sqlite3")
        self.sessions = Sessions(secure=secure_cookies)
        self._pages = Pages()
        db, sessions = self.db, self.sessions

        # Purge handlers: everything the shop keeps about an account, each safe to run twice.
        @self.gate.purger.handler("orders")
        async def purge_orders(subject: str) -> int:
            return await db.delete("orders", "account_id", subject)

        @self.gate.purger.handler("profiles")
        async def purge_profiles(subject: str) -> int:
            return await db.delete("profiles", "account_id", subject)

        @self.gate.purger.handler("accounts")
        async def purge_accounts(subject: str) -> int:
            return await db.delete("accounts", "id", subject) + sessions.end_all(subject)

    async def _current(self, request: Request) -> tuple[str | None, dict[str, Any] | None]:
        account_id = self.sessions.account_of(request.scope)
        return account_id, (await self.db.account(account_id) if account_id else None)

    async def home(self, request: Request) -> Response:
        return HTMLResponse(home_page((await self._current(request))[1], root_of(request)))

    async def signup_form(self, request: Request) -> Response:
        return HTMLResponse(signup_page(root=root_of(request)))

    async def signup(self, request: Request) -> Response:
        """POST /signup, a ``signup_paths`` entry: the birth date is screened here, inline."""
        root = root_of(request)
        try:
            form = await read_form(request, max_bytes=4096)
        except InvalidSignupForm as exc:
            return HTMLResponse(signup_page(error=exc.message, root=root), status_code=exc.status_code)
        username, email = form.get("username", "").strip(), form.get("email", "").strip()
        if not username or "@" not in email or await self.db.username_taken(username):
            error = "Please choose another username and give a valid email address."
            return HTMLResponse(signup_page(form, error=error, root=root), status_code=400)
        account_id = "acct_" + secrets.token_hex(8)
        try:
            # Screens the birth date, stores only a keyed hash of an allowed result and tells the
            # middleware, which sets the browser's cookie. Nothing is stored before this returns.
            await signup_fields(
                request, self.gate, form, subject=account_id, identifier_fields=("email", "username")
            )
        except InvalidSignupForm as exc:  # a field that is not text
            return HTMLResponse(signup_page(error=exc.message, root=root), status_code=exc.status_code)
        except InvalidBirthDate as exc:
            return HTMLResponse(signup_page(form, error=exc.message, root=root), status_code=400)
        except UnderAgeError:
            return HTMLResponse(self._pages.under_age(root + "/"), status_code=403)
        except StoreUnavailable as exc:  # no account without a stored screen result
            error = "Signing up is not possible just now. Please try again in a moment."
            headers = {"Retry-After": str(exc.retry_after)}
            page = signup_page(form, error=error, root=root)
            return HTMLResponse(page, status_code=503, headers=headers)
        await self.db.create_account(account_id, username, email)
        response = RedirectResponse(f"{root}/profile", status_code=303)
        response.headers.append("set-cookie", self.sessions.start(account_id, root))
        return response

    async def profile(self, request: Request) -> Response:
        _, account = await self._current(request)
        root = root_of(request)
        if account is None:
            return RedirectResponse(f"{root}/signup", status_code=303)
        return HTMLResponse(profile_page(account, saved="saved" in request.query_params, root=root))

    async def save_profile(self, request: Request) -> Response:
        account_id, account = await self._current(request)
        root = root_of(request)
        if account_id is None or account is None:
            return RedirectResponse(f"{root}/signup", status_code=303)
        form = await form_fields(request)
        await self.db.save_profile(account_id, form.get("display_name", ""), form.get("city", ""))
        return RedirectResponse(f"{root}/profile?saved=1", status_code=303)

    async def checkout(self, request: Request) -> Response:
        account_id, account = await self._current(request)
        orders = await self.db.orders(account_id) if account_id else []
        placed = "placed" in request.query_params
        return HTMLResponse(checkout_page(account, orders, placed=placed, root=root_of(request)))

    async def place_order(self, request: Request) -> Response:
        account_id = self.sessions.account_of(request.scope)
        root = root_of(request)
        if account_id is None:
            return RedirectResponse(f"{root}/signup", status_code=303)
        product = (await form_fields(request)).get("product", "")
        if product in PRODUCTS:
            await self.db.place_order(account_id, product)
        return RedirectResponse(f"{root}/checkout?placed=1", status_code=303)

    async def logout(self, request: Request) -> Response:
        root = root_of(request)
        response = RedirectResponse(f"{root}/", status_code=303)
        response.headers.append("set-cookie", self.sessions.end(request.headers, root))
        return response
