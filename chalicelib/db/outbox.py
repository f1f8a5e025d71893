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
# SQS delays a message by at most 15 minutes: rows due later wait here until they are that close.
MAX_SQS_DELAY_S = 900
ACK = "DELETE FROM attune.outbox WHERE id = %(id)s"
MARK_SENT = """
UPDATE attune.outbox SET sent_at = clock_timestamp(), attempts = attempts + 1
WHERE id = ANY(%(ids)s)
"""
# Claim by stamping sent_at and committing before the send: no row lock is held while SQS is
# slow, so a consumer's acknowledgement (a DELETE of the row) never waits behind the relay.
CLAIM_UNSENT = """
UPDATE attune.outbox SET sent_at = clock_timestamp(), attempts = attempts + 1
WHERE id IN (
    SELECT id FROM attune.outbox
    WHERE queue = %(queue)s AND sent_at IS NULL
      AND created < clock_timestamp() - make_interval(secs => %(unsent_after)s)
      AND available_at <= clock_timestamp() + make_interval(secs => 900)
    ORDER BY id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING id, queue, body,
          greatest(0, ceil(extract(epoch FROM available_at - clock_timestamp())))::int AS delay_s
"""
CLAIM_UNACKED = """
UPDATE attune.outbox SET sent_at = clock_timestamp(), attempts = attempts + 1
WHERE id IN (
    SELECT id FROM attune.outbox
    WHERE sent_at < clock_timestamp() - make_interval(secs => %(unacked_after)s)
      AND available_at < clock_timestamp() - make_interval(secs => %(unacked_after)s)
    ORDER BY id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING id, queue, body, 0 AS delay_s
"""
# Sent and not yet acknowledged, per queue: what is on (or in) the queue now.
IN_FLIGHT = """
SELECT q.queue, count(o.id) FILTER (WHERE o.sent_at IS NOT NULL) AS in_flight,
       count(o.id) FILTER (WHERE o.sent_at IS NULL) AS waiting
FROM (SELECT DISTINCT queue FROM attune.outbox) q JOIN attune.outbox o ON o.queue = q.queue
GROUP BY q.queue
"""
UNMARK_SENT = "UPDATE attune.outbox SET sent_at = NULL WHERE id = ANY(%(ids)s)"


def enqueue(cur: Cursor, queue: str, body: dict[str, Any], delay_s: float = 0) -> int:
    """Write a message to send after this transaction commits (or `delay_s` later); its outbox id."""
    cur.execute(INSERT, {"queue": queue, "body": Jsonb(body), "delay": delay_s})
    row = cur.fetchone()
    assert row is not None
    return int(row["id"])


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
    SQS's does not, but a shallow queue also keeps redelivery cheap).
    """
    claimed: list[dict[str, Any]] = []
    cur.execute(IN_FLIGHT)
    for row in cur.fetchall():
        room = min(limit - len(claimed), max_in_flight - int(row["in_flight"]))
        if room > 0 and row["waiting"]:
            cur.execute(CLAIM_UNSENT, {"queue": row["queue"], "unsent_after": unsent_after, "limit": room})
            claimed += cur.fetchall()
    if len(claimed) < limit:
        cur.execute(CLAIM_UNACKED, {"unacked_after": unacked_after, "limit": limit - len(claimed)})
        claimed += cur.fetchall()
    return claimed


def unmark_sent(cur: Cursor, ids: list[int]) -> None:
    """A claimed send failed: make the rows due again at once."""
    cur.execute(UNMARK_SENT, {"ids": ids})
