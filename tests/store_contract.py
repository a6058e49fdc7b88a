"""The store contract: the behaviour every :class:`agegate.stores.Store` must show.

To run it on a store, subclass :class:`StoreContract` in a ``test_*.py`` module and give it a
``store`` fixture that yields an opened, empty store (and closes it afterwards). A store whose
data outlives its connection sets ``persistent = True`` and implements :meth:`reopen`::

    class TestSQLiteStore(StoreContract):
        persistent = True

        @pytest.fixture
        async def store(self, tmp_path):
            store = SQLiteStore(f"sqlite:///{tmp_path}/agegate.sqlite3")
            await store.open()
            yield store
            await store.close()
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from datetime import UTC, datetime, timedelta, timezone

import pytest

from agegate import StoreError
from agegate.stores import AttestationRecord, KeyUse, PurgeJob, ReportRecord, Store

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
HOUR = timedelta(hours=1)


def h(label: str) -> bytes:
    """A stand-in for a 32-byte keyed hash, distinct per label."""
    return label.encode().ljust(32, b"\x00")


def record(
    label: str, *, kid: str = "k1", policy: str = "min-age-13", at: datetime = T0
) -> AttestationRecord:
    return AttestationRecord(h(label), kid, b"mac-" + label.encode(), policy, at)


def job(
    label: str, *, job_id: str | None = None, created_at: datetime = T0, state: str = "running"
) -> PurgeJob:
    return PurgeJob(
        job_id=job_id or "job-" + secrets.token_hex(8),
        subject_hash=h(label),
        ticket="T-" + label,
        operator="support-1",
        handlers=("orders", "profile"),
        state=state,  # type: ignore[arg-type]
        created_at=created_at,
        updated_at=created_at,
        sealed_subject=b"sealed:" + label.encode(),
        identifier_hashes=(h("email:" + label), h("phone:" + label)),
    )


def report(reference: str, *, at: datetime = T0) -> ReportRecord:
    return ReportRecord(
        reference=reference,
        received_at=at,
        due_at=at + timedelta(days=7),
        state="open",
        sealed=b"sealed:" + reference.encode(),
        updated_at=at,
    )


class StoreContract:
    """Every protocol method's documented semantics. Subclasses provide the ``store`` fixture."""

    persistent = False

    @pytest.fixture
    async def store(self) -> Store:
        raise NotImplementedError("a StoreContract subclass provides the `store` fixture")

    async def reopen(self, store: Store) -> Store:
        """Close ``store`` and open a new store object over the same data (persistent stores)."""
        raise NotImplementedError

    # -- lifecycle ------------------------------------------------------------------------------

    async def test_is_a_store_with_a_url(self, store: Store) -> None:
        assert isinstance(store, Store)
        assert isinstance(store.url, str) and "://" in store.url

    async def test_open_and_close_are_idempotent(self, store: Store) -> None:
        await store.open()  # the fixture opened it already: a second open keeps what it holds
        await store.put_attestation(record("a"))
        await store.open()
        assert await store.get_attestation([h("a")]) == record("a")
        await store.close()
        await store.close()  # a second close is a no-op, not an error
        await store.open()  # and the same object opens again over the same data
        assert await store.get_attestation([h("a")]) == record("a")
        await store.put_attestation(record("b"))
        assert await store.get_attestation([h("b")]) == record("b")

    async def test_bump_revision_changes_the_revision(self, store: Store) -> None:
        seen = {store.revision()}
        for _ in range(3):
            await store.bump_revision()
            assert store.revision() not in seen
            seen.add(store.revision())

    async def test_data_outlives_the_connection(self, store: Store) -> None:
        if not self.persistent:
            pytest.skip("this store keeps nothing beyond its process")
        await store.put_attestation(record("a"))
        await store.block_identifiers([h("e")], until=T0 + HOUR)
        created, _ = await store.create_job(job("s"))
        again = await self.reopen(store)
        try:
            assert await again.get_attestation([h("a")]) == record("a")
            assert await again.is_blocked([h("e")], now=T0)
            assert await again.get_job(created.job_id) == created
        finally:
            await again.close()

    # -- accounts flagged by an under-age age signal ---------------------------------------------

    async def test_a_flag_is_kept_once_per_account(self, store: Store) -> None:
        assert await store.list_flags() == []
        assert await store.add_flag(h("f1"), b"sealed-1")
        assert not await store.add_flag(h("f1"), b"sealed-again")  # same account, same key
        assert not await store.add_flag(h("f1-new-key"), b"sealed-3", known=[h("f1")])  # older key
        assert await store.add_flag(h("f2"), b"sealed-2", known=[h("f2-old")])
        assert await store.list_flags() == sorted([(h("f1"), b"sealed-1"), (h("f2"), b"sealed-2")])

    async def test_flags_are_deleted_by_hash(self, store: Store) -> None:
        await store.add_flag(h("f1"), b"sealed-1")
        await store.add_flag(h("f2"), b"sealed-2")
        assert await store.delete_flags([h("f1"), h("f1"), h("nobody")]) == 1
        assert await store.delete_flags([]) == 0
        assert await store.list_flags() == [(h("f2"), b"sealed-2")]
        assert await store.add_flag(h("f1"), b"sealed-1b")  # a cleared account can be flagged again

    # -- attestations -----------------------------------------------------------------------

    async def test_attestation_round_trip(self, store: Store) -> None:
        await store.put_attestation(record("a"))
        got = await store.get_attestation([h("a")])
        assert got == record("a")
        assert got is not None and got.checked_at.utcoffset() == timedelta(0)

    async def test_times_keep_their_instant_whatever_the_zone(self, store: Store) -> None:
        east = T0.astimezone(timezone(timedelta(hours=5, minutes=30)))
        await store.put_attestation(record("a", at=east))
        got = await store.get_attestation([h("a")])
        assert got is not None and got.checked_at == T0 and got.checked_at.tzinfo is not None

    async def test_unknown_or_no_hashes_find_nothing(self, store: Store) -> None:
        await store.put_attestation(record("a"))
        assert await store.get_attestation([h("zz")]) is None
        assert await store.get_attestation([]) is None

    async def test_swap_writes_only_over_the_expected_record(self, store: Store) -> None:
        first = record("a")
        assert await store.swap_attestation(first, expected=None)
        assert not await store.swap_attestation(record("a", kid="k2"), expected=None)
        assert await store.get_attestation([h("a")]) == first
        stale = dataclasses.replace(first, mac=b"some other mac")
        assert not await store.swap_attestation(record("a", kid="k2"), expected=stale)
        assert await store.get_attestation([h("a")]) == first
        second = record("a", kid="k2", at=T0 + HOUR)
        assert await store.swap_attestation(second, expected=first)
        assert await store.get_attestation([h("a")]) == second

    async def test_swap_moves_a_record_from_an_older_key(self, store: Store) -> None:
        old = record("old")
        await store.put_attestation(old)
        new = record("new")
        assert not await store.swap_attestation(
            new, replaces=[h("old")], expected=dataclasses.replace(old, mac=b"x")
        )
        assert await store.swap_attestation(new, replaces=[h("old")], expected=old)
        assert await store.get_attestation([h("new"), h("old")]) == new
        assert await store.get_attestation([h("old")]) is None
        # A record that appeared under the new key meanwhile is not overwritten.
        await store.put_attestation(record("old2"))
        await store.put_attestation(record("new2", kid="frozen"))
        assert not await store.swap_attestation(record("new2"), replaces=[h("old2")], expected=record("old2"))
        assert await store.get_attestation([h("new2")]) == record("new2", kid="frozen")
        assert await store.get_attestation([h("old2")]) == record("old2")

    async def test_a_write_between_read_and_swap_wins(self, store: Store) -> None:
        await store.put_attestation(record("a"))
        read = await store.get_attestation([h("a")])
        frozen = dataclasses.replace(record("a", kid="freeze", at=T0 + HOUR), mac=b"mac-frozen")
        await store.put_attestation(frozen)  # a purge's freeze lands in between
        assert not await store.swap_attestation(record("a", kid="signup"), expected=read)
        assert await store.get_attestation([h("a")]) == frozen

    async def test_get_returns_the_first_hash_that_has_a_record(self, store: Store) -> None:
        await store.put_attestation(record("a", kid="old"))
        await store.put_attestation(record("b", kid="new"))
        assert await store.get_attestation([h("zz"), h("b"), h("a")]) == record("b", kid="new")
        assert await store.get_attestation([h("a"), h("b")]) == record("a", kid="old")

    async def test_put_replaces_the_record_for_the_same_hash(self, store: Store) -> None:
        await store.put_attestation(record("a", policy="p1"))
        await store.put_attestation(record("a", policy="p2", at=T0 + HOUR))
        assert await store.get_attestation([h("a")]) == record("a", policy="p2", at=T0 + HOUR)

    async def test_put_deletes_the_records_it_replaces(self, store: Store) -> None:
        await store.put_attestation(record("old1", kid="k0"))
        await store.put_attestation(record("old2", kid="k0"))
        await store.put_attestation(record("other"))
        # The record's own hash among ``replaces`` must not delete the record itself.
        await store.put_attestation(record("new"), replaces=[h("old1"), h("old2"), h("new"), h("gone")])
        assert await store.get_attestation([h("old1")]) is None
        assert await store.get_attestation([h("old2")]) is None
        assert await store.get_attestation([h("new")]) == record("new")
        assert await store.get_attestation([h("other")]) == record("other")

    async def test_delete_attestations_counts_what_it_deleted(self, store: Store) -> None:
        for label in ("a", "b", "c"):
            await store.put_attestation(record(label))
        assert await store.delete_attestations([h("a"), h("a"), h("b"), h("zz")]) == 2
        assert await store.delete_attestations([h("a")]) == 0
        assert await store.delete_attestations([]) == 0
        assert await store.get_attestation([h("a"), h("b")]) is None
        assert await store.get_attestation([h("c")]) == record("c")

    # -- identifier blocks ---------------------------------------------------------------------

    async def test_block_lasts_until_its_end(self, store: Store) -> None:
        await store.block_identifiers([h("e1"), h("e2")], until=T0 + HOUR)
        assert await store.is_blocked([h("e1")], now=T0)
        assert await store.is_blocked([h("zz"), h("e2")], now=T0 + HOUR - timedelta(microseconds=1))
        assert not await store.is_blocked([h("e1")], now=T0 + HOUR)
        assert not await store.is_blocked([h("zz")], now=T0)
        assert not await store.is_blocked([], now=T0)

    async def test_block_is_extended_never_shortened(self, store: Store) -> None:
        await store.block_identifiers([h("e")], until=T0 + 2 * HOUR)
        await store.block_identifiers([h("e")], until=T0 + HOUR)
        assert await store.is_blocked([h("e")], now=T0 + HOUR + timedelta(minutes=30))
        await store.block_identifiers([h("e")], until=T0 + 3 * HOUR)
        assert await store.is_blocked([h("e")], now=T0 + 2 * HOUR + timedelta(minutes=30))
        assert not await store.is_blocked([h("e")], now=T0 + 3 * HOUR)

    async def test_delete_expired_blocks(self, store: Store) -> None:
        await store.block_identifiers([h("a")], until=T0)
        await store.block_identifiers([h("b")], until=T0 - HOUR)
        await store.block_identifiers([h("c")], until=T0 + HOUR)
        await store.block_identifiers([], until=T0 + HOUR)
        assert await store.delete_expired_blocks(now=T0) == 2
        assert await store.delete_expired_blocks(now=T0) == 0
        assert await store.is_blocked([h("c")], now=T0)
        # A deleted block does not come back, even when asked about an earlier time.
        assert not await store.is_blocked([h("a"), h("b")], now=T0 - 2 * HOUR)

    # -- the keys the records were written under ------------------------------------------------

    async def test_key_checks_are_registered_once_and_never_changed(self, store: Store) -> None:
        assert await store.key_checks() == {}
        assert await store.register_keys({"k1": b"check-1"}) == {"k1": b"check-1"}
        # A second registration adds new ids but keeps the value first recorded for an old one.
        after = await store.register_keys({"k2": b"check-2", "k1": b"another key's check"})
        assert after == {"k1": b"check-1", "k2": b"check-2"}
        assert await store.key_checks() == after
        assert await store.register_keys({}) == after

    async def test_concurrent_registrations_keep_one_value_per_kid(self, store: Store) -> None:
        results = await asyncio.gather(*(store.register_keys({"k": bytes([n]) * 32}) for n in range(5)))
        assert len({r["k"] for r in results}) == 1
        assert (await store.key_checks())["k"] == results[0]["k"]

    async def test_key_uses_count_attestations_per_kid(self, store: Store) -> None:
        assert await store.key_uses(now=T0) == []
        await store.put_attestation(record("a", kid="old"))
        await store.put_attestation(record("b", kid="old"))
        await store.put_attestation(record("c", kid="new"))
        assert await store.key_uses(now=T0) == [KeyUse("new", attestations=1), KeyUse("old", attestations=2)]
        # Moving a record to the new key moves its need with it.
        await store.put_attestation(record("a2", kid="new"), replaces=[h("a")])
        await store.delete_attestations([h("b")])
        assert await store.key_uses(now=T0) == [KeyUse("new", attestations=2)]

    async def test_key_uses_count_blocks_in_force_for_every_listed_kid(self, store: Store) -> None:
        await store.block_identifiers([h("e1"), h("p1")], until=T0 + HOUR, kids=["new", "old"])
        await store.block_identifiers([h("e2")], until=T0 + 2 * HOUR, kids=["old"])
        await store.block_identifiers([h("gone")], until=T0, kids=["older"])
        await store.put_attestation(record("a", kid="old"))
        assert await store.key_uses(now=T0) == [
            KeyUse("new", blocks=2, blocked_until=T0 + HOUR),
            KeyUse("old", attestations=1, blocks=3, blocked_until=T0 + 2 * HOUR),
        ]
        # Blocks that ended need no key.
        assert await store.key_uses(now=T0 + HOUR) == [
            KeyUse("old", attestations=1, blocks=1, blocked_until=T0 + 2 * HOUR)
        ]

    async def test_an_extended_block_takes_the_new_kids(self, store: Store) -> None:
        await store.block_identifiers([h("e")], until=T0 + HOUR, kids=["old"])
        await store.block_identifiers([h("e")], until=T0 + 2 * HOUR, kids=["new"])
        await store.block_identifiers([h("e")], until=T0 + HOUR, kids=["other"])  # not extended
        assert await store.key_uses(now=T0) == [KeyUse("new", blocks=1, blocked_until=T0 + 2 * HOUR)]

    async def test_the_first_keys_registered_adopt_blocks_written_before(self, store: Store) -> None:
        await store.block_identifiers([h("legacy")], until=T0 + HOUR)  # no kids: written before
        assert await store.key_uses(now=T0) == []
        await store.register_keys({"k1": b"c1", "k2": b"c2"})
        adopted = [KeyUse(kid, blocks=1, blocked_until=T0 + HOUR) for kid in ("k1", "k2")]
        assert await store.key_uses(now=T0) == adopted
        await store.register_keys({"k3": b"c3"})  # later keys adopt nothing
        assert await store.key_uses(now=T0) == adopted

    async def test_key_checks_outlive_the_connection(self, store: Store) -> None:
        if not self.persistent:
            pytest.skip("this store keeps nothing once closed")
        await store.register_keys({"k1": b"check-1"})
        await store.block_identifiers([h("e")], until=T0 + HOUR, kids=["k1"])
        again = await self.reopen(store)
        try:
            assert await again.key_checks() == {"k1": b"check-1"}
            assert await again.key_uses(now=T0) == [KeyUse("k1", blocks=1, blocked_until=T0 + HOUR)]
        finally:
            await again.close()

    # -- purge job journal -------------------------------------------------------------------

    async def test_create_and_get_job(self, store: Store) -> None:
        new = job("s1")
        stored, created = await store.create_job(new)
        assert created is True
        assert stored == new
        assert await store.get_job(new.job_id) == new
        assert await store.get_job("no-such-job") is None

    async def test_one_job_per_subject_hash(self, store: Store) -> None:
        first, created = await store.create_job(job("s1", job_id="job-1"))
        assert created
        existing, created_again = await store.create_job(job("s1", job_id="job-2", created_at=T0 + HOUR))
        assert created_again is False
        assert existing == first
        assert await store.get_job("job-2") is None
        _, other = await store.create_job(job("s2", job_id="job-3"))
        assert other is True

    async def test_a_job_id_in_use_is_refused(self, store: Store) -> None:
        first, _ = await store.create_job(job("alice", job_id="job-1"))
        with pytest.raises(StoreError):
            await store.create_job(job("bob", job_id="job-1"))
        assert await store.get_job("job-1") == first

    async def test_concurrent_creates_make_one_job(self, store: Store) -> None:
        results = await asyncio.gather(*(store.create_job(job("s1", job_id=f"job-{i}")) for i in range(8)))
        assert sum(created for _, created in results) == 1
        winner = next(j for j, created in results if created)
        assert all(j == winner for j, _ in results)
        assert len(await store.list_jobs()) == 1

    async def test_find_job_by_any_hash(self, store: Store) -> None:
        stored, _ = await store.create_job(job("s1"))
        assert await store.find_job([h("zz"), h("s1")]) == stored
        assert await store.find_job([h("zz")]) is None
        assert await store.find_job([]) is None

    async def test_list_jobs_oldest_first(self, store: Store) -> None:
        late, _ = await store.create_job(job("late", job_id="job-a", created_at=T0 + 2 * HOUR))
        early, _ = await store.create_job(job("early", job_id="job-b", created_at=T0))
        middle, _ = await store.create_job(job("middle", job_id="job-c", created_at=T0 + HOUR))
        assert [j.job_id for j in await store.list_jobs()] == ["job-b", "job-c", "job-a"]
        assert await store.list_jobs() == [early, middle, late]

    async def test_list_unfinished_jobs(self, store: Store) -> None:
        ids = {}
        for i, outcome in enumerate(("done", "dry_run", "failed", "running")):
            stored, _ = await store.create_job(job(outcome, created_at=T0 + i * HOUR))
            ids[outcome] = stored.job_id
            assert await store.claim_job(stored.job_id, owner="w", until=T0 + 9 * HOUR, now=T0)
            if outcome != "running":
                assert await store.finish_job(stored.job_id, owner="w", state=outcome, now=T0)  # type: ignore[arg-type]
        assert [j.job_id for j in await store.list_jobs(unfinished_only=True)] == [
            ids["failed"],
            ids["running"],
        ]
        assert len(await store.list_jobs()) == 4

    async def test_claim_a_free_job(self, store: Store) -> None:
        stored, _ = await store.create_job(job("s"))
        assert await store.claim_job(stored.job_id, owner="w1", until=T0 + HOUR, now=T0)
        got = await store.get_job(stored.job_id)
        assert got is not None
        assert (got.lease_owner, got.lease_until, got.state) == ("w1", T0 + HOUR, "running")

    async def test_claim_is_refused_while_another_holds_the_lease(self, store: Store) -> None:
        stored, _ = await store.create_job(job("s"))
        assert await store.claim_job(stored.job_id, owner="w1", until=T0 + HOUR, now=T0)
        assert not await store.claim_job(stored.job_id, owner="w2", until=T0 + 2 * HOUR, now=T0)
        assert not await store.claim_job(
            stored.job_id, owner="w2", until=T0 + 2 * HOUR, now=T0 + HOUR - timedelta(microseconds=1)
        )
        got = await store.get_job(stored.job_id)
        assert got is not None and (got.lease_owner, got.lease_until) == ("w1", T0 + HOUR)

    async def test_claim_by_the_same_owner_renews(self, store: Store) -> None:
        stored, _ = await store.create_job(job("s"))
        assert await store.claim_job(stored.job_id, owner="w1", until=T0 + HOUR, now=T0)
        assert await store.claim_job(stored.job_id, owner="w1", until=T0 + 3 * HOUR, now=T0 + HOUR / 2)
        got = await store.get_job(stored.job_id)
        assert got is not None and (got.lease_owner, got.lease_until) == ("w1", T0 + 3 * HOUR)

    async def test_claim_an_expired_lease(self, store: Store) -> None:
        stored, _ = await store.create_job(job("s"))
        assert await store.claim_job(stored.job_id, owner="w1", until=T0 + HOUR, now=T0)
        assert await store.claim_job(stored.job_id, owner="w2", until=T0 + 3 * HOUR, now=T0 + HOUR)
        got = await store.get_job(stored.job_id)
        assert got is not None and (got.lease_owner, got.lease_until) == ("w2", T0 + 3 * HOUR)
        # The old holder has lost it: its steps and its finish are refused.
        assert not await store.record_step(stored.job_id, owner="w1", step="orders", count=1, now=T0)
        assert not await store.finish_job(stored.job_id, owner="w1", state="done", now=T0)

    async def test_takeover_of_a_dead_holder(self, store: Store) -> None:
        stored, _ = await store.create_job(job("s"))
        assert await store.claim_job(stored.job_id, owner="dead", until=T0 + HOUR, now=T0)
        assert not await store.claim_job(stored.job_id, owner="w2", until=T0 + HOUR, now=T0, takeover="other")
        assert await store.claim_job(stored.job_id, owner="w2", until=T0 + HOUR, now=T0, takeover="dead")
        got = await store.get_job(stored.job_id)
        assert got is not None and got.lease_owner == "w2"

    async def test_concurrent_claims_have_one_winner(self, store: Store) -> None:
        stored, _ = await store.create_job(job("s"))
        won = await asyncio.gather(
            *(store.claim_job(stored.job_id, owner=f"w{i}", until=T0 + HOUR, now=T0) for i in range(8))
        )
        assert sum(won) == 1
        got = await store.get_job(stored.job_id)
        assert got is not None and got.lease_owner == f"w{won.index(True)}"

    async def test_finished_or_unknown_jobs_cannot_be_claimed(self, store: Store) -> None:
        assert not await store.claim_job("no-such-job", owner="w", until=T0 + HOUR, now=T0)
        for state in ("done", "dry_run"):
            stored, _ = await store.create_job(job(state))
            assert await store.claim_job(stored.job_id, owner="w", until=T0 + HOUR, now=T0)
            assert await store.finish_job(stored.job_id, owner="w", state=state, now=T0)  # type: ignore[arg-type]
            assert not await store.claim_job(stored.job_id, owner="w", until=T0 + HOUR, now=T0)

    async def test_claiming_a_failed_job_runs_it_again(self, store: Store) -> None:
        stored, _ = await store.create_job(job("s"))
        assert await store.claim_job(stored.job_id, owner="w1", until=T0 + HOUR, now=T0)
        assert await store.finish_job(stored.job_id, owner="w1", state="failed", now=T0, error="orders: boom")
        failed = await store.get_job(stored.job_id)
        assert failed is not None
        assert (failed.state, failed.error, failed.lease_owner) == ("failed", "orders: boom", None)
        assert await store.claim_job(stored.job_id, owner="w2", until=T0 + 2 * HOUR, now=T0 + HOUR)
        again = await store.get_job(stored.job_id)
        assert again is not None
        assert (again.state, again.error, again.lease_owner) == ("running", None, "w2")
        assert again.updated_at == T0 + HOUR

    async def test_record_step_needs_the_lease(self, store: Store) -> None:
        stored, _ = await store.create_job(job("s"))
        assert not await store.record_step(stored.job_id, owner="w1", step="orders", count=3, now=T0)
        assert await store.claim_job(stored.job_id, owner="w1", until=T0 + HOUR, now=T0)
        assert not await store.record_step(stored.job_id, owner="w2", step="orders", count=3, now=T0)
        assert not await store.record_step("no-such-job", owner="w1", step="orders", count=3, now=T0)
        got = await store.get_job(stored.job_id)
        assert got is not None and got.steps == {}

    async def test_record_step_keeps_the_first_count_and_the_order(self, store: Store) -> None:
        stored, _ = await store.create_job(job("s"))
        assert await store.claim_job(stored.job_id, owner="w", until=T0 + HOUR, now=T0)
        assert await store.record_step(stored.job_id, owner="w", step="profile", count=1, now=T0)
        assert await store.record_step(stored.job_id, owner="w", step="orders", count=3, now=T0 + HOUR / 4)
        assert await store.record_step(stored.job_id, owner="w", step="profile", count=0, now=T0 + HOUR / 2)
        assert await store.record_step(stored.job_id, owner="w", step="_blocks", count=2, now=T0 + HOUR / 2)
        got = await store.get_job(stored.job_id)
        assert got is not None
        assert list(got.steps.items()) == [("profile", 1), ("orders", 3), ("_blocks", 2)]
        assert got.updated_at == T0 + HOUR / 2

    async def test_finish_done_wipes_what_could_identify(self, store: Store) -> None:
        for state in ("done", "dry_run"):
            stored, _ = await store.create_job(job(state))
            assert await store.claim_job(stored.job_id, owner="w", until=T0 + HOUR, now=T0)
            assert await store.record_step(stored.job_id, owner="w", step="orders", count=2, now=T0)
            assert await store.finish_job(stored.job_id, owner="w", state=state, now=T0 + HOUR / 2)  # type: ignore[arg-type]
            got = await store.get_job(stored.job_id)
            assert got is not None
            assert got.state == state
            assert got.sealed_subject is None and got.identifier_hashes == ()
            assert got.finished_at == T0 + HOUR / 2 and got.updated_at == T0 + HOUR / 2
            assert got.lease_owner is None and got.lease_until is None
            assert got.steps == {"orders": 2}
            assert (got.ticket, got.operator) == (stored.ticket, stored.operator)
            assert got.handlers == stored.handlers
            assert got.subject_hash == stored.subject_hash

    async def test_finish_failed_keeps_what_resuming_needs(self, store: Store) -> None:
        stored, _ = await store.create_job(job("s"))
        assert await store.claim_job(stored.job_id, owner="w", until=T0 + HOUR, now=T0)
        assert await store.finish_job(
            stored.job_id, owner="w", state="failed", now=T0, error="profile: timeout"
        )
        got = await store.get_job(stored.job_id)
        assert got is not None
        assert got.state == "failed" and got.error == "profile: timeout" and got.finished_at is None
        assert got.sealed_subject == stored.sealed_subject
        assert got.identifier_hashes == stored.identifier_hashes
        assert got.lease_owner is None and got.lease_until is None

    async def test_finish_needs_the_lease(self, store: Store) -> None:
        stored, _ = await store.create_job(job("s"))
        assert not await store.finish_job(stored.job_id, owner="w", state="done", now=T0)
        assert await store.claim_job(stored.job_id, owner="w", until=T0 + HOUR, now=T0)
        assert not await store.finish_job(stored.job_id, owner="x", state="done", now=T0)
        assert not await store.finish_job("no-such-job", owner="w", state="done", now=T0)
        got = await store.get_job(stored.job_id)
        assert got is not None and got.state == "running" and got.sealed_subject == stored.sealed_subject

    async def test_reopen_only_a_done_job_keeping_its_steps(self, store: Store) -> None:
        stored, _ = await store.create_job(job("s"))
        reopen = {"handlers": ("orders", "profile", "chat"), "sealed_subject": b"sealed:s2", "now": T0 + HOUR}
        assert not await store.reopen_job(stored.job_id, **reopen)  # still running
        assert await store.claim_job(stored.job_id, owner="w", until=T0 + HOUR, now=T0)
        assert await store.record_step(stored.job_id, owner="w", step="orders", count=3, now=T0)
        assert await store.finish_job(stored.job_id, owner="w", state="done", now=T0)
        assert not await store.reopen_job("no-such-job", **reopen)
        assert await store.reopen_job(stored.job_id, identifier_hashes=(h("e"),), **reopen)
        got = await store.get_job(stored.job_id)
        assert got is not None
        assert (got.state, got.handlers, got.steps) == (
            "running",
            ("orders", "profile", "chat"),
            {"orders": 3},
        )
        assert got.sealed_subject == b"sealed:s2" and got.identifier_hashes == (h("e"),)
        assert got.finished_at is None and got.lease_owner is None
        assert not await store.reopen_job(stored.job_id, **reopen)  # running again: not done
        assert await store.claim_job(stored.job_id, owner="v", until=T0 + HOUR, now=T0 + HOUR)

    async def test_delete_job(self, store: Store) -> None:
        stored, _ = await store.create_job(job("s"))
        assert await store.claim_job(stored.job_id, owner="w", until=T0 + HOUR, now=T0)
        assert await store.record_step(stored.job_id, owner="w", step="orders", count=1, now=T0)
        assert await store.delete_job(stored.job_id) is True
        assert await store.delete_job(stored.job_id) is False
        assert await store.get_job(stored.job_id) is None
        assert await store.find_job([h("s")]) is None
        # The subject can be journalled afresh, with no steps left over from the deleted job.
        again, created = await store.create_job(job("s", job_id=stored.job_id))
        assert created and again.steps == {}

    async def test_returned_jobs_are_copies(self, store: Store) -> None:
        stored, _ = await store.create_job(job("s"))
        stored.steps["orders"] = 99
        stored.state = "done"
        fetched = await store.get_job(stored.job_id)
        assert fetched is not None and fetched.steps == {} and fetched.state == "running"
        assert dataclasses.replace(fetched, state="done") != await store.get_job(stored.job_id)

    # -- reports from parents ----------------------------------------------------------------

    async def test_create_get_and_list_reports(self, store: Store) -> None:
        assert await store.get_report("R-1") is None and await store.list_reports() == []
        later, first = report("R-2", at=T0 + HOUR), report("R-1")
        await store.create_report(later)
        await store.create_report(first)
        assert await store.get_report("R-1") == first
        assert await store.list_reports() == [first, later]  # oldest first
        with pytest.raises(StoreError):
            await store.create_report(report("R-1", at=T0 + 2 * HOUR))
        assert await store.get_report("R-1") == first

    async def test_update_report_is_a_compare_and_set_on_its_state(self, store: Store) -> None:
        await store.create_report(report("R-1"))
        closed = dataclasses.replace(
            report("R-1"), state="closed", outcome="purged", job_id="job-1", closed_at=T0 + HOUR,
            updated_at=T0 + HOUR, attempts=1, error="the on_closed callback failed with OSError",
        )  # fmt: skip
        assert await store.update_report(closed, expected="purging") is False
        assert await store.get_report("R-1") == report("R-1")
        assert await store.update_report(closed, expected="open") is True
        assert await store.get_report("R-1") == closed
        delivered = dataclasses.replace(
            closed, state="delivered", sealed=None, delivered_at=T0 + 2 * HOUR, attempts=2, error=None
        )
        # The received time and the deadline are never rewritten.
        moved = dataclasses.replace(delivered, received_at=T0 + HOUR, due_at=T0)
        assert await store.update_report(moved, expected="closed") is True
        assert await store.get_report("R-1") == delivered
        assert await store.update_report(delivered, expected="closed") is False
        assert not await store.update_report(report("R-9"), expected="open")  # no such report

    async def test_reports_outlive_the_connection(self, store: Store) -> None:
        if not self.persistent:
            pytest.skip("this store keeps nothing beyond its process")
        await store.create_report(report("R-1"))
        again = await self.reopen(store)
        try:
            assert await again.list_reports() == [report("R-1")]
        finally:
            await again.close()
