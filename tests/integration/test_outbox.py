"""The outbox's claim rules: unsent rows go out only while their queue has room; lost ones come back."""

from __future__ import annotations

from chalicelib.db import outbox
from chalicelib.db.pool import system_tx


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
