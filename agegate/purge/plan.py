"""Planning an account's purge from a database's foreign keys: which rows go, in which order.

:func:`build_plan` turns a :class:`~agegate.purge.catalog.Catalog`, the account table and its
key column into statements that each take the account id as their only parameter:

- the account's row, and every row that references it through foreign keys, recursively, each
  reached by a path of foreign keys from the account row; deleted children first (a table comes
  before every table it references), so no foreign key is ever violated, whatever order tables
  were declared in;
- a foreign key named in ``set_null`` is cleared instead (``message.recipient_id``: another
  party's message that names the account stays, without the reference);
- rows of the ``owns`` tables that deleted rows referenced, deleted last if nothing references
  them any more. They are locked first (``FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN
  IMMEDIATE`` holds the whole database), so two purges of a household sharing an address never
  both keep it.

A foreign key that leads back into a table already on its path (a reply to the account's comment
by someone else, a customer referred by the account) is refused with a message naming it: only
the integrator can say whether that row is the account's (delete it in a handler of their own) or
someone else's (``set_null``).
"""

# Every name in the SQL built here comes from the catalog and goes through _SQL.name (quoted,
# quotes doubled); the account id and keys are only ever bound parameters.
# ruff: noqa: S608

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigurationError
from .catalog import Catalog, ForeignKey, Table, display

__all__ = ["MAX_STEPS", "Action", "OwnedStep", "Plan", "Step", "build_plan", "resolve_table"]

#: A schema whose foreign keys branch so much that a plan would pass this many steps is refused.
MAX_STEPS = 500

Action = Literal["delete", "set null", "delete if unreferenced"]


@dataclass(frozen=True, slots=True)
class Step:
    """One statement of a plan: ``sql`` takes the account id ``params`` times."""

    table: Table
    path: str
    action: Action
    sql: str
    params: int


@dataclass(frozen=True, slots=True)
class OwnedStep:
    """Rows of an owned table: ``lock_sql`` (account id ``params`` times) locks and returns the
    keys of the candidates, ``delete_sql`` (one candidate's key) deletes one if unreferenced."""

    table: Table
    path: str
    lock_sql: str
    params: int
    delete_sql: str


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything one account's purge runs, in order: ``owned`` locks, ``steps``, ``owned`` deletes."""

    root: Table
    steps: tuple[Step, ...]
    owned: tuple[OwnedStep, ...]
    #: Every table rows are deleted from (the owned tables aside).
    tables: frozenset[Table]


class _SQL:
    def __init__(self, dialect: str) -> None:
        self.postgres = dialect == "postgresql"
        self.param = "%s" if self.postgres else "?"
        self.lock = " FOR UPDATE" if self.postgres else ""

    def name(self, part: str) -> str:
        quoted = '"' + part.replace('"', '""') + '"'
        # psycopg reads % in a query with parameters as a placeholder.
        return quoted.replace("%", "%%") if self.postgres else quoted

    def table(self, table: Table) -> str:
        return ".".join(self.name(p) for p in table)

    def columns(self, columns: Iterable[str], alias: str = "") -> str:
        names = [f"{alias}{self.name(c)}" for c in columns]
        return names[0] if len(names) == 1 else "(" + ", ".join(names) + ")"

    def where(self, root: Table, column: str, path: tuple[ForeignKey, ...]) -> str:
        """Rows of ``path``'s last table (or of the root) that belong to the account."""
        if not path:
            return f"{self.name(column)} = {self.param}"
        if len(path) == 1 and path[0].parent == root and path[0].parent_columns == (column,):
            # A key referencing the account's own column: compare with the id directly.
            return f"{self.name(path[0].columns[0])} = {self.param}"
        fk = path[-1]
        parent = f"SELECT {', '.join(self.name(c) for c in fk.parent_columns)} FROM {self.table(fk.parent)}"
        return f"{self.columns(fk.columns)} IN ({parent} WHERE {self.where(root, column, path[:-1])})"


def _describe(root: Table, path: tuple[ForeignKey, ...]) -> str:
    return " <- ".join([display(root), *(fk.name for fk in path)])


class _Resolver:
    def __init__(self, catalog: Catalog, near: Table | None = None) -> None:
        self.catalog, self.near = catalog, near

    def table(self, name: str, what: str) -> Table:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"{what} must be a table name")
        parts = tuple(name.split("."))
        if parts in self.catalog.tables:
            return parts
        if len(parts) == 1:
            schemas = [self.near[:-1]] if self.near is not None and len(self.near) == 2 else []
            for guess in [(*s, parts[0]) for s in schemas] + [("public", parts[0])]:
                if guess in self.catalog.tables:
                    return guess
            matches = [t for t in self.catalog.tables if t[-1] == parts[0]]
            if len(matches) == 1:
                return matches[0]
        raise ConfigurationError(f"{what} {name!r} is not a table of this database")

    def foreign_key(self, name: str, fks: list[ForeignKey]) -> ForeignKey:
        table_name, _, columns = name.rpartition(".") if isinstance(name, str) else ("", "", "")
        if not table_name or not columns:
            raise ConfigurationError(f"set_null takes 'table.column' names, not {name!r}")
        table = self.table(table_name, "the set_null table")
        for fk in fks:
            if fk.child == table and ",".join(fk.columns) == columns:
                return fk
        raise ConfigurationError(f"set_null: {name!r} is not a foreign key of this database")


def resolve_table(catalog: Catalog, name: str) -> Table:
    """The table ``name`` means (``orders``, ``shop.orders``): on PostgreSQL a name without a
    schema is looked for in ``public``, then in any one schema that has it."""
    return _Resolver(catalog).table(name, "the table")


def build_plan(
    catalog: Catalog, table: str, column: str, *, owns: Iterable[str] = (), set_null: Iterable[str] = ()
) -> Plan:
    """The plan that purges an account whose ``column`` in ``table`` holds its id; raises
    :class:`ConfigurationError` for a name that is not in the schema or a choice it cannot follow."""
    sql = _SQL(catalog.dialect)
    root = _Resolver(catalog).table(table, "the account table")
    if (root, column) not in catalog.types:
        raise ConfigurationError(f"the account table {display(root)!r} has no column {column!r}")
    resolve = _Resolver(catalog, root)
    owned = [resolve.table(name, "owns") for name in owns]
    if root in owned:
        raise ConfigurationError("owns= names tables the account's rows reference, not the account table")
    cleared: dict[ForeignKey, str] = {resolve.foreign_key(n, catalog.foreign_keys): n for n in set_null}
    for fk, name in cleared.items():
        if not fk.nullable:
            raise ConfigurationError(f"set_null: {name!r} cannot hold NULL (it is NOT NULL)")
    incoming: dict[Table, list[ForeignKey]] = defaultdict(list)
    for fk in catalog.foreign_keys:
        incoming[fk.parent].append(fk)

    found: list[tuple[Table, tuple[ForeignKey, ...], Action]] = [(root, (), "delete")]

    def visit(path: tuple[ForeignKey, ...], on_path: set[Table]) -> None:
        here = path[-1].child if path else root
        for fk in incoming[here]:
            if len(found) >= MAX_STEPS:
                raise ConfigurationError(
                    f"the foreign keys from {display(root)!r} branch into more than {MAX_STEPS} paths; "
                    "split the purge into handlers of your own"
                )
            if fk in cleared:
                found.append((fk.child, (*path, fk), "set null"))
            elif fk.child in on_path:
                raise ConfigurationError(
                    f"foreign key {fk.name} leads back to {display(fk.child)!r}, a table this purge is "
                    f"already deleting from (path {_describe(root, path)}): if those rows are someone "
                    f"else's, pass set_null={{{fk.name!r}}}; if they are the account's, delete them in a "
                    "handler of your own registered before this one"
                )
            else:
                found.append((fk.child, (*path, fk), "delete"))
                visit((*path, fk), on_path | {fk.child})

    visit((), {root})
    order = _children_first(found)
    steps = []
    for table_ in order:
        # Within a table, clearing comes first: a self-reference to the account row must be
        # cleared before that row goes.
        for action in ("set null", "delete"):
            for t, path, a in found:
                if t == table_ and a == action:
                    steps.append(_step(sql, root, column, t, path, a))
    deleted = {t for t, _, a in found if a == "delete"}
    return Plan(
        root, tuple(steps), _owned_steps(sql, catalog, root, column, found, owned), frozenset(deleted)
    )


def _step(
    sql: _SQL, root: Table, column: str, table: Table, path: tuple[ForeignKey, ...], action: Action
) -> Step:
    if action == "set null":
        fk = path[-1]
        sets = ", ".join(f"{sql.name(c)} = NULL" for c in fk.columns)
        text = f"UPDATE {sql.table(table)} SET {sets} WHERE {sql.where(root, column, path)}"
    else:
        text = f"DELETE FROM {sql.table(table)} WHERE {sql.where(root, column, path)}"
    return Step(table, _describe(root, path), action, text, 1)


def _children_first(found: list[tuple[Table, tuple[ForeignKey, ...], Action]]) -> list[Table]:
    """The tables of ``found``, each before every table it references along the paths."""
    tables = sorted({t for t, _, _ in found}, key=display)
    before: dict[Table, set[Table]] = {t: set() for t in tables}  # table -> tables that must go first
    for table, path, _ in found:
        if path and path[-1].parent != table:
            before[path[-1].parent].add(table)
    order: list[Table] = []
    while before:
        ready = [t for t in tables if t in before and not before[t]]
        if not ready:
            raise ConfigurationError(
                "the foreign keys between " + ", ".join(display(t) for t in before) + " form a cycle: "
                "name one of them in set_null"
            )
        for table in ready:
            order.append(table)
            del before[table]
            for waiting in before.values():
                waiting.discard(table)
    return order


def _owned_steps(
    sql: _SQL,
    catalog: Catalog,
    root: Table,
    column: str,
    found: list[tuple[Table, tuple[ForeignKey, ...], Action]],
    owned: list[Table],
) -> tuple[OwnedStep, ...]:
    owned_set = set(owned)
    # sources[(owned table, referenced columns)] = [(subquery of candidate keys, params, path)]
    sources: dict[tuple[Table, tuple[str, ...]], list[tuple[str, int, str]]] = defaultdict(list)
    for table, path, action in found:
        if action != "delete":
            continue
        for fk in catalog.foreign_keys:
            if fk.child == table and fk.parent in owned_set:
                select = f"SELECT {', '.join(sql.name(c) for c in fk.columns)} FROM {sql.table(table)}"
                where = sql.where(root, column, path)
                sources[(fk.parent, fk.parent_columns)].append(
                    (
                        f"{select} WHERE {where}",
                        1,
                        f"{_describe(root, path)} -> {display(fk.parent)} ({fk.name})",
                    )
                )
    # Owned rows that owned rows reference (an address's city): an owned table comes before
    # those it references, so its candidates are complete when they feed the next one's.
    links = [fk for fk in catalog.foreign_keys if fk.child in owned_set and fk.parent in owned_set]
    links = [fk for fk in links if fk.child != fk.parent]
    order = _children_first(
        [(t, (), "delete") for t in owned] + [(fk.child, (fk,), "delete") for fk in links]
    )
    for table in order:
        for fk in (fk for fk in links if fk.child == table):
            for (t, key), srcs in list(sources.items()):
                if t == table:
                    union, params = _union(srcs)
                    select = f"SELECT {', '.join(sql.name(c) for c in fk.columns)} FROM {sql.table(t)}"
                    sources[(fk.parent, fk.parent_columns)].append(
                        (
                            f"{select} WHERE {sql.columns(key)} IN ({union})",
                            params,
                            f"{display(t)} -> {display(fk.parent)} ({fk.name})",
                        )
                    )
    steps: dict[Table, list[OwnedStep]] = defaultdict(list)
    for (table, key), srcs in sources.items():
        union, params = _union(srcs)
        keys = ", ".join(sql.name(c) for c in key)
        where = f"{sql.columns(key)} IN ({union})"
        lock = f"SELECT {keys} FROM {sql.table(table)} WHERE {where} ORDER BY {keys}{sql.lock}"
        match = " AND ".join(f"_o.{sql.name(c)} = {sql.param}" for c in key)
        unreferenced = "".join(
            f" AND NOT EXISTS (SELECT 1 FROM {sql.table(fk.child)} AS _r WHERE "
            + " AND ".join(
                f"_r.{sql.name(c)} = _o.{sql.name(p)}"
                for c, p in zip(fk.columns, fk.parent_columns, strict=True)
            )
            + ")"
            for fk in catalog.foreign_keys
            if fk.parent == table
        )
        delete = f"DELETE FROM {sql.table(table)} AS _o WHERE {match}{unreferenced}"
        steps[table].append(OwnedStep(table, "; ".join(d for *_, d in srcs), lock, params, delete))
    return tuple(step for table in order for step in steps.get(table, []))


def _union(sources: list[tuple[str, int, str]]) -> tuple[str, int]:
    return " UNION ".join(s for s, _, _ in sources), sum(p for _, p, _ in sources)
