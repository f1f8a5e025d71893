"""The fire handler: wait until a fire is due, then emit its event exactly once.

A message arrives a second or two early (see `ticker.LEAD_S`); the handler
first sends the timer's next fire (the chain that keeps one message per timer
in flight), then sleeps the rest. Records of one batch wait concurrently (an
async record handler), so one record's wait never delays another. Then, in one system
transaction: the fire is compare-and-set from `claimed` to `fired`, the event
`{"scheduled_at", "fired_at"}` and its outbox message are stored by `emit_event`, as a
webhook's are, and a date timer is marked completed. A redelivered
message, or one whose timer was deleted, disabled or lost its last enabled
rule meanwhile, emits nothing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from chalicelib.db import timers as db
from chalicelib.db.pool import system_tx
from chalicelib.pipeline.events import emit_event
from chalicelib.pipeline.outbox import Pending, publish
from chalicelib.timers.messages import FireMessage
from chalicelib.timers.ticker import send_successor

log = logging.getLogger(__name__)

# Bounds the process's concurrent fires below its database pool and HTTP connection pool.
_SLOTS = threading.BoundedSemaphore(8)
LONG_WAIT_S = 5.0
SUCCESSOR_FIRST_S = 0.1
LATE_S = 0.1


def utcnow() -> datetime:
    """The fire handler's clock."""
    return datetime.now(UTC)


def iso_ms(at: datetime) -> str:
    """UTC, ISO-8601, millisecond precision: the timer payload's format."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fire(msg: FireMessage) -> int | None:
    """Settle one fire and emit its event; the event id, or None when there was nothing to emit."""
    pending: Pending | None = None
    event_id: int | None = None
    with _SLOTS:
        with system_tx() as cur:
            row = db.load_fire(cur, msg.tenant_id, msg.fire_id)
            if row is None or row["status"] != "claimed":
                return None  # the timer was deleted or reset, or this is a redelivery
            if not (row["enabled"] and row["has_rule"]):
                db.settle(cur, msg.tenant_id, msg.fire_id, "skipped", None)
                return None
            fired_at = utcnow()
            if not db.settle(cur, msg.tenant_id, msg.fire_id, "fired", fired_at):
                return None
            payload = {"scheduled_at": iso_ms(row["due_at"]), "fired_at": iso_ms(fired_at)}
            emitted = emit_event(cur, tenant_id=msg.tenant_id, trigger_id=msg.trigger_id, payload=payload)
            event_id = emitted.event_id
            pending = emitted.message
            db.link_event(cur, msg.fire_id, event_id)
            if row["type"] == "date":
                db.complete_date(cur, msg.tenant_id, msg.trigger_id, payload["fired_at"])
        publish([pending])
    return event_id


async def handle_record(record: SQSRecord) -> int | None:
    """Wait until the fire is due, then fire it (in a thread: the database calls block)."""
    msg = FireMessage.model_validate_json(record.body)
    wait = (msg.due_at - utcnow()).total_seconds()
    if wait > LONG_WAIT_S:
        log.warning("fire %s arrived %.1f s early; holding it", msg.fire_id, wait)
    if wait > SUCCESSOR_FIRST_S:  # early enough: send the next fire's message before waiting
        await asyncio.to_thread(send_successor, msg)
        await asyncio.sleep(max(0.0, (msg.due_at - utcnow()).total_seconds()))
        woke = (utcnow() - msg.due_at).total_seconds()
        event_id = await asyncio.to_thread(fire, msg)
    else:
        woke = -wait
        event_id = await asyncio.to_thread(fire, msg)  # late: fire first, then keep the chain going
        await asyncio.to_thread(send_successor, msg)
    done = (utcnow() - msg.due_at).total_seconds()
    if done > LATE_S:  # say where the time went: the queue (arrived late), the wake-up, or the database
        log.info(
            "fire %s late by %.0f ms (arrived %.0f ms before due, woke %.0f ms after)",
            msg.fire_id,
            done * 1000,
            wait * 1000,
            woke * 1000,
        )
    return event_id
