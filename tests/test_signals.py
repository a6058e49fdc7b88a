"""Age signals: the platforms' shapes, the signal rule against each policy, the lower-wins rule,
and actual knowledge (an under-age signal freezes the account on every gate at once)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_postgres_store import until

from agegate import AgeGate, AgePolicy, AgeSignal, InvalidSignal, Keyring, UnderAgeError, lower_wins
from agegate.errors import AgeGateError, InvalidInput
from agegate.stores import MemoryStore

pytestmark = pytest.mark.anyio

COPPA = AgePolicy(min_age=13, name="coppa-13")
#: The region table's policies for the acceptance table, by the region that has them.
REGIONS = {"coppa-13": "US", "gdpr-de-16": "DE", "gdpr-fr-15": "FR", "uk-gdpr-13": "GB"}

U, A, S = "under_age", "allowed", None  # S: straddles the threshold, screen as today
# Every AB 1043 / Play default bracket against every policy, written out by hand.
RULE_TABLE: list[tuple[str, str, str | None]] = [
    ("under-13", "coppa-13", U),
    ("under-13", "gdpr-de-16", U),
    ("under-13", "gdpr-fr-15", U),
    ("under-13", "uk-gdpr-13", U),
    ("13-15", "coppa-13", A),
    ("13-15", "gdpr-de-16", U),
    ("13-15", "gdpr-fr-15", S),
    ("13-15", "uk-gdpr-13", A),
    ("16-17", "coppa-13", A),
    ("16-17", "gdpr-de-16", A),
    ("16-17", "gdpr-fr-15", A),
    ("16-17", "uk-gdpr-13", A),
    ("18+", "coppa-13", A),
    ("18+", "gdpr-de-16", A),
    ("18+", "gdpr-fr-15", A),
    ("18+", "uk-gdpr-13", A),
]
PLAY_BANDS = {"under-13": (0, 12), "13-15": (13, 15), "16-17": (16, 17), "18+": (18, None)}


def gate_with(policy: AgePolicy, store: Any = None) -> AgeGate:
    return AgeGate(keys=Keyring.generate(), store=store or MemoryStore(), policy=policy)


@pytest.mark.parametrize(("bracket", "policy", "expected"), RULE_TABLE)
def test_the_signal_rule_for_every_bracket_and_policy(
    bracket: str, policy: str, expected: str | None
) -> None:
    # The region table's policies, as a visitor from each region meets them; and the same
    # minimum age as a hand-made policy (AgePolicy(min_age=...)).
    table = AgeGate(keys=Keyring.generate(), store=MemoryStore())
    own = gate_with(AgePolicy(min_age=AgePolicy.for_region(REGIONS[policy]).min_age, name=policy))
    lower, upper = PLAY_BANDS[bracket]
    play: dict[str, Any] = {"userStatus": "SUPERVISED", "ageLower": lower}
    if upper is not None:
        play["ageUpper"] = upper
    apple = {"lowerBound": lower or None, "upperBound": upper, "ageRangeDeclaration": "guardianDeclared"}
    for signal in (
        AgeSignal.from_ab1043(bracket),
        AgeSignal.from_google_play(play),
        AgeSignal.from_apple(apple),
        AgeSignal(lower, upper, "our-app"),
    ):
        assert signal is not None
        for decision in (table.screen_signal(signal, region=REGIONS[policy]), own.screen_signal(signal)):
            if expected is None:
                assert decision is None
            else:
                assert decision is not None
                assert (decision.outcome, decision.allowed, decision.policy) == (
                    expected,
                    expected == A,
                    policy,
                )


def test_a_straddling_range_decides_nothing_and_the_screen_still_does() -> None:
    gate = gate_with(COPPA)
    for signal in (AgeSignal(10, 14, "google-play"), AgeSignal(None, 13, "x"), AgeSignal(12, None, "x")):
        assert gate.screen_signal(signal) is None
    # Screened as today: the typed date decides.
    assert gate.screen({"birth_date": "2000-01-01"}).outcome == "allowed"
    # A range touching the threshold from below is wholly under it only when its top is below it.
    assert gate.screen_signal(AgeSignal(10, 12, "x")) is not None
    assert gate.screen_signal(AgeSignal(13, 14, "x")) is not None


def test_google_play_shapes() -> None:
    verified = AgeSignal.from_google_play({"userStatus": "VERIFIED", "installId": "i-123"})
    assert verified == AgeSignal(18, None, "google-play", verified=True)
    supervised = AgeSignal.from_google_play(
        {"userStatus": "SUPERVISED_APPROVAL_PENDING", "ageLower": 13, "ageUpper": 15, "installId": "x"}
    )
    assert supervised == AgeSignal(13, 15, "google-play")
    custom = AgeSignal.from_google_play({"userStatus": "DECLARED", "ageLower": 14, "ageUpper": 20})
    assert custom == AgeSignal(14, 20, "google-play")
    assert AgeSignal.from_google_play({"userStatus": "UNKNOWN"}) is None
    assert AgeSignal.from_google_play({}) is None
    for bad in (
        {"userStatus": "ADULT"},
        {"userStatus": 3},
        {"userStatus": "SUPERVISED"},  # no ageLower: nothing to place
        {"userStatus": "VERIFIED", "ageUpper": 12},
        {"userStatus": "SUPERVISED", "ageLower": "13"},
        {"userStatus": "SUPERVISED", "ageLower": True},
        {"userStatus": "SUPERVISED", "ageLower": 16, "ageUpper": 13},
    ):
        with pytest.raises(InvalidSignal):
            AgeSignal.from_google_play(bad)
    with pytest.raises(InvalidSignal):
        AgeSignal.from_google_play(["VERIFIED"])  # type: ignore[arg-type]


def test_apple_shapes() -> None:
    below = AgeSignal.from_apple({"lowerBound": None, "upperBound": 13})
    assert below == AgeSignal(None, 13, "apple-declared-age-range")
    checked = AgeSignal.from_apple({"lowerBound": 18, "upperBound": None, "ageRangeDeclaration": "confirmed"})
    assert checked.verified and checked.lower == 18
    assert not AgeSignal.from_apple({"lowerBound": 18, "ageRangeDeclaration": "selfDeclared"}).verified
    for bad in (
        {},
        {"lowerBound": None, "upperBound": None},
        {"lowerBound": 13.5},
        {"ageRangeDeclaration": 1},
    ):
        with pytest.raises(InvalidSignal):
            AgeSignal.from_apple(bad)


def test_ab1043_brackets() -> None:
    for label in ("under-13", "Under 13", "UNDER_13", "0-12", "0\u201312"):
        assert AgeSignal.from_ab1043(label) == AgeSignal(0, 12, "ca-ab1043")
    assert AgeSignal.from_ab1043("18+") == AgeSignal(18, None, "ca-ab1043")
    for bad in ("", "12-13", "adult", "13", "x" * 100, None):
        with pytest.raises(InvalidSignal):
            AgeSignal.from_ab1043(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "args",
    [
        (None, None, "x"),
        (16, 13, "x"),
        (-1, 12, "x"),
        (0, 151, "x"),
        (True, 12, "x"),
        (1.5, 12, "x"),
        (0, 12, ""),
        (0, 12, "Google Play"),
        (0, 12, "a" * 65),
        (0, 12, None),
    ],
)
def test_bad_signals_are_a_clear_error(args: tuple[Any, Any, Any]) -> None:
    with pytest.raises(InvalidSignal) as caught:
        AgeSignal(*args)
    assert isinstance(caught.value, AgeGateError) and isinstance(caught.value, ValueError)
    assert "signal" in str(caught.value)
    with pytest.raises(InvalidSignal):
        AgeSignal(0, 12, "x", verified="yes")  # type: ignore[arg-type]


def test_screen_signal_refuses_what_is_not_a_signal() -> None:
    gate = gate_with(COPPA)
    with pytest.raises(InvalidSignal):
        gate.screen_signal((0, 12))  # type: ignore[arg-type]


def test_a_region_the_table_does_not_list_measures_a_signal_by_the_strictest_age() -> None:
    gate = gate_with(COPPA)
    teen = AgeSignal(16, 17, "google-play")
    decision = gate.screen_signal(teen, region="XX")  # the table's strictest age (18)
    assert decision is not None and decision.outcome == "under_age"
    allowed = gate.screen_signal(teen, region="DE")
    assert allowed is not None and allowed.allowed
    assert (allowed.policy, allowed.version) == ("gdpr-de-16", "2026.1")


bounds = st.one_of(st.none(), st.integers(min_value=-3, max_value=160))


@given(lower=bounds, upper=bounds, min_age=st.integers(min_value=1, max_value=120))
def test_the_rule_holds_for_every_age_in_the_range(
    lower: int | None, upper: int | None, min_age: int
) -> None:
    try:
        signal = AgeSignal(lower, upper, "prop")
    except InvalidSignal:
        assert (
            (lower is None and upper is None)
            or any(b is not None and not 0 <= b <= 150 for b in (lower, upper))
            or (lower is not None and upper is not None and lower > upper)
        )
        return
    ages = range(signal.lower or 0, (signal.upper if signal.upper is not None else 150) + 1)
    outcome = signal.outcome_under(AgePolicy(min_age=min_age))
    if outcome == "under_age":
        assert all(age < min_age for age in ages)
    elif outcome == "allowed":
        assert all(age >= min_age for age in ages)
    else:
        assert any(age < min_age for age in ages) and any(age >= min_age for age in ages)


def test_lower_wins() -> None:
    gate = gate_with(COPPA)
    allowed, under = gate.screen({"birth_date": "2000-01-01"}), gate.screen({"birth_date": "2024-01-01"})
    assert lower_wins() is None
    assert lower_wins(None, "unknown") is None
    assert lower_wins(allowed) == "allowed"
    assert lower_wins(allowed, under) == lower_wins(under, allowed) == "under_age"
    assert lower_wins("allowed", None, gate.screen_signal(AgeSignal(0, 12, "x"))) == "under_age"
    assert lower_wins(gate.screen_signal(AgeSignal(18, None, "x")), "under_age") == "under_age"
    assert lower_wins(gate.screen_signal(AgeSignal(10, 15, "x")), allowed) == "allowed"


# -- actual knowledge -------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
async def shared(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Callable[[], AgeGate]]:
    """Makes gates (as separate app instances would be) over one store, with one keyring."""
    keys = Keyring.generate()
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/agegate.sqlite3"
    else:
        url = request.getfixturevalue("postgres_url")  # a schema of its own, dropped afterwards
    made: list[AgeGate] = []

    def make() -> AgeGate:
        gate = AgeGate(keys=keys, store=url, policy=COPPA)
        made.append(gate)
        return gate

    yield make
    for gate in made:
        await gate.aclose()


async def test_actual_knowledge_freezes_an_existing_account_on_every_gate_at_once(
    shared: Callable[[], AgeGate],
) -> None:
    one, other = shared(), shared()
    await one.signup({"birth_date": "2000-01-01"}, subject="acct-7")
    # The other instance has the account allowed in its cache.
    assert await other.cached_status("acct-7") == "allowed"
    seen = (await other.store()).revision()
    attestation = await one.record_signal("acct-7", AgeSignal.from_ab1043("under-13"))
    assert attestation is not None and attestation.outcome == "under_age"
    assert await other.status_of("acct-7") == "under_age"
    # The store's revision is bumped: SQLite's shared counter at once, PostgreSQL's NOTIFY as
    # soon as it arrives; then the other instance's cached "allowed" is gone.
    store = await other.store()
    if store.revision() == seen:
        await until(lambda: store.revision() != seen)
    assert await other.cached_status("acct-7") == "under_age"
    # Listed for support, with the account id they need to purge it.
    flags = await other.knowledge.flags()
    assert [f.subject for f in flags] == ["acct-7"]
    # Idempotent: recording it again changes nothing and lists it once.
    await one.record_signal("acct-7", AgeSignal(0, 12, "google-play"))
    assert [f.subject for f in await one.knowledge.flags()] == ["acct-7"]


async def test_an_allowed_signal_never_lifts_an_under_age_record(shared: Callable[[], AgeGate]) -> None:
    gate = shared()
    await gate.record_signal("kid", AgeSignal(13, 15, "google-play"), now=None)
    assert await gate.status_of("kid") == "allowed"
    await gate.record_signal("kid", AgeSignal(0, 12, "apple-declared-age-range"))
    after = await gate.record_signal("kid", AgeSignal(18, None, "google-play", verified=True))
    assert after is not None and after.outcome == "under_age"
    assert await gate.status_of("kid") == "under_age"
    # A purged child's account stays blocked for signup too.
    with pytest.raises(UnderAgeError) as caught:
        await gate.signup({"birth_date": "1990-01-01"}, subject="kid")
    assert caught.value.reason == "blocked"


async def test_a_straddling_signal_records_nothing(shared: Callable[[], AgeGate]) -> None:
    gate = shared()
    assert await gate.record_signal("who", AgeSignal(10, 15, "google-play")) is None
    assert await gate.status_of("who") == "unknown"
    assert await gate.knowledge.flags() == []


async def test_a_flag_goes_when_the_purge_is_done_or_support_clears_it(shared: Callable[[], AgeGate]) -> None:
    gate = shared()
    await gate.record_signal("child-1", AgeSignal(0, 12, "ca-ab1043"))
    await gate.record_signal("child-2", AgeSignal(0, 12, "ca-ab1043"))
    assert {f.subject for f in await gate.knowledge.flags()} == {"child-1", "child-2"}
    report = await gate.purge("child-1", ticket="T-1", operator="support")
    assert report.state == "done"
    flags = await gate.knowledge.flags()
    assert [f.subject for f in flags] == ["child-2"]
    assert await gate.knowledge.clear(flags[0].ref) == 1
    assert await gate.knowledge.flags() == []
    assert await gate.status_of("child-2") == "under_age"  # clearing the flag lifts nothing
    with pytest.raises(InvalidInput):
        await gate.knowledge.clear("nope")


async def test_nothing_of_a_signal_is_stored(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/agegate.sqlite3"
    marker = "acct-0123456789-unique"
    async with AgeGate(keys=Keyring.generate(), store=url, policy=COPPA) as gate:
        await gate.record_signal(marker, AgeSignal(0, 12, "google-play", verified=True))
        await gate.record_signal(marker + "-adult", AgeSignal(16, 17, "apple-declared-age-range"))
        assert {f.subject for f in await gate.knowledge.flags()} == {marker}
    stored = _read_all(tmp_path)
    for needle in (marker, "google-play", "apple-declared", "ca-ab1043", "under_age", "allowed"):
        assert needle.encode() not in stored
        assert needle.encode("utf-16-le") not in stored
    # The only policy text stored is the policy's name, as for any screen.
    assert b"coppa-13" in stored


def _read_all(folder: Path) -> bytes:
    """Every byte of every file the store left in ``folder`` (database, WAL, revision file)."""
    return b"".join(p.read_bytes() for p in folder.iterdir() if p.is_file())


async def test_a_key_that_a_flag_still_needs_cannot_be_dropped(tmp_path: Path) -> None:
    from agegate import KeyringMismatch

    old = Keyring.generate("old")
    url = f"sqlite:///{tmp_path}/agegate.sqlite3"
    async with AgeGate(keys=old, store=url) as gate:
        await gate.record_signal("flagged", AgeSignal(0, 12, "ca-ab1043"))
    new = Keyring.generate("new")
    both = Keyring.from_string(f"{new.to_string()},{old.to_string()}")
    async with AgeGate(keys=both, store=url) as gate:
        assert await gate.status_of("flagged") == "under_age"  # the record moves to the new key
        (status,) = [s for s in await gate.key_status() if s.kid == "old"]
        assert status.flags == 1 and status.attestations == 0
    with pytest.raises(KeyringMismatch, match="'old'"):
        async with AgeGate(keys=new, store=url) as gate:
            pass
    async with AgeGate(keys=both, store=url) as gate:
        assert [f.subject for f in await gate.knowledge.flags()] == ["flagged"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 200) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)
play_keys = st.sampled_from(["userStatus", "ageLower", "ageUpper", "installId", "x"])
play_status = st.sampled_from(["VERIFIED", "DECLARED", "SUPERVISED", "UNKNOWN", "", "verified"])


@given(
    payload=st.dictionaries(play_keys, json_values | play_status, max_size=4),
    apple=st.dictionaries(
        st.sampled_from(["lowerBound", "upperBound", "ageRangeDeclaration"]), json_values, max_size=3
    ),
    bracket=st.text(max_size=20) | st.sampled_from(["under-13", "13-15", "16-17", "18+"]),
)
def test_the_platform_readers_accept_or_refuse_cleanly(
    payload: dict[str, Any], apple: dict[str, Any], bracket: str
) -> None:
    """Whatever a client posts, a reader gives a valid signal, None (Play: no age) or
    InvalidSignal; never another exception, never a signal outside its bounds."""
    for read in (
        lambda: AgeSignal.from_google_play(payload),
        lambda: AgeSignal.from_apple(apple),
        lambda: AgeSignal.from_ab1043(bracket),
    ):
        try:
            signal = read()
        except InvalidSignal:
            continue
        if signal is not None:
            assert signal.lower is None or 0 <= signal.lower <= (signal.upper or signal.lower)
            assert signal.upper is None or 0 <= signal.upper <= 150


async def test_record_signal_follows_the_region(shared: Callable[[], AgeGate]) -> None:
    gate = shared()
    teen = AgeSignal(16, 17, "google-play")
    allowed = await gate.record_signal("teen", teen, region="DE")
    assert allowed is not None and (allowed.outcome, allowed.policy) == ("allowed", "gdpr-de-16")
    assert await gate.status_of("teen", region="DE") == "allowed"
    assert await gate.status_of("teen", region="XX") == "unknown"  # reached under 16, not 18
    # 13-15 is a child in Germany: actual knowledge there, and under age everywhere.
    frozen = await gate.record_signal("young", AgeSignal(13, 15, "ca-ab1043"), region="DE")
    assert frozen is not None and frozen.outcome == "under_age"
    assert await gate.status_of("young", region="US") == "under_age"
    assert [f.subject for f in await gate.knowledge.flags()] == ["young"]
