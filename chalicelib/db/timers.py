"""SQL of the timers: which timers are live, claiming fires, and firing them (compare-and-set)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from chalicelib.db.pool import Cursor

# A timer is live while it is enabled, not a completed date, and used by an enabled rule.
LIVE_TIMERS = """
SELECT t.id, t.tenant_id, t.type, t.parameters, t.state, t.created
FROM attune.trigger t
WHERE t.type IN ('interval', 'date', 'cron') AND t.enabled
  AND NOT coalesce((t.state ->> 'completed')::boolean, false)
  AND (%(trigger_id)s::bigint IS NULL OR t.id = %(trigger_id)s::bigint)
  AND EXISTS (SELECT 1 FROM attune.rule r WHERE r.trigger_id = t.id AND r.enabled)
ORDER BY t.id
"""
# New fires are returned. A fire skipped (its rule was off) or missed earlier may be claimed again:
# only a date timer's window reaches back to it, and a date that never fired is still due.
CLAIM_FIRES = """
INSERT INTO attune.timer_fire (tenant_id, trigger_id, due_at)
SELECT * FROM unnest(%(tenant_ids)s::bigint[], %(trigger_ids)s::bigint[], %(due)s::timestamptz[])
ON CONFLICT (trigger_id, due_at) DO UPDATE
    SET status = 'claimed', claimed_at = clock_timestamp(), sent_at = NULL
    WHERE attune.timer_fire.status IN ('skipped', 'missed')
RETURNING id, tenant_id, trigger_id, due_at
"""
# A timer has at most one fire's message on the queue: the ticker sends the head of each timer
# with none in flight, and each delivered fire sends its successor. Marked before sending: a
# send that fails leaves a fire that turns overdue, and the ticker re-sends overdue fires.
MARK_HEADS = """
UPDATE attune.timer_fire f SET sent_at = clock_timestamp()
FROM (
    SELECT DISTINCT ON (c.trigger_id) c.id
    FROM attune.timer_fire c
    WHERE c.status = 'claimed' AND c.sent_at IS NULL
      AND (%(trigger_id)s::bigint IS NULL OR c.trigger_id = %(trigger_id)s::bigint)
      AND NOT EXISTS (
          SELECT 1 FROM attune.timer_fire s
          WHERE s.trigger_id = c.trigger_id AND s.status = 'claimed' AND s.sent_at IS NOT NULL)
    ORDER BY c.trigger_id, c.due_at
) head
WHERE f.id = head.id AND f.sent_at IS NULL
RETURNING f.id, f.tenant_id, f.trigger_id, f.due_at
"""
MARK_SUCCESSOR = """
UPDATE attune.timer_fire f SET sent_at = clock_timestamp()
WHERE f.id = (
    SELECT n.id FROM attune.timer_fire n
    WHERE n.trigger_id = %(trigger_id)s AND n.status = 'claimed' AND n.due_at > %(due_at)s
    ORDER BY n.due_at LIMIT 1)
  AND f.sent_at IS NULL
RETURNING f.id, f.tenant_id, f.trigger_id, f.due_at
"""
MARK_RESENT = "UPDATE attune.timer_fire SET sent_at = clock_timestamp() WHERE id = ANY(%(ids)s)"
# Overdue fires whose message was lost (a crash, an emulator restart): all but each timer's
# latest become `missed`, so a timer that was down for a while fires once, not in a burst.
MARK_MISSED = """
UPDATE attune.timer_fire f SET status = 'missed'
WHERE f.status = 'claimed' AND (f.due_at < %(give_up_before)s OR (f.due_at < %(overdue_before)s AND EXISTS (
    SELECT 1 FROM attune.timer_fire g
    WHERE g.trigger_id = f.trigger_id AND g.status = 'claimed' AND g.due_at > f.due_at
      AND g.due_at < %(overdue_before)s)))
RETURNING id
"""
STRANDED_FIRES = """
SELECT id, tenant_id, trigger_id, due_at FROM attune.timer_fire
WHERE status = 'claimed'
  AND due_at < %(overdue_before)s
ORDER BY due_at
LIMIT %(limit)s
"""
PRUNE_FIRES = """
DELETE FROM attune.timer_fire WHERE id IN (
    SELECT id FROM attune.timer_fire WHERE status <> 'claimed' AND due_at < %(before)s LIMIT %(limit)s)
"""
LOAD_FIRE = """
SELECT f.id, f.status, f.due_at, t.id AS trigger_id, t.tenant_id, t.type, t.enabled,
       EXISTS (SELECT 1 FROM attune.rule r WHERE r.trigger_id = t.id AND r.enabled) AS has_rule
FROM attune.timer_fire f JOIN attune.trigger t ON t.id = f.trigger_id
WHERE f.id = %(id)s AND f.tenant_id = %(tenant_id)s
"""
# Compare-and-set: only a claimed fire moves, so a redelivered message finds nothing to do.
SETTLE_FIRE = """
UPDATE attune.timer_fire SET status = %(status)s, fired_at = %(fired_at)s
WHERE id = %(id)s AND tenant_id = %(tenant_id)s AND status = 'claimed'
RETURNING id
"""
LINK_EVENT = "UPDATE attune.timer_fire SET event_id = %(event_id)s WHERE id = %(id)s"
COMPLETE_DATE = """
UPDATE attune.trigger SET state = state || %(state)s
WHERE id = %(id)s AND tenant_id = %(tenant_id)s
"""
# A timer whose parameters changed forgets its pending fires (their messages then find no row)
# and, for a date, that it completed: it is a new schedule.
RESET_TIMER = """
WITH gone AS (DELETE FROM attune.timer_fire WHERE trigger_id = %(id)s AND status = 'claimed')
UPDATE attune.trigger SET state = state - 'completed' - 'completed_at'
WHERE id = %(id)s AND tenant_id = %(tenant_id)s
"""


def live_timers(cur: Cursor, trigger_id: int | None = None) -> list[dict[str, Any]]:
    """Timers that should fire now (one, or every tenant's)."""
    cur.execute(LIVE_TIMERS, {"trigger_id": trigger_id})
    return cur.fetchall()


def claim(cur: Cursor, fires: list[tuple[int, int, datetime]]) -> list[dict[str, Any]]:
    """Insert (tenant, trigger, due) claims; only the ones not claimed before come back."""
    if not fires:
        return []
    cur.execute(
        CLAIM_FIRES,
        {
            "tenant_ids": [f[0] for f in fires],
            "trigger_ids": [f[1] for f in fires],
            "due": [f[2] for f in fires],
        },
    )
    return cur.fetchall()


def mark_heads(cur: Cursor, trigger_id: int | None = None) -> list[dict[str, Any]]:
    """The first pending fire of each timer that has no message in flight, marked as sent."""
    cur.execute(MARK_HEADS, {"trigger_id": trigger_id})
    return cur.fetchall()


def mark_successor(cur: Cursor, trigger_id: int, due_at: datetime) -> list[dict[str, Any]]:
    """The timer's next pending fire after `due_at`, marked as sent (none if it already was)."""
    cur.execute(MARK_SUCCESSOR, {"trigger_id": trigger_id, "due_at": due_at})
    return cur.fetchall()


def stranded(
    cur: Cursor, *, overdue_before: datetime, give_up_before: datetime, limit: int = 500
) -> tuple[int, list[dict[str, Any]]]:
    """Claimed fires whose message never arrived: (how many were given up, what to re-send, marked sent)."""
    cur.execute(MARK_MISSED, {"overdue_before": overdue_before, "give_up_before": give_up_before})
    missed = len(cur.fetchall())
    cur.execute(STRANDED_FIRES, {"overdue_before": overdue_before, "limit": limit})
    rows = cur.fetchall()
    if rows:
        cur.execute(MARK_RESENT, {"ids": [r["id"] for r in rows]})
    return missed, rows


def prune(cur: Cursor, before: datetime, limit: int = 5000) -> int:
    """Forget settled fires older than `before`; pending ones are never pruned."""
    cur.execute(PRUNE_FIRES, {"before": before, "limit": limit})
    return cur.rowcount


def load_fire(cur: Cursor, tenant_id: int, fire_id: int) -> dict[str, Any] | None:
    """A fire with its trigger's current state (None once the trigger was deleted)."""
    cur.execute(LOAD_FIRE, {"id": fire_id, "tenant_id": tenant_id})
    return cur.fetchone()


def settle(cur: Cursor, tenant_id: int, fire_id: int, status: str, fired_at: datetime | None) -> bool:
    """Move a claimed fire to `fired` or `skipped`; False when another delivery already did."""
    cur.execute(SETTLE_FIRE, {"id": fire_id, "tenant_id": tenant_id, "status": status, "fired_at": fired_at})
    return cur.fetchone() is not None


def link_event(cur: Cursor, fire_id: int, event_id: int) -> None:
    """Remember which event a fire emitted."""
    cur.execute(LINK_EVENT, {"id": fire_id, "event_id": event_id})


def complete_date(cur: Cursor, tenant_id: int, trigger_id: int, fired_at: str) -> None:
    """Mark a date timer done, so no tick, restart or re-enable fires it again."""
    cur.execute(
        COMPLETE_DATE,
        {"id": trigger_id, "tenant_id": tenant_id, "state": Jsonb({"completed": True, "completed_at": fired_at})},
    )


def reset_timer(cur: Cursor, tenant_id: int, trigger_id: int) -> None:
    """Drop a timer's pending fires and its completion (its parameters changed)."""
    cur.execute(RESET_TIMER, {"id": trigger_id, "tenant_id": tenant_id})
