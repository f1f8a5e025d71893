"""The transactional outbox's SQL: enqueue in the writer's transaction, ack in the consumer's."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from chalicelib.db.pool import Cursor

INSERT = """
INSERT INTO attune.outbox (queue, body, available_at)
VALUES (%(queue)s, %(body)s, clock_timestamp() + make_interval(secs => %(delay)s))
RETURNING id
"""
# The same row, claimed by its writer at birth (sent_at stamped, so neither the relay's wake-up nor
# its sweep takes it) when its queue holds fewer than %(below)s rows: the writer sends it itself
# right after commit. `owned` says which it was; the LIMIT keeps the count cheap under a burst.
INSERT_OWNED = """
INSERT INTO attune.outbox (queue, body, available_at, sent_at, attempts)
SELECT %(queue)s, %(body)s, clock_timestamp(), owner.at, CASE WHEN owner.at IS NULL THEN 0 ELSE 1 END
FROM (SELECT CASE WHEN count(*) < %(below)s THEN clock_timestamp() END AS at
      FROM (SELECT 1 FROM attune.outbox WHERE queue = %(queue)s LIMIT %(below)s) queued) owner
RETURNING id, sent_at IS NOT NULL AS owned
"""
# SQS delays a message by at most 15 minutes: rows due later wait here until they are that close.
MAX_SQS_DELAY_S = 900
ACK = "DELETE FROM attune.outbox WHERE id = %(id)s"
MARK_SENT = """
UPDATE attune.outbox SET sent_at = clock_timestamp(), attempts = attempts + 1
WHERE id = ANY(%(ids)s)
"""
# Claim by stamping sent_at and committing before the send: no row lock is held while SQS is
# slow, so a consumer's acknowledgement (a DELETE of the row) never waits behind the relay.
# One statement (one round trip, so it can run on its own, in autocommit): per queue, the oldest
# unsent rows that are due and fit under the queue's in-flight cap (sent, unacknowledged rows),
# then rows sent but not acknowledged in time; unsent first, at most `limit` in all. Every part
# reads the snapshot from before the update, so a row stamped here is never also taken as unacked.
CLAIM = """
WITH flight AS (
    SELECT queue, count(*) FILTER (WHERE sent_at IS NOT NULL) AS in_flight,
           bool_or(sent_at IS NULL) AS waiting
    FROM attune.outbox
    GROUP BY queue
), unsent AS (
    SELECT c.id, 0 AS rank
    FROM flight f CROSS JOIN LATERAL (
        SELECT o.id FROM attune.outbox o
        WHERE o.queue = f.queue AND o.sent_at IS NULL
          AND o.created < clock_timestamp() - make_interval(secs => %(unsent_after)s)
          AND o.available_at <= clock_timestamp() + make_interval(secs => 900)
        ORDER BY o.id
        LIMIT greatest(0, least(%(limit)s, %(max_in_flight)s - f.in_flight))
        FOR UPDATE SKIP LOCKED
    ) c
    WHERE f.waiting
), unacked AS (
    SELECT id, 1 AS rank FROM attune.outbox
    WHERE sent_at < clock_timestamp() - make_interval(secs => %(unacked_after)s)
      AND available_at < clock_timestamp() - make_interval(secs => %(unacked_after)s)
    ORDER BY id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT id FROM (SELECT * FROM unsent UNION ALL SELECT * FROM unacked) due
    ORDER BY rank, id
    LIMIT %(limit)s
)
UPDATE attune.outbox o SET sent_at = clock_timestamp(), attempts = o.attempts + 1
FROM picked WHERE o.id = picked.id
RETURNING o.id, o.queue, o.body,
          greatest(0, ceil(extract(epoch FROM o.available_at - clock_timestamp())))::int AS delay_s
"""
UNMARK_SENT = "UPDATE attune.outbox SET sent_at = NULL WHERE id = ANY(%(ids)s)"


def enqueue(cur: Cursor, queue: str, body: dict[str, Any], delay_s: float = 0) -> int:
    """Write a message to send after this transaction commits (or `delay_s` later); its outbox id."""
    cur.execute(INSERT, {"queue": queue, "body": Jsonb(body), "delay": delay_s})
    row = cur.fetchone()
    assert row is not None
    return int(row["id"])


def enqueue_owned(cur: Cursor, queue: str, body: dict[str, Any], below: int) -> tuple[int, bool]:
    """Write a message due now; (its outbox id, whether the writer sends it itself: its queue was that quiet)."""
    cur.execute(INSERT_OWNED, {"queue": queue, "body": Jsonb(body), "below": below})
    row = cur.fetchone()
    assert row is not None
    return int(row["id"]), bool(row["owned"])


def ack(cur: Cursor, outbox_id: int | None) -> None:
    """The consumer has acted on the message: it must never be re-sent."""
    if outbox_id is not None:
        cur.execute(ACK, {"id": outbox_id})


def mark_sent(cur: Cursor, ids: list[int]) -> None:
    """Record a send; the relay re-sends if no consumer acknowledges in time."""
    cur.execute(MARK_SENT, {"ids": ids})


def claim_due(
    cur: Cursor, *, unsent_after: float, unacked_after: float, limit: int, max_in_flight: int
) -> list[dict[str, Any]]:
    """Claim rows never sent (writer died, or relay-mode sending) and rows sent but never acknowledged.

    Unsent rows are claimed only while their queue holds fewer than `max_in_flight`
    unacknowledged messages: the database, not the queue, is the buffer, so a burst
    never piles thousands of messages onto a queue (moto's receive slows with depth;
    SQS's does not, but a shallow queue also keeps redelivery cheap). `cur` may be
    in a transaction or in autocommit: the claim is one statement either way.
    """
    cur.execute(CLAIM, {"unsent_after": unsent_after, "unacked_after": unacked_after, "limit": limit,
                        "max_in_flight": max_in_flight})
    return sorted(cur.fetchall(), key=lambda row: int(row["id"]))


def unmark_sent(cur: Cursor, ids: list[int]) -> None:
    """A claimed send failed: make the rows due again at once."""
    cur.execute(UNMARK_SENT, {"ids": ids})
