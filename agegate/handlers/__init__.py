r"""The app's databases and the built-in purge handlers: an account across a SQL schema, rows of
one table (SQLite, PostgreSQL) and per-account files.

::

    db = SQLiteDatabase("app.sqlite3")
    gate.purger.add(db.account("users", "id", owns=["addresses"]))  # follows the foreign keys
    gate.purger.add(db.rows("events", "account_id"))                 # one table, no keys
    gate.purger.add(AccountFiles("/srv/uploads", names=("{subject}", "{subject}.json")))

Every handler is idempotent (a second run deletes nothing and returns 0) and offers a ``count``
side for dry runs. Table and column names are validated and quoted; the account id only ever
travels as a bound query parameter. A database keeps a few connections open between calls
(closed when it is garbage-collected or :meth:`close`\ d). The databases the handlers know are
what ``agegate purge --coverage`` inspects for personal-looking columns nobody purges.
"""

from ..files import AccountFiles
from .base import Database, TableRef
from .postgres import PostgresDatabase
from .rows import SQLRows
from .sqlite import SQLiteDatabase

__all__ = ["AccountFiles", "Database", "PostgresDatabase", "SQLRows", "SQLiteDatabase", "TableRef"]
