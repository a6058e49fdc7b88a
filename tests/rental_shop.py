"""A rental shop's schema, in SQLite and PostgreSQL, for the coverage check's tests.

Customers with addresses, staff, film credits (actors), rentals (with an archive table that
inherits from it in PostgreSQL), payments partitioned by month (PostgreSQL), messages between
customers, devices keyed by uuid, and a profile table with plural and compound column names.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from agegate import AgeGate
from agegate.handlers import PostgresDatabase, SQLiteDatabase, TableRef

TABLES = """
CREATE TABLE {p}address (address_id integer PRIMARY KEY, address text, address2 text, district text,
                         city text, postal_code text, phone text);
CREATE TABLE {p}customer (customer_id integer PRIMARY KEY, first_name text, last_name text, email text,
                          address_id integer REFERENCES {p}address, created_at text);
CREATE TABLE {p}customer_profile (customer_id integer REFERENCES {p}customer, addresses text,
                                  home_address_line text, mailing_address_1 text, email_addresses text,
                                  phone_numbers text, favourite_genre text);
CREATE TABLE {p}staff (staff_id integer PRIMARY KEY, first_name text, last_name text, email text,
                       username text, address_id integer REFERENCES {p}address);
CREATE TABLE {p}store (store_id integer PRIMARY KEY, manager_staff_id integer, address_id integer);
CREATE TABLE {p}actor (actor_id integer PRIMARY KEY, first_name text, last_name text);
CREATE TABLE {p}film (film_id integer PRIMARY KEY, title text, description text);
CREATE TABLE {p}film_actor (actor_id integer, film_id integer);
CREATE TABLE {p}rental (rental_id integer PRIMARY KEY, rental_date text,
                        customer_id integer REFERENCES {p}customer, staff_id integer);
CREATE TABLE {p}message (message_id integer PRIMARY KEY, sender_id integer REFERENCES {p}customer,
                         recipient_id integer REFERENCES {p}customer, body text);
CREATE TABLE {p}device (device_uuid {uuid} PRIMARY KEY, customer_id integer REFERENCES {p}customer,
                        user_agent text,
                        last_ip text);
"""
SQLITE_ONLY = """CREATE TABLE payment (payment_id integer, customer_id integer REFERENCES customer,
                                      staff_id integer, amount int);"""
POSTGRES_ONLY = """
CREATE TABLE {p}payment (payment_id integer, customer_id integer REFERENCES {p}customer,
                         staff_id integer, amount int,
                         payment_date date NOT NULL) PARTITION BY RANGE (payment_date);
CREATE TABLE {p}payment_2026_01 PARTITION OF {p}payment FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
CREATE TABLE {p}payment_2026_02 PARTITION OF {p}payment FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
CREATE TABLE {p}payment_2026_03 PARTITION OF {p}payment FOR VALUES FROM ('2026-03-01') TO ('2026-04-01');
CREATE TABLE {p}rental_archive (archived_at date, archived_by integer) INHERITS ({p}rental);
"""

#: Every personal-looking column of the schema, as the coverage check should name it.
PERSONAL = [
    ("address", "address", "address"),
    ("address", "address2", "address"),
    ("address", "postal_code", "address"),
    ("address", "phone", "phone"),
    ("customer", "customer_id", "account id"),
    ("customer", "first_name", "name"),
    ("customer", "last_name", "name"),
    ("customer", "email", "email"),
    ("customer_profile", "customer_id", "account id"),
    ("customer_profile", "addresses", "address"),
    ("customer_profile", "home_address_line", "address"),
    ("customer_profile", "mailing_address_1", "address"),
    ("customer_profile", "email_addresses", "email"),
    ("customer_profile", "phone_numbers", "phone"),
    ("staff", "first_name", "name"),
    ("staff", "last_name", "name"),
    ("staff", "email", "email"),
    ("staff", "username", "name"),
    ("actor", "actor_id", "account id"),
    ("actor", "first_name", "name"),
    ("actor", "last_name", "name"),
    ("film_actor", "actor_id", "account id"),
    ("rental", "customer_id", "account id"),
    ("message", "sender_id", "account id"),
    ("message", "recipient_id", "account id"),
    ("device", "customer_id", "account id"),
    ("device", "user_agent", "user agent"),
    ("device", "last_ip", "ip address"),
    ("payment", "customer_id", "account id"),
]
#: Tables that hold personal data, but not the account holder's.
NOT_THE_HOLDERS = {
    "staff": "employees, not customers",
    "actor": "film credits",
    "film_actor": "film credits",
}


def create_sqlite(path: Path) -> SQLiteDatabase:
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(TABLES.format(p="", uuid="text") + SQLITE_ONLY)
    return SQLiteDatabase(path)


def create_postgres(url: str, schema: str) -> PostgresDatabase:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        script = TABLES.format(p=f"{schema}.", uuid="uuid") + POSTGRES_ONLY.format(p=f"{schema}.")
        for statement in script.split(";"):
            if statement.strip():
                conn.execute(statement)  # type: ignore[call-overload]
    return PostgresDatabase(url)


def declare(gate: AgeGate, db: SQLiteDatabase | PostgresDatabase, prefix: str = "") -> None:
    """The declarations: tables that are not the account holder's data."""
    for table, reason in NOT_THE_HOLDERS.items():
        gate.purger.exempt(db.table(prefix + table), reason=reason)


def register_account(gate: AgeGate, db: SQLiteDatabase | PostgresDatabase, prefix: str = "") -> None:
    """The relational handler: the customer, every row referencing it, its address if unshared;
    someone else's message keeps its row, with the account's id set to NULL."""
    gate.purger.add(
        db.account(prefix + "customer", "customer_id", owns=["address"], set_null=["message.recipient_id"])
    )


def register_handlers(gate: AgeGate, db: SQLiteDatabase | PostgresDatabase, prefix: str = "") -> None:
    """Handlers for every table of the account holder's (they delete nothing here: the
    coverage check reads names only)."""
    for table, column in (
        ("customer", "customer_id"),
        ("customer_profile", "customer_id"),
        ("rental", "customer_id"),  # the PostgreSQL archive inherits from it
        ("payment", "customer_id"),  # the partitioned parent covers every month
        ("message", "sender_id"),
        ("device", "customer_id"),
    ):
        gate.purger.add(db.rows(prefix + table, column))

    # Received messages are someone else's: the account's id is set to NULL in them.
    @gate.purger.handler("received", covers=[TableRef(db, prefix + "message", "recipient_id")])
    async def forget_recipient(subject: str) -> int:
        return 0

    # The customer's address, unless a household member still lives there.
    @gate.purger.handler("address", covers=[db.table(prefix + "address")])
    async def delete_address(subject: str) -> int:
        return 0
