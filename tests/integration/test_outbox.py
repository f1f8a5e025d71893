"""The outbox's claim rules: unsent rows go out only while their queue has room; lost ones come back."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from chalicelib.config import settings
from chalicelib.core.errors import ServiceUnavailable
from chalicelib.db import outbox
from chalicelib.db.pool import system_tx
from chalicelib.pipeline import outbox as pipeline_outbox
from chalicelib.pipeline import relay

# Every other backend LISTENing on the outbox channel (the test's listener): as if its connection broke.
TERMINATE_LISTENERS = """
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE query = 'LISTEN attune_outbox' AND pid <> pg_backend_pid()
"""


def _claim(max_in_flight: int, unacked_after: float = 300.0) -> list[int]:
    with system_tx() as cur:
        rows = outbox.claim_due(
            cur, unsent_after=0.0, unacked_after=unacked_after, limit=100, max_in_flight=max_in_flight
        )
    return sorted(r["id"] for r in rows)


def test_claims_respect_in_flight_limit_per_queue(db: str) -> None:
    # GIVEN five work messages and one events message, none sent
    with system_tx() as cur:
        work = [outbox.enqueue(cur, "work", {"n": i}) for i in range(5)]
        events = outbox.enqueue(cur, "events", {"n": 0})
    # WHEN the relay may keep two in flight per queue THEN it claims the two oldest of each queue
    assert _claim(2) == sorted([work[0], work[1], events])
    # AND nothing more while they are unacknowledged
    assert _claim(2) == []
    # WHEN a consumer acknowledges one THEN exactly one more goes out
    with system_tx() as cur:
        outbox.ack(cur, work[0])
    assert _claim(2) == [work[2]]


def test_unacknowledged_rows_are_claimed_again(db: str) -> None:
    with system_tx() as cur:
        first = outbox.enqueue(cur, "work", {"n": 1})
    assert _claim(10) == [first]
    assert _claim(10) == []
    # A message presumed lost (unacknowledged past the limit) is sent again
    assert _claim(10, unacked_after=0.0) == [first]


def test_one_claim_never_takes_a_row_twice_and_unsent_rows_come_first(db: str) -> None:
    # GIVEN one row sent long ago (never acknowledged) and two never sent
    with system_tx() as cur:
        lost = outbox.enqueue(cur, "work", {"n": 0})
    assert _claim(10) == [lost]
    with system_tx() as cur:
        fresh = [outbox.enqueue(cur, "work", {"n": i}) for i in (1, 2)]
    # WHEN a claim takes everything unsent and everything unacknowledged at once (the relay's start-up re-send)
    with system_tx() as cur:
        rows = outbox.claim_due(cur, unsent_after=0.0, unacked_after=0.0, limit=2, max_in_flight=10)
    # THEN the unsent rows come first within the limit, each once (a row stamped by this claim is not
    # also taken as unacknowledged, which claiming in two statements did)
    assert [r["id"] for r in rows] == fresh
    with system_tx() as cur:
        rows = outbox.claim_due(cur, unsent_after=0.0, unacked_after=0.0, limit=10, max_in_flight=10)
    assert sorted(r["id"] for r in rows) == sorted([lost, *fresh])


def test_a_claim_runs_in_autocommit_on_the_relays_own_connection(db: str) -> None:
    # GIVEN the relay's listener connection (autocommit, the app's role, no pooled transaction)
    listener = relay.Listener()
    try:
        cur = listener.cursor()
        assert cur is not None
        with system_tx() as tx:
            first = outbox.enqueue(tx, "events", {"n": 1})
        # WHEN it claims THEN the row is claimed, and committed at once: a second claim finds nothing
        claimed = outbox.claim_due(cur, unsent_after=0.0, unacked_after=300.0, limit=10, max_in_flight=10)
        assert [r["id"] for r in claimed] == [first] and claimed[0]["delay_s"] == 0
        with system_tx() as tx:
            assert outbox.claim_due(tx, unsent_after=0.0, unacked_after=300.0, limit=10, max_in_flight=10) == []
    finally:
        listener.close()


def test_the_listener_wakes_on_a_new_row_and_survives_losing_its_connection(db: str) -> None:
    stop = threading.Event()
    listener = relay.Listener()
    try:
        assert listener.cursor() is not None  # connected and LISTENing
        assert not listener.wait(stop, 0.05)  # nothing new
        with system_tx() as cur:
            outbox.enqueue(cur, "work", {"n": 1})
        assert listener.wait(stop, 5.0)  # woken by the commit
        # WHEN its connection is killed THEN a wait says "nothing" instead of spinning, and it reconnects
        with psycopg.connect(db, autocommit=True) as admin:
            admin.execute(TERMINATE_LISTENERS)
        deadline = time.monotonic() + 10
        woke = False
        while time.monotonic() < deadline and not woke:
            listener.wait(stop, 0.2)  # the first one notices the loss; later ones reconnect
            with system_tx() as cur:
                outbox.enqueue(cur, "work", {"n": 2})
            woke = listener.wait(stop, 0.5)
        assert woke
    finally:
        listener.close()


def _relay_mode(monkeypatch: pytest.MonkeyPatch, below: str = "2") -> None:
    monkeypatch.setenv("ATTUNE_OUTBOX_PUBLISH", "relay")
    monkeypatch.setenv("ATTUNE_OUTBOX_SEND_BELOW", below)
    settings.cache_clear()


def _sent_at(ids: list[int]) -> dict[int, object]:
    with system_tx() as cur:
        cur.execute("SELECT id, sent_at FROM attune.outbox WHERE id = ANY(%(ids)s)", {"ids": ids})
        return {int(r["id"]): r["sent_at"] for r in cur.fetchall()}


def test_in_relay_mode_a_quiet_hot_queue_s_messages_are_their_writers_to_send(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _relay_mode(monkeypatch)
    # GIVEN an empty work queue WHEN one transaction writes three work messages, a notification and a delayed retry
    with system_tx() as cur:
        work = [pipeline_outbox.enqueue(cur, "work", {"n": i}) for i in range(3)]
        note = pipeline_outbox.enqueue(cur, "notifications", {"n": 0})
        later = pipeline_outbox.enqueue(cur, "work", {"n": 9}, delay_s=5)
    # THEN the writer owns the first two (the queue held 0, then 1 row: fewer than 2), not the third
    assert [p.owned for p in work] == [True, True, False]
    # AND never a notification (not a hot queue) nor a delayed message
    assert not note.owned and not later.owned
    # AND owned rows are born claimed: the relay's claim takes everything but them (the retry with its delay)
    assert all(_sent_at([p.id for p in work[:2]]).values())
    assert _claim(100) == sorted([work[2].id, note.id, later.id])


def test_a_row_its_writer_sends_does_not_wake_the_relay(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _relay_mode(monkeypatch)
    stop = threading.Event()
    listener = relay.Listener()
    try:
        assert listener.cursor() is not None
        # WHEN a transaction writes only a message its writer owns THEN the relay sleeps on
        with system_tx() as cur:
            owned = pipeline_outbox.enqueue(cur, "events", {"n": 1})
        assert owned.owned
        assert not listener.wait(stop, 0.3)
        # AND a message the relay must send wakes it
        with system_tx() as cur:
            pipeline_outbox.enqueue(cur, "notifications", {"n": 1})
        assert listener.wait(stop, 5.0)
    finally:
        listener.close()


def test_publish_sends_only_owned_messages_and_hands_failures_back(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _relay_mode(monkeypatch)
    with system_tx() as cur:
        owned = pipeline_outbox.enqueue(cur, "events", {"n": 1})
        other = pipeline_outbox.enqueue(cur, "notifications", {"n": 1})
    sent: list[list[int]] = []

    def record(msgs: list[pipeline_outbox.Pending]) -> list[int]:
        sent.append([m.id for m in msgs])
        return [m.id for m in msgs]

    monkeypatch.setattr(pipeline_outbox, "_send", record)
    # WHEN the writer publishes both after commit THEN it sends only its own; the relay keeps the other
    pipeline_outbox.publish([owned, other])
    assert sent == [[owned.id]]
    assert _sent_at([owned.id])[owned.id] is not None

    def down(_msgs: object) -> list[int]:
        raise ServiceUnavailable("SQS: could not send (test)")

    # GIVEN SQS down WHEN a writer publishes its own message THEN it is unclaimed again, for the relay's sweep
    with system_tx() as cur:
        outbox.ack(cur, owned.id)
        again = pipeline_outbox.enqueue(cur, "events", {"n": 2})
    assert again.owned
    monkeypatch.setattr(pipeline_outbox, "_send", down)
    pipeline_outbox.publish([again])
    assert _sent_at([again.id]) == {again.id: None}
    assert again.id in _claim(100)
