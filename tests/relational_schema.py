"""A rental shop's schema for the relational handler's tests, on SQLite and on PostgreSQL.

Customers (integer key) with an address a household may share, rentals, payments reached both
through their rental and directly (partitioned by month on PostgreSQL), reviews, messages
between customers (another party's message names the account in ``recipient_id``), referrals
(``customer.referred_by``); players keyed by uuid with their scores. No foreign key is indexed
or cascades. :func:`expected_after` says, in plain Python, what a purge must leave.
"""

from __future__ import annotations

import uuid
from typing import Any

CUSTOMERS = (351, 352, 353, 354, 355, 356)
#: 351 and 352 share address 1 (a household), 354 and 356 share address 3.
ADDRESSES = {351: 1, 352: 1, 353: 2, 354: 3, 355: None, 356: 3}
REFERRED_BY = {355: 351, 356: 352}
MESSAGES = [(351, 352), (352, 351), (353, 351), (351, 351), (354, 355), (352, 353)]
PLAYERS = tuple(str(uuid.UUID(int=n * 0x1234567890ABCDEF)) for n in (1, 2, 3))
TABLES = ("address", "customer", "rental", "payment", "review", "message", "player", "score")
OWNS = ["address"]
SET_NULL = {"message.recipient_id", "customer.referred_by"}

SQLITE_DDL = """
CREATE TABLE address (address_id INTEGER PRIMARY KEY, line1 TEXT NOT NULL, city TEXT);
CREATE TABLE customer (customer_id INTEGER PRIMARY KEY, email TEXT, full_name TEXT,
    address_id INTEGER REFERENCES address, referred_by INTEGER REFERENCES customer);
CREATE TABLE rental (rental_id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customer,
    film TEXT);
CREATE TABLE payment (payment_id INTEGER PRIMARY KEY, rental_id INTEGER REFERENCES rental,
    customer_id INTEGER NOT NULL REFERENCES customer, amount NUMERIC, paid_on TEXT NOT NULL);
CREATE TABLE review (review_id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customer, body TEXT);
CREATE TABLE message (message_id INTEGER PRIMARY KEY, sender_id INTEGER NOT NULL REFERENCES customer,
    recipient_id INTEGER REFERENCES customer, body TEXT);
CREATE TABLE player (player_id UUID PRIMARY KEY, nickname TEXT);
CREATE TABLE score (score_id INTEGER PRIMARY KEY, player_id UUID NOT NULL REFERENCES player, points INTEGER);
"""

POSTGRES_DDL = """
CREATE TABLE {s}.address (address_id integer PRIMARY KEY, line1 text NOT NULL, city text);
CREATE TABLE {s}.customer (customer_id integer PRIMARY KEY, email text, full_name text,
    address_id integer REFERENCES {s}.address, referred_by integer REFERENCES {s}.customer);
CREATE TABLE {s}.rental (rental_id integer PRIMARY KEY, customer_id integer NOT NULL REFERENCES {s}.customer,
    film text);
CREATE TABLE {s}.payment (payment_id integer, rental_id integer REFERENCES {s}.rental,
    customer_id integer NOT NULL REFERENCES {s}.customer, amount numeric, paid_on date NOT NULL,
    PRIMARY KEY (payment_id, paid_on)) PARTITION BY RANGE (paid_on);
CREATE TABLE {s}.payment_2026_01 PARTITION OF {s}.payment FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
CREATE TABLE {s}.payment_2026_02 PARTITION OF {s}.payment FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
CREATE TABLE {s}.payment_2026_03 PARTITION OF {s}.payment FOR VALUES FROM ('2026-03-01') TO ('2026-04-01');
CREATE TABLE {s}.review (review_id integer PRIMARY KEY, customer_id integer REFERENCES {s}.customer,
    body text);
CREATE TABLE {s}.review_archive () INHERITS ({s}.review);
CREATE TABLE {s}.message (message_id integer PRIMARY KEY, sender_id integer NOT NULL REFERENCES {s}.customer,
    recipient_id integer REFERENCES {s}.customer, body text);
CREATE TABLE {s}.player (player_id uuid PRIMARY KEY, nickname text);
CREATE TABLE {s}.score (score_id integer PRIMARY KEY, player_id uuid NOT NULL REFERENCES {s}.player,
    points integer);
"""


def rows(customers: tuple[int, ...] = CUSTOMERS) -> dict[str, list[tuple[Any, ...]]]:
    """The seed data, table by table (ids chosen so that every run writes the same rows)."""
    data: dict[str, list[tuple[Any, ...]]] = {t: [] for t in TABLES}
    addresses = sorted({a for c in customers if (a := ADDRESSES.get(c, c)) is not None})
    data["address"] = [(a, f"{a} Main Street", "Springfield") for a in addresses]
    for c in customers:
        data["customer"].append(
            (c, f"c{c}@example.org", f"Customer {c}", ADDRESSES.get(c, c), REFERRED_BY.get(c))
        )
        for k in range(2):
            rental = c * 10 + k
            data["rental"].append((rental, c, f"Film {k}"))
            data["payment"].append((rental, rental, c, 3 + k, f"2026-0{1 + k}-15"))
        data["payment"].append((c * 10 + 9, None, c, 1, "2026-03-01"))  # not for a rental
        data["review"].append((c, c, f"review by {c}"))
    data["message"] = [
        (n, s, r, f"message {n}") for n, (s, r) in enumerate(MESSAGES) if s in customers and r in customers
    ]
    data["player"] = [(p, f"player {n}") for n, p in enumerate(PLAYERS)]
    data["score"] = [(n * 10 + k, p, n + k) for n, p in enumerate(PLAYERS) for k in range(3)]
    return data


def seed(conn: Any, *, schema: str = "", customers: tuple[int, ...] = CUSTOMERS) -> None:
    """Write the seed data with a DB-API connection (``sqlite3`` or psycopg), no commit."""
    param = "%s" if schema else "?"
    for table, values in rows(customers).items():
        if values:
            name = f"{schema}.{table}" if schema else table
            marks = ", ".join([param] * len(values[0]))
            for value in values:
                conn.execute(f"INSERT INTO {name} VALUES ({marks})", value)


def snapshot(conn: Any, *, schema: str = "") -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in key order, values as Python reads them."""
    out = {}
    for table in TABLES:
        name = f"{schema}.{table}" if schema else table
        fetched = conn.execute(f"SELECT * FROM {name} ORDER BY 1").fetchall()
        out[table] = [tuple(_plain(v) for v in row) for row in fetched]
    return out


def _plain(value: Any) -> Any:
    # PostgreSQL returns Decimal, date and UUID where SQLite returns int and str.
    if value is None or isinstance(value, int | str):
        return value
    return str(value) if not hasattr(value, "as_integer_ratio") else int(value)


def expected_after(
    before: dict[str, list[tuple[Any, ...]]], customer: int
) -> dict[str, list[tuple[Any, ...]]]:
    """What purging ``customer`` must leave, worked out table by table without SQL."""
    after = {t: list(v) for t, v in before.items()}
    rentals = {r[0] for r in before["rental"] if r[1] == customer}
    mine = next((c for c in before["customer"] if c[0] == customer), None)
    after["customer"] = [
        c[:4] + ((None,) if c[4] == customer else c[4:]) for c in before["customer"] if c[0] != customer
    ]
    after["rental"] = [r for r in before["rental"] if r[1] != customer]
    after["payment"] = [p for p in before["payment"] if p[2] != customer and p[1] not in rentals]
    after["review"] = [r for r in before["review"] if r[1] != customer]
    after["message"] = [
        m[:2] + ((None,) if m[2] == customer else m[2:3]) + m[3:]
        for m in before["message"]
        if m[1] != customer
    ]
    if mine is not None and mine[3] is not None and all(c[3] != mine[3] for c in after["customer"]):
        after["address"] = [a for a in before["address"] if a[0] != mine[3]]
    return after


def expected_player_after(
    before: dict[str, list[tuple[Any, ...]]], player: str
) -> dict[str, list[tuple[Any, ...]]]:
    """What purging ``player`` must leave."""
    after = {t: list(v) for t, v in before.items()}
    after["player"] = [p for p in before["player"] if p[0] != player]
    after["score"] = [s for s in before["score"] if s[1] != player]
    return after
