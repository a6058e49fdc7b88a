"""Minimum ages by region: the versioned table, the fallback rule, and how results reached under
one policy count under another.

The built-in table is data (``agegate/data/policies.toml``), keyed by ISO 3166-1 alpha-2 and
ISO 3166-2 codes. A region the table does not list gets the table's **strictest** age. An
allowed result counts under a policy only when it was reached under an age at least as high; an
under-age result counts everywhere. Nothing here stores or logs a region: decisions, cookies and
attestations carry only the policy's label (:attr:`AgePolicy.label <agegate.AgePolicy.label>`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any, Final, Literal

from .errors import ConfigurationError
from .policy import AgePolicy

__all__ = [
    "REGION_KEY",
    "UNDER_AGE",
    "PolicyTable",
    "RegionFunc",
    "RegionRule",
    "labelled_policy",
    "region_from_header",
    "status_for",
]

#: A function of the ASGI scope giving the visitor's region code (or ``None``), plain or async.
RegionFunc = Callable[[Any], str | None] | Callable[[Any], Awaitable[str | None]]
#: Where the middleware puts the visitor's region code in the scope of a screen or signup
#: request, for the screen and the signup hook (request memory only: never stored or logged).
REGION_KEY = "agegate.region"
#: The standing of a stored or sealed result that says under age (under any policy).
UNDER_AGE: Final = "under_age"
#: What a stored result says whatever the policy asked about: :data:`UNDER_AGE`, the minimum age
#: an allowed result was reached under, or ``None`` (no usable result).
Standing = str | int | None
#: ISO 3166-1 alpha-2, optionally with an ISO 3166-2 subdivision part.
_CODE = re.compile(r"[A-Z]{2}(-[A-Z0-9]{1,3})?", re.ASCII)
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+", re.ASCII)
_FIELDS = frozenset({"name", "region", "min_age", "restricts", "source", "note", "nationwide"})


@dataclass(frozen=True, slots=True)
class RegionRule:
    """One row of the table: a region's minimum age, what the law restricts below it, and the
    law it comes from. ``nationwide`` rows also cover the country's subdivisions that have no
    row of their own."""

    code: str
    name: str
    region: str
    min_age: int
    restricts: str
    source: str
    note: str = ""
    nationwide: bool = False

    def policy(self, version: str) -> AgePolicy:
        """The row as an :class:`~agegate.AgePolicy` of table version ``version``."""
        return AgePolicy(min_age=self.min_age, name=self.name, version=version)


def _normal_code(code: object) -> str:
    if not isinstance(code, str):
        raise ConfigurationError("a region code must be a string such as 'DE' or 'CA-QC'")
    return code.strip().upper()


def _rule(code: str, row: object) -> RegionRule:
    where = f"region table row {code!r}"
    if not _CODE.fullmatch(code):
        raise ConfigurationError(f"{where}: not an ISO 3166 code such as 'DE' or 'CA-QC'")
    if not isinstance(row, Mapping):
        raise ConfigurationError(f"{where}: must be a table of fields")
    unknown = set(row) - _FIELDS
    if unknown:
        raise ConfigurationError(f"{where}: unknown fields {', '.join(sorted(map(str, unknown)))}")
    for required in ("name", "min_age", "restricts", "source"):
        if required not in row:
            raise ConfigurationError(f"{where}: {required} is missing")
    texts = {key: row.get(key, "") for key in ("name", "region", "restricts", "source", "note")}
    if not all(isinstance(value, str) for value in texts.values()):
        raise ConfigurationError(f"{where}: name, region, restricts, source and note are text")
    nationwide = row.get("nationwide", False)
    if not isinstance(nationwide, bool):
        raise ConfigurationError(f"{where}: nationwide is true or false")
    try:
        AgePolicy(min_age=row["min_age"], name=texts["name"])  # the same checks as any policy
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None
    return RegionRule(code=code, min_age=row["min_age"], nationwide=nationwide, **texts)


class PolicyTable:
    """A versioned table of :class:`RegionRule` rows keyed by region code.

    :meth:`builtin` is agegate's own table; :meth:`from_file` reads a deployment's (TOML or
    JSON, in the built-in file's shape); :meth:`updated` overrides or adds rows. Raise the
    version whenever a row changes: decisions carry it.
    """

    __slots__ = ("_policies", "rules", "strictest", "version")

    def __init__(self, rules: Mapping[str, RegionRule], *, version: str) -> None:
        if not rules:
            raise ConfigurationError("a region table needs at least one row")
        for code, rule in rules.items():
            if not isinstance(rule, RegionRule) or code != rule.code or not _CODE.fullmatch(code):
                raise ConfigurationError(f"region table row {code!r}: not a RegionRule under its own code")
        if not isinstance(version, str) or not version:
            raise ConfigurationError("a region table needs a version")
        self.version = AgePolicy(name="table", version=version).version  # checked as a policy's
        self.rules: Mapping[str, RegionRule] = dict(sorted(rules.items()))
        self._policies = {code: rule.policy(version) for code, rule in self.rules.items()}
        top = max(rule.min_age for rule in self.rules.values())
        #: What a region the table does not list gets: the table's highest minimum age.
        self.strictest = AgePolicy(min_age=top, name=f"unknown-region-{top}", version=version)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> PolicyTable:
        """A table from ``{"version": "...", "regions": {"DE": {...}, ...}}``."""
        if not isinstance(data, Mapping) or set(data) - {"version", "regions"}:
            raise ConfigurationError("a region table has two keys: version and regions")
        version, regions = data.get("version"), data.get("regions")
        if not isinstance(version, str) or not isinstance(regions, Mapping):
            raise ConfigurationError("a region table needs a version (text) and regions (a table)")
        rules: dict[str, RegionRule] = {}
        for code, row in regions.items():
            normal = _normal_code(code)
            if normal in rules:
                raise ConfigurationError(f"region table row {normal!r} appears twice")
            rules[normal] = _rule(normal, row)
        return cls(rules, version=version)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> PolicyTable:
        """A table from a ``.toml`` or ``.json`` file in the built-in table's shape."""
        from pathlib import Path  # (not loaded by an app without a table file)

        file = Path(path)
        try:
            raw = file.read_bytes()
            if file.suffix.lower() == ".json":
                data = json.loads(raw)
            else:
                import tomllib  # only for a table kept as TOML

                data = tomllib.loads(raw.decode())
        except OSError as exc:
            raise ConfigurationError(f"cannot read the region table {file}: {exc.strerror}") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"the region table {file} is not valid: {exc}") from None
        return cls.from_mapping(data)

    @staticmethod
    def builtin() -> PolicyTable:
        """agegate's own table (``agegate/data/policies.toml``)."""
        return _builtin()

    @classmethod
    def coerce(cls, table: PolicyTable | Mapping[str, Any] | str | os.PathLike[str] | None) -> PolicyTable:
        """``table`` as a table: ``None`` is the built-in one, a path is read from its file."""
        if table is None:
            return _builtin()
        if isinstance(table, PolicyTable):
            return table
        if isinstance(table, str | os.PathLike):
            return cls.from_file(table)
        if isinstance(table, Mapping):
            return cls.from_mapping(table)
        raise ConfigurationError("policies must be a PolicyTable, a mapping or a file path")

    def updated(self, regions: Mapping[str, Mapping[str, Any]], *, version: str | None = None) -> PolicyTable:
        """A copy with the rows in ``regions`` added or replaced (keyed by region code);
        ``version`` defaults to this table's version with ``+local`` appended."""
        rules = dict(self.rules)
        for code, row in regions.items():
            normal = _normal_code(code)
            rules[normal] = _rule(normal, row)
        return PolicyTable(rules, version=version or f"{self.version}-local"[:32])

    def rule_for(self, code: str) -> RegionRule | None:
        """The row that governs region ``code``: its own row, else a nationwide row of its
        country; ``None`` when the table does not say (the caller falls back to the strictest)."""
        normal = _normal_code(code)
        rule = self.rules.get(normal)
        if rule is None and "-" in normal and _CODE.fullmatch(normal):
            country = self.rules.get(normal.partition("-")[0])
            if country is not None and country.nationwide:
                rule = country
        return rule

    def for_region(self, code: str) -> AgePolicy:
        """The policy of region ``code`` (case-insensitive); the strictest age in the table for a
        region it does not list."""
        rule = self.rule_for(code)
        return self.strictest if rule is None else self._policies[rule.code]

    def as_dict(self) -> dict[str, Any]:
        """The table in its file's shape (``agegate policies --json``)."""
        regions = {}
        for code, rule in self.rules.items():
            row = asdict(rule)
            del row["code"]
            regions[code] = row
        return {"version": self.version, "strictest": self.strictest.min_age, "regions": regions}


@cache
def _builtin() -> PolicyTable:
    import tomllib  # (and the package's data files: only once a region table is used)
    from importlib import resources

    data = resources.files("agegate").joinpath("data", "policies.toml").read_text("utf-8")
    return PolicyTable.from_mapping(tomllib.loads(data))


def labelled_policy(label: str, own: AgePolicy) -> AgePolicy | None:
    """The policy under which a result labelled ``label`` (:attr:`AgePolicy.label`) was
    reached, or ``None`` when it cannot be known (an unknown or malformed label: such an
    allowed result counts nowhere).

    A label without a table version is a hand-made policy's name: only the gate's own policy
    ``own`` is known by name (how results were weighed before region tables)."""
    name, sep, rest = label.partition("|")
    if not sep:
        return own if label == own.name else None
    age, sep, version = rest.partition("|")
    if not sep or not age.isascii() or not age.isdigit() or age != str(int(age)):
        return None
    try:
        policy = AgePolicy(min_age=int(age), name=name, version=version)
    except ConfigurationError:
        return None
    return policy if policy.label == label else None


def status_for(standing: Standing, required: AgePolicy) -> Literal["allowed", "under_age", "unknown"]:
    """What a result whose standing is ``standing`` (:data:`UNDER_AGE`, the minimum age an
    allowed result was reached under, or ``None`` for none) says under ``required``."""
    if standing == UNDER_AGE:
        return "under_age"
    return "allowed" if isinstance(standing, int) and standing >= required.min_age else "unknown"


def region_from_header(name: str) -> Callable[[Any], str | None]:
    """A ``region=`` function for :class:`~agegate.AgeGateMiddleware` that reads the request
    header ``name`` (a CDN's viewer-country header such as ``"cf-ipcountry"``).

    Only the header the app names is read: set it at a proxy or CDN that overwrites what
    clients send. A missing header gives ``None`` (the gate's own policy); a header sent more
    than once with different values gives a code no table lists (the strictest age)."""
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name.lower()):
        raise ConfigurationError("region_from_header takes a header name such as 'cf-ipcountry'")
    wanted = name.lower().encode("ascii")

    def region(scope: Any) -> str | None:
        found: str | None = None
        for key, value in scope.get("headers", ()):
            if key.lower() == wanted:
                text = value.decode("latin-1").strip()
                if found is not None and found != text:
                    return "??"  # two answers: trust neither
                found = text
        return found  # "" (sent empty) is no known region: the strictest age

    return region
