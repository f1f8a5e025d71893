"""The ticker: claim every live timer's fires of the coming minute; each fire goes out as a delayed message.

Claims are rows of `attune.timer_fire`, unique per (timer, due time), inserted
with ON CONFLICT DO NOTHING: a duplicate or overlapping tick claims nothing
twice and so sends nothing twice. Each tick looks `HORIZON_S` ahead although
ticks come every 60 s, so a tick up to half a minute late loses no fire.

Every fire gets one delayed SQS message carrying its exact due time, sent
`LEAD_S` before it is due: SQS delays are whole seconds and a long poll may
notice a message up to a second after it becomes visible, so the fire handler
gets it early and sleeps the exact rest. A timer keeps one message in flight:
the tick sends each timer's first pending fire, and each delivered fire sends
the next one. (Sending a minute of a 1 s timer's fires at once would put
thousands of delayed messages on the queue; moto re-scans its whole queue for
every message added, which stalled a 20-timer run for most of a minute.)

Nothing claimed is lost: a fire that turned overdue while still claimed lost
its message (a failed send, an emulator restart), and the next tick re-sends
it. Of several overdue fires of one timer only the latest is re-sent and the
rest are marked `missed`, so a timer that was down fires once on recovery,
not in a burst; its delivery restarts the chain.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.aws import queues
from chalicelib.core.errors import AttuneError, ServiceUnavailable
from chalicelib.core.fire_times import due_times
from chalicelib.db import timers as db
from chalicelib.db.pool import system_tx
from chalicelib.timers.messages import FireMessage

log = logging.getLogger(__name__)

QUEUE = "timer-fires"
LEAD_S = 1.25
HORIZON_S = 90.0
OVERDUE_S = 10.0
GIVE_UP_S = 600.0
KEEP_SETTLED = timedelta(days=1)
MAX_DELAY_S = 900  # SQS's limit


@dataclass(frozen=True)
class TickReport:
    """What one tick did (returned by the Lambda, logged, asserted by tests)."""

    timers: int
    claimed: int
    sent: int
    resent: int
    missed: int
    pruned: int


def utcnow() -> datetime:
    """The ticker's clock."""
    return datetime.now(UTC)


def delay_for(due: datetime, now: datetime) -> int:
    """Whole seconds to delay a message so it arrives `LEAD_S` or a little more before `due`."""
    return max(0, min(MAX_DELAY_S, math.floor((due - now).total_seconds() - LEAD_S)))


def send(fires: list[dict[str, Any]]) -> int:
    """Send fires already marked sent (rows with id, tenant_id, trigger_id, due_at), soonest first."""
    if not fires:
        return 0
    now = utcnow()
    by_delay: dict[int, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for row in sorted(fires, key=lambda r: r["due_at"]):
        body = FireMessage(
            tenant_id=row["tenant_id"], trigger_id=row["trigger_id"], fire_id=row["id"], due_at=row["due_at"]
        ).model_dump(mode="json")
        by_delay[delay_for(row["due_at"], now)].append((str(row["id"]), body))
    sent = 0
    try:
        for delay in sorted(by_delay):
            sent += len(queues.send_batch(QUEUE, by_delay[delay], delay_seconds=delay))
    except ServiceUnavailable as exc:
        log.warning(
            "sending fires stopped at %d of %d (%s); the ticker re-sends them when overdue", sent, len(fires), exc
        )
    return sent


def send_heads(trigger_id: int | None = None) -> int:
    """Send the first pending fire of every timer (or of one) that has no message in flight."""
    with system_tx() as cur:
        heads = db.mark_heads(cur, trigger_id)
    return send(heads)


def send_successor(msg: FireMessage) -> int:
    """Send the timer's fire after `msg`'s: called when `msg` is delivered, it keeps the chain going."""
    with system_tx() as cur:
        nxt = db.mark_successor(cur, msg.trigger_id, msg.due_at)
    return send(nxt)


def claim(now: datetime, trigger_id: int | None = None) -> tuple[int, int]:
    """Claim the live timers' fires in [now, now + HORIZON_S): (timers seen, fires newly claimed)."""
    end = now + timedelta(seconds=HORIZON_S)
    with system_tx() as cur:
        timers = db.live_timers(cur, trigger_id)
        wanted: list[tuple[int, int, datetime]] = []
        for timer in timers:
            try:
                dues = due_times(timer["type"], timer["parameters"], anchor=timer["created"], start=now, end=end)
            except (KeyError, TypeError, ValueError) as exc:
                log.error("timer %s has unusable parameters %r: %s", timer["id"], timer["parameters"], exc)
                continue
            wanted += [(int(timer["tenant_id"]), int(timer["id"]), due) for due in dues]
        claimed = db.claim(cur, wanted)
    return len(timers), len(claimed)


def tick(now: datetime | None = None) -> TickReport:
    """One run of the ticker: recover stranded fires, prune old ones, claim the coming ones, send heads."""
    now = now or utcnow()
    with system_tx() as cur:
        missed, stranded = db.stranded(
            cur,
            overdue_before=now - timedelta(seconds=OVERDUE_S),
            give_up_before=now - timedelta(seconds=GIVE_UP_S),
        )
        pruned = db.prune(cur, now - KEEP_SETTLED)
    resent = send(stranded)
    count, claimed = claim(now)
    report = TickReport(timers=count, claimed=claimed, sent=send_heads(), resent=resent, missed=missed, pruned=pruned)
    log.info("timers tick: %s", asdict(report))
    return report


def schedule_now(trigger_id: int) -> None:
    """Claim a timer's coming fires and send its first at once (it was created or enabled).

    Called after the enabling transaction commits (for any trigger: one that is
    not a live timer simply has nothing to claim). A failure only costs the
    wait for the next tick, so it is logged, not raised into the API call.
    """
    try:
        claim(utcnow(), trigger_id)
        send_heads(trigger_id)
    except AttuneError as exc:
        log.warning("scheduling timer %s now failed (%s); the next tick will", trigger_id, exc)
