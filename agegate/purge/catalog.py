"""What a SQL database's own catalog says about its tables: foreign keys, column types,
nullability, and which tables are partitions (or inheritance children) of which.

The relational handler (:mod:`agegate.purge.relational`) plans a purge from this; the coverage
check maps a partition to its parent with :func:`partition_parents`. Readers take a plain DB-API
connection (``sqlite3`` or sync ``psycopg``) and only read the catalog, never data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Catalog",
    "ForeignKey",
    "Table",
    "display",
    "partition_parents",
    "postgres_catalog",
    "postgres_partition_parents",
    "postgres_watch",
    "sqlite_catalog",
]

#: A table as its parts: ``("orders",)`` on SQLite, ``("public", "orders")`` on PostgreSQL.
Table = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ForeignKey:
    """A foreign key: ``child(columns)`` references ``parent(parent_columns)``."""

    child: Table
    columns: tuple[str, ...]
    parent: Table
    parent_columns: tuple[str, ...]
    #: Every referencing column may hold NULL (so the reference can be cleared).
    nullable: bool

    @property
    def name(self) -> str:
        """``table.column`` (``table.col1,col2`` for a composite key), as ``set_null=`` names it."""
        return f"{display(self.child)}.{','.join(self.columns)}"


@dataclass(slots=True)
class Catalog:
    """The parts of a database's catalog a purge plan needs."""

    foreign_keys: list[ForeignKey] = field(default_factory=list)
    #: (table, column) -> the column's type, lower case (``integer``, ``uuid``, ``text``, ...).
    types: dict[tuple[Table, str], str] = field(default_factory=dict)
    #: Every table, partitions and inheritance children excluded.
    tables: set[Table] = field(default_factory=set)
    dialect: str = "sqlite"


def display(table: Table) -> str:
    """How a table is named in plans and messages (``public.`` left out)."""
    return ".".join(table[1:] if len(table) == 2 and table[0] == "public" else table)


# -- SQLite --------------------------------------------------------------------------------------


def sqlite_catalog(conn: Any) -> Catalog:
    """The catalog of a ``sqlite3`` connection's main database."""
    catalog = Catalog(dialect="sqlite")
    names = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    notnull: dict[tuple[Table, str], bool] = {}
    primary: dict[Table, list[tuple[int, str]]] = {}
    for name in names:
        table = (name,)
        catalog.tables.add(table)
        for _, column, type_, is_notnull, _, pk in conn.execute(
            'SELECT cid, name, type, "notnull", dflt_value, pk FROM pragma_table_info(?)', (name,)
        ):
            catalog.types[(table, column)] = str(type_ or "").lower()
            # A PRIMARY KEY column of a rowid table may hold NULL only in legacy files; count
            # it as NOT NULL, as SQLite's own docs advise declaring.
            notnull[(table, column)] = bool(is_notnull) or bool(pk)
            if pk:
                primary.setdefault(table, []).append((pk, column))
    lower = {name.lower(): name for name in names}
    for name in names:
        keys: dict[int, list[tuple[str, str | None, str]]] = {}
        for fk_id, _, parent, from_, to in conn.execute(
            'SELECT id, seq, "table", "from", "to" FROM pragma_foreign_key_list(?) ORDER BY id, seq',
            (name,),
        ):
            keys.setdefault(fk_id, []).append((from_, to, parent))
        for parts in keys.values():
            parent = (lower.get(parts[0][2].lower(), parts[0][2]),)
            columns = tuple(p[0] for p in parts)
            if any(p[1] is None for p in parts):  # REFERENCES parent with no columns: its primary key
                parent_columns = tuple(c for _, c in sorted(primary.get(parent, [])))
            else:
                parent_columns = tuple(str(p[1]) for p in parts)
            nullable = not any(notnull.get(((name,), c), False) for c in columns)
            catalog.foreign_keys.append(ForeignKey((name,), columns, parent, parent_columns, nullable))
    return catalog


# -- PostgreSQL ----------------------------------------------------------------------------------

_PG_SKIP = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'"

_PG_TABLES = f"""
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND {_PG_SKIP}
AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)
"""  # noqa: S608 (catalog names only, no outside input)

_PG_COLUMNS = f"""
SELECT n.nspname, c.relname, a.attname,
       format_type(COALESCE(NULLIF(t.typbasetype, 0), a.atttypid), NULL), a.attnotnull
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p') AND {_PG_SKIP}
"""  # noqa: S608

# conparentid = 0 leaves out the copies of a partitioned table's foreign keys on its partitions.
_PG_FOREIGN_KEYS = """
SELECT cn.nspname, cc.relname,
       (SELECT array_agg(a.attname ORDER BY k.i) FROM unnest(f.conkey) WITH ORDINALITY k(n, i)
        JOIN pg_attribute a ON a.attrelid = f.conrelid AND a.attnum = k.n),
       pn.nspname, pc.relname,
       (SELECT array_agg(a.attname ORDER BY k.i) FROM unnest(f.confkey) WITH ORDINALITY k(n, i)
        JOIN pg_attribute a ON a.attrelid = f.confrelid AND a.attnum = k.n),
       (SELECT bool_and(NOT a.attnotnull) FROM unnest(f.conkey) k(n)
        JOIN pg_attribute a ON a.attrelid = f.conrelid AND a.attnum = k.n)
FROM pg_constraint f
JOIN pg_class cc ON cc.oid = f.conrelid JOIN pg_namespace cn ON cn.oid = cc.relnamespace
JOIN pg_class pc ON pc.oid = f.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace
WHERE f.contype = 'f' AND f.conparentid = 0
ORDER BY cn.nspname, cc.relname, f.conname
"""

# Every partition (declarative) or inheritance child, with the parent it hangs from directly.
_PG_INHERITS = f"""
SELECT cn.nspname, c.relname, pn.nspname, p.relname
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = p.relnamespace
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND {_PG_SKIP}
"""  # noqa: S608


def postgres_catalog(conn: Any) -> Catalog:
    """The catalog of a sync ``psycopg`` connection's database (all schemas but the system's)."""
    catalog = Catalog(dialect="postgresql")
    catalog.tables = {(s, t) for s, t in conn.execute(_PG_TABLES).fetchall()}
    for schema, table, column, type_, _ in conn.execute(_PG_COLUMNS).fetchall():
        catalog.types[((schema, table), column)] = str(type_).lower()
    for cs, ct, columns, ps, pt, parent_columns, nullable in conn.execute(_PG_FOREIGN_KEYS).fetchall():
        catalog.foreign_keys.append(
            ForeignKey((cs, ct), tuple(columns), (ps, pt), tuple(parent_columns), bool(nullable))
        )
    return catalog


def postgres_watch(conn: Any, tables: Iterable[Table]) -> str:
    """A query whose answer changes when a foreign key from or to one of ``tables`` is added,
    dropped or replaced, or when one of their names comes to mean another table (renamed,
    dropped, or swapped for a new one): it reads the triggers PostgreSQL keeps on both ends of
    every foreign key, through the index on their table, and looks the names up again, so it
    costs the same whatever the database's size (a query over all of ``pg_constraint`` grows
    with every table of every schema)."""
    from psycopg import sql

    names = [".".join('"' + part.replace('"', '""') + '"' for part in table) for table in tables]
    found = conn.execute(
        "SELECT to_regclass(name)::oid::int8 FROM unnest(%s::text[]) AS name", (names,)
    ).fetchall()
    oids = ", ".join(str(int(row[0])) for row in found if row[0] is not None) or "0"
    # The names, quoted by the driver for this connection: what each means now, in order.
    now_named = sql.Literal(names).as_string(conn)
    return (
        "SELECT count(*), coalesce(sum(oid::int8), 0), (SELECT array_agg(coalesce("  # noqa: S608
        f"to_regclass(n)::oid::int8, 0) ORDER BY i) FROM unnest({now_named}::text[]) WITH ORDINALITY "
        f"AS u(n, i)) FROM pg_trigger WHERE tgrelid IN ({oids})"
    )


def postgres_partition_parents(conn: Any) -> dict[Table, Table]:
    """Every partition or inheritance child of a sync ``psycopg`` connection's database, mapped to
    its top-most parent (a partition of a partition maps to the root table)."""
    direct = {(cs, ct): (ps, pt) for cs, ct, ps, pt in conn.execute(_PG_INHERITS).fetchall()}
    out: dict[Table, Table] = {}
    for child in direct:
        parent, seen = direct[child], {child}
        while parent in direct and parent not in seen:  # multiple inheritance: the first chain
            seen.add(parent)
            parent = direct[parent]
        out[child] = parent
    return out


async def partition_parents(database: object) -> dict[str, str]:
    """For the coverage check: every partition or inheritance child of ``database`` (a
    :class:`~agegate.handlers.PostgresDatabase` or :class:`~agegate.handlers.SQLiteDatabase`)
    mapped to its top-most parent, named as ``database.columns()`` names tables. A handler on
    the parent covers the child; a database without partitions (SQLite) gives ``{}``."""
    method = getattr(database, "partition_parents", None)
    return dict(await method()) if method is not None else {}
