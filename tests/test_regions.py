"""Minimum ages by region: every row of the built-in table, the strictest-age fallback, overrides,
and the rule that a result reached under a weaker policy does not satisfy a stricter one."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agegate import AgeGate, AgePolicy, ConfigurationError, Keyring, PolicyTable, UnderAgeError
from agegate.asgi.cookie import UNDER_AGE, GateCookie
from agegate.decisions import Decision
from agegate.regions import labelled_policy, region_from_header
from agegate.stores import AttestationRecord, MemoryStore

NOW = datetime(2026, 6, 15, 12, tzinfo=UTC)

#: The legal facts, written out independently of the data file: code -> (name, min_age).
EXPECTED: dict[str, tuple[str, int]] = {
    # GDPR Art. 8 and the national laws that lower its 16 (EU, then EEA)
    "AT": ("gdpr-at-14", 14), "BE": ("gdpr-be-13", 13), "BG": ("gdpr-bg-14", 14),
    "HR": ("gdpr-hr-16", 16), "CY": ("gdpr-cy-14", 14), "CZ": ("gdpr-cz-15", 15),
    "DK": ("gdpr-dk-13", 13), "EE": ("gdpr-ee-13", 13), "FI": ("gdpr-fi-13", 13),
    "FR": ("gdpr-fr-15", 15), "DE": ("gdpr-de-16", 16), "GR": ("gdpr-gr-15", 15),
    "HU": ("gdpr-hu-16", 16), "IE": ("gdpr-ie-16", 16), "IT": ("gdpr-it-14", 14),
    "LV": ("gdpr-lv-13", 13), "LT": ("gdpr-lt-14", 14), "LU": ("gdpr-lu-16", 16),
    "MT": ("gdpr-mt-13", 13), "NL": ("gdpr-nl-16", 16), "PL": ("gdpr-pl-16", 16),
    "PT": ("gdpr-pt-13", 13), "RO": ("gdpr-ro-16", 16), "SK": ("gdpr-sk-16", 16),
    "SI": ("gdpr-si-15", 15), "ES": ("gdpr-es-14", 14), "SE": ("gdpr-se-13", 13),
    "IS": ("gdpr-is-13", 13), "LI": ("gdpr-li-16", 16), "NO": ("gdpr-no-13", 13),
    # elsewhere
    "GB": ("uk-gdpr-13", 13), "US": ("coppa-13", 13), "US-CA": ("ccpa-ca-16", 16),
    "US-FL": ("fl-hb3-16", 16), "KR": ("pipa-kr-14", 14), "CN": ("pipl-cn-14", 14),
    "CA-QC": ("qc-law25-14", 14), "AU": ("au-sm-16", 16), "BR": ("lgpd-br-12", 12),
    "IN": ("dpdp-in-18", 18), "JP": ("appi-jp-16", 16),
}  # fmt: skip
EU_EEA = {
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT",
    "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO",
}  # fmt: skip
TABLE = PolicyTable.builtin()


def born_years_ago(years: int, *, days_short: int = 0) -> date:
    """The birth date of someone who turns ``years`` on NOW's date, ``days_short`` days later."""
    return date(2026 - years, 6, 15) + timedelta(days=days_short)


def fields(birth: date) -> dict[str, str]:
    return {"birth_date": birth.isoformat()}


def test_the_table_has_exactly_the_rows_the_tests_know() -> None:
    assert set(TABLE.rules) == set(EXPECTED)
    assert set(TABLE.rules) >= EU_EEA
    raw = tomllib.loads(resources.files("agegate").joinpath("data/policies.toml").read_text("utf-8"))
    assert raw["version"] == TABLE.version


@pytest.mark.parametrize("code", sorted(EXPECTED))
def test_every_row(code: str) -> None:
    name, age = EXPECTED[code]
    rule = TABLE.rules[code]
    assert (rule.name, rule.min_age) == (name, age)
    assert rule.source.strip() and rule.restricts.strip() and rule.region.strip()
    if code in EU_EEA:
        assert "GDPR Art. 8" in rule.source
    for spelling in (code, code.lower(), f" {code.title()} "):
        policy = AgePolicy.for_region(spelling)
        assert (policy.name, policy.min_age, policy.version) == (name, age, TABLE.version)
    # The threshold itself, through the gate: a person turning `age` today passes, one day
    # younger does not; the decision carries the policy's name and the table's version.
    gate = AgeGate(keys=Keyring.generate(), store=MemoryStore(), policy=AgePolicy(min_age=1))
    on_time = gate.screen(fields(born_years_ago(age)), now=NOW, region=code)
    late = gate.screen(fields(born_years_ago(age, days_short=1)), now=NOW, region=code)
    assert (on_time.outcome, late.outcome) == ("allowed", "under_age")
    assert (on_time.policy, on_time.version) == (name, TABLE.version)


@pytest.mark.parametrize(
    "code",
    ["ZZ", "XX", "T1", "", "  ", "not a code", "DEU", "US-TX", "CA-ON", "CA", "EU", "de-", "DE-", "FR-75-1"],
)
def test_a_region_the_table_does_not_list_gets_the_strictest_age(code: str) -> None:
    strictest = max(age for _, age in EXPECTED.values())
    policy = AgePolicy.for_region(code)
    assert policy.min_age == strictest == 18
    assert policy.name == "unknown-region-18" and policy.version == TABLE.version


def test_a_subdivision_follows_its_country_only_where_the_country_row_is_nationwide() -> None:
    assert AgePolicy.for_region("FR-75").name == "gdpr-fr-15"
    assert AgePolicy.for_region("de-by").name == "gdpr-de-16"
    assert AgePolicy.for_region("AU-NSW").name == "au-sm-16"
    # US states differ: one without a row is not assumed to be COPPA's 13.
    assert AgePolicy.for_region("US-TX").min_age == 18
    assert AgePolicy.for_region("US-CA").name == "ccpa-ca-16"


def test_the_fallback_is_the_strictest_row_of_the_table_in_use_never_the_weakest() -> None:
    table = PolicyTable.from_mapping(
        {
            "version": "site-1",
            "regions": {
                "US": {"name": "coppa-13", "min_age": 13, "restricts": "r", "source": "s"},
                "DE": {"name": "gdpr-de-16", "min_age": 16, "restricts": "r", "source": "s"},
            },
        }
    )
    assert AgePolicy.for_region("JP", table=table) == AgePolicy(16, "unknown-region-16", "site-1")
    assert AgePolicy.for_region("us", table=table).min_age == 13


def test_region_codes_must_be_text() -> None:
    with pytest.raises(ConfigurationError):
        AgePolicy.for_region(49)  # type: ignore[arg-type]
    gate = AgeGate(keys=Keyring.generate(), store=MemoryStore())
    with pytest.raises(ConfigurationError):
        gate.screen(fields(date(1990, 1, 1)), now=NOW, region=b"DE")  # type: ignore[arg-type]


# -- overriding the table -------------------------------------------------------------------------


def test_a_deployment_overrides_and_adds_rows() -> None:
    mine = TABLE.updated(
        {
            "us-ca": {"name": "site-ca-13", "min_age": 13, "restricts": "r", "source": "our counsel"},
            "US-TX": {"name": "tx-13", "min_age": 13, "restricts": "r", "source": "s", "note": "n"},
        },
        version="site-2",
    )
    assert AgePolicy.for_region("US-CA", table=mine) == AgePolicy(13, "site-ca-13", "site-2")
    assert AgePolicy.for_region("US-TX", table=mine).name == "tx-13"
    assert AgePolicy.for_region("DE", table=mine).version == "site-2"
    assert AgePolicy.for_region("US-CA").name == "ccpa-ca-16"  # the built-in table is untouched
    assert TABLE.updated({}).version == "2026.1-local"


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_a_table_from_a_file(tmp_path: Path, suffix: str) -> None:
    data = {
        "version": "v7",
        "regions": {"NZ": {"name": "nz-16", "min_age": 16, "restricts": "r", "source": "s"}},
    }
    path = tmp_path / f"policies{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(data))
    else:
        path.write_text(
            'version = "v7"\n[regions.nz]\nname = "nz-16"\nmin_age = 16\nrestricts = "r"\nsource = "s"\n'
        )
    gate = AgeGate(keys=Keyring.generate(), store=MemoryStore(), policies=path)
    assert gate.policy_for("NZ") == AgePolicy(16, "nz-16", "v7")
    assert gate.policy_for("DE") == AgePolicy(16, "unknown-region-16", "v7")
    assert AgeGate(keys=Keyring.generate(), store=MemoryStore(), policies=str(path)).policies.version == "v7"
    assert gate.policy_for(None) == AgePolicy()


def row(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {"name": "x", "min_age": 16, "restricts": "r", "source": "s"}
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


def table(*rows: tuple[str, dict[str, object]], version: object = "v") -> dict[str, object]:
    return {"version": version, "regions": dict(rows)}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (table(), "at least one row"),
        ({"regions": {"DE": row()}}, "version"),
        (table(("DE", row()), version=""), "version"),
        (table(("DE", row()), version="a|b"), "version"),
        (table(("DE", row(source=None))), "source is missing"),
        (table(("DE", row(min_age="16"))), "whole number"),
        (table(("DE", row(min_age=0))), "between"),
        (table(("DE", row(name="a|b"))), "name"),
        (table(("DE", row(age=1))), "unknown fields"),
        (table(("DE", row(nationwide="yes"))), "nationwide"),
        (table(("DE", row(note=3))), "text"),
        (table(("Germany", row())), "ISO 3166"),
        (table(("de", row()), ("DE", row(name="y"))), "twice"),
        ({**table(("DE", row())), "x": 1}, "two keys"),
    ],
)
def test_a_bad_table_is_refused_with_a_message(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        PolicyTable.from_mapping(data)


def test_rows_built_by_hand_must_sit_under_their_own_code() -> None:
    rule = TABLE.rules["DE"]
    assert PolicyTable({"DE": rule}, version="v").for_region("de").name == "gdpr-de-16"
    for rows in ({"FR": rule}, {"de": rule}, {"DE": {"min_age": 16}}):
        with pytest.raises(ConfigurationError, match="own code"):
            PolicyTable(rows, version="v")  # type: ignore[arg-type]


def test_a_table_file_that_cannot_be_read_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        PolicyTable.from_file(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("version = ")
    with pytest.raises(ConfigurationError, match="not valid"):
        AgeGate(keys=Keyring.generate(), store=MemoryStore(), policies=bad)
    with pytest.raises(ConfigurationError):
        AgeGate(keys=Keyring.generate(), store=MemoryStore(), policies=42)  # type: ignore[arg-type]


# -- the gate's own policy ------------------------------------------------------------------------


def test_region_none_keeps_the_gates_own_policy_which_stays_a_floor() -> None:
    gate = AgeGate(keys=Keyring.generate(), store=MemoryStore())
    assert gate.screen(fields(born_years_ago(13)), now=NOW).policy == "min-age-13"
    assert gate.policy_for("BR") == gate.policy  # Brazil's 12 is below the gate's own 13
    strict = AgeGate(keys=Keyring.generate(), store=MemoryStore(), policy=AgePolicy(min_age=17))
    assert strict.policy_for("US") == AgePolicy(min_age=17)
    assert strict.policy_for("IN").name == "dpdp-in-18"
    assert strict.screen(fields(born_years_ago(16)), now=NOW, region="DE").outcome == "under_age"


def test_labels_carry_name_age_and_version_and_only_known_ones_count() -> None:
    own = AgePolicy()
    de = AgePolicy.for_region("DE")
    assert de.label == f"gdpr-de-16|16|{TABLE.version}"
    assert own.label == "min-age-13"  # a hand-made policy: as before region tables
    assert labelled_policy(de.label, own) == de
    assert labelled_policy("min-age-13", own) == own
    for label in (
        "gdpr-de-16",
        "min-age-16",
        "x|16",
        "x|016|v",
        "x|16|",
        "x|+16|v",
        "x|16|v|w",
        "x|٣|v",
        "|16|v",
        "x|0|v",
    ):
        assert labelled_policy(label, own) is None, label


# -- the stricter-policy rule: signup and status_of -----------------------------------------------


@pytest.mark.anyio
async def test_an_account_allowed_under_us_rules_is_not_allowed_under_german_ones() -> None:
    async with AgeGate(keys=Keyring.generate(), store=MemoryStore()) as gate:
        fourteen = fields(born_years_ago(14, days_short=-30))
        attestation = await gate.signup(fourteen, subject="a1", now=NOW, region="US")
        assert (attestation.policy, attestation.version) == ("coppa-13", TABLE.version)
        assert await gate.status_of("a1", region="US") == "allowed"
        assert await gate.status_of("a1") == "allowed"  # the gate's own 13
        assert await gate.status_of("a1", region="KR") == "unknown"  # reached under 13, KR asks 14
        assert await gate.status_of("a1", region="BR") == "allowed"  # the gate floor: 13
        assert await gate.status_of("a1", region="DE") == "unknown"  # screen again
        assert await gate.status_of("a1", region="ZZ") == "unknown"
        assert await gate.cached_status("a1", region="FR") == "unknown"
        assert gate.peek_status("a1", region="US") == "allowed"  # one cached record, any region
        assert gate.peek_status("a1", region="DE") == "unknown"
        with pytest.raises(UnderAgeError):
            await gate.signup(fourteen, subject="a2", now=NOW, region="de")
        assert await gate.status_of("a2") == "unknown"  # nothing stored

        sixteen = fields(born_years_ago(16))
        await gate.signup(sixteen, subject="a3", now=NOW, region="DE")
        for region in (None, "US", "DE", "FR", "AU", "JP"):
            assert await gate.status_of("a3", region=region) == "allowed"
        assert await gate.status_of("a3", region="IN") == "unknown"


@pytest.mark.anyio
async def test_an_under_age_record_stays_under_age_everywhere() -> None:
    async with AgeGate(keys=Keyring.generate(), store=MemoryStore()) as gate:
        await gate.record("child", "under_age", now=NOW)
        for region in (None, "US", "BR", "DE", "IN", "ZZ"):
            assert await gate.status_of("child", region=region) == "under_age"
        with pytest.raises(UnderAgeError):
            await gate.signup(fields(date(1980, 1, 1)), subject="child", now=NOW, region="BR")


@pytest.mark.anyio
async def test_records_of_unknown_or_old_policies_fail_closed() -> None:
    store = MemoryStore()
    async with AgeGate(keys=Keyring.generate("k"), store=store) as gate:
        [digest] = gate.subject_hashes("s")
        for label, outcome, status in (
            ("min-age-13", "allowed", "allowed"),  # the gate's own policy, stored before regions
            ("min-age-12", "allowed", "unknown"),  # an old policy whose age is not known
            ("gdpr-de-16", "allowed", "unknown"),
            ("min-age-12", "under_age", "under_age"),  # under age under any policy
            ("x|16|v1", "under_age", "under_age"),
        ):
            mac = gate.attestation_hasher.digest("s", outcome, label)
            await store.put_attestation(AttestationRecord(digest, "k", mac, label, NOW), replaces=[])
            gate.forget_status()
            assert await gate.status_of("s", region="US") == status, label


@pytest.mark.anyio
async def test_raising_a_threshold_in_a_new_table_version_asks_again_where_it_matters() -> None:
    store = MemoryStore()
    keys = Keyring.generate("k")
    sixteen_and_half = fields(born_years_ago(17, days_short=180))
    async with AgeGate(keys=keys, store=store) as v1:
        await v1.signup(sixteen_and_half, subject="au", now=NOW, region="AU")
        await v1.signup(sixteen_and_half, subject="de", now=NOW, region="DE")
    raised = TABLE.updated(
        {"AU": {"name": "au-sm-17", "min_age": 17, "restricts": "r", "source": "s", "nationwide": True}},
        version="2027.1",
    )
    async with AgeGate(keys=keys, store=store, policies=raised) as v2:
        assert await v2.status_of("au", region="AU") == "unknown"  # re-screened, and refused:
        with pytest.raises(UnderAgeError):
            await v2.signup(sixteen_and_half, subject="au", now=NOW, region="AU")
        assert await v2.status_of("de", region="DE") == "allowed"  # unchanged row: no re-screen
        assert await v2.status_of("au", region="DE") == "allowed"  # reached under 16, DE needs 16
    # The same for a browser's cookie.
    old = GateCookie(AgeGate(keys=keys, store=MemoryStore()), secure=False)
    new = GateCookie(AgeGate(keys=keys, store=MemoryStore(), policies=raised), secure=False)
    header = old.set_cookie("allowed", TABLE.for_region("AU"))[1].decode().partition(";")[0]
    assert new.result(header, raised.for_region("AU")) is None
    assert new.result(header, raised.for_region("DE")) == Decision.of("allowed", TABLE.for_region("AU"))


# -- the property ---------------------------------------------------------------------------------

CODES = st.one_of(
    st.sampled_from(sorted(EXPECTED)),
    st.sampled_from(["FR-75", "US-TX", "CA-ON", "ZZ", ""]),
    st.text(max_size=6),
)
GATE = AgeGate(keys=Keyring.generate(), store=MemoryStore(), policy=AgePolicy(min_age=1))


@given(code=CODES, birth=st.dates(min_value=date(1990, 1, 1), max_value=date(2026, 6, 14)))
def test_no_region_admits_someone_the_strictest_policy_refuses_unless_its_own_age_allows(
    code: str, birth: date
) -> None:
    decision = GATE.screen(fields(birth), now=NOW, region=code)
    age = AgePolicy().age_on(birth, date(2026, 6, 15))
    strictest = TABLE.strictest.min_age
    if decision.allowed and age < strictest:
        rule = TABLE.rule_for(code)
        assert rule is not None and age >= rule.min_age
        assert decision.policy == rule.name
    if TABLE.rule_for(code) is None:
        assert decision.allowed == (age >= strictest)


COOKIE = GateCookie(GATE, secure=False)


@given(first=st.sampled_from(sorted(EXPECTED)), second=CODES)
def test_an_allowed_cookie_counts_in_another_region_only_if_reached_under_an_age_as_high(
    first: str, second: str
) -> None:
    reached, needed = GATE.policy_for(first), GATE.policy_for(second)
    header = COOKIE.set_cookie("allowed", reached)[1].decode().partition(";")[0]
    found = COOKIE.result(header, needed)
    assert (found is not None) == (reached.min_age >= needed.min_age)
    if found is not None:
        assert found == Decision.of("allowed", reached)
    refusal = COOKIE.set_cookie("under_age", reached)[1].decode().partition(";")[0]
    assert COOKIE.result(refusal, needed) is UNDER_AGE


def test_region_from_header_validates_its_name() -> None:
    with pytest.raises(ConfigurationError):
        region_from_header("cf ipcountry")
    with pytest.raises(ConfigurationError):
        region_from_header("")
    func = region_from_header("CF-IPCountry")
    assert func({"headers": [(b"cf-ipcountry", b" de ")]}) == "de"
    assert func({"headers": [(b"x-country", b"DE")]}) is None  # only the named header
    assert func({"headers": [(b"cf-ipcountry", b"US"), (b"cf-ipcountry", b"DE")]}) == "??"
    assert func({"headers": [(b"cf-ipcountry", b"DE"), (b"cf-ipcountry", b"DE")]}) == "DE"
    assert func({"headers": [(b"cf-ipcountry", b"")]}) == ""
    assert AgePolicy.for_region("??").min_age == 18
