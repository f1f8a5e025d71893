"""`emit_event`: the one way an event enters the system (webhooks, timers; later sensors and chained actions).

It stores the event and its `events` queue message in the caller's
transaction (the transactional outbox), so an event is never stored without
its message nor sent without being stored; the caller publishes the message
after its commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.db.pipeline import insert_event
from chalicelib.db.pool import Cursor
from chalicelib.models.messages import EventMessage
from chalicelib.pipeline.outbox import Pending, enqueue


@dataclass(frozen=True)
class Emitted:
    """A stored event and its message to publish after commit."""

    event: dict[str, Any]
    message: Pending

    @property
    def event_id(self) -> int:
        """The new event's id."""
        return int(self.event["id"])


def emit_event(cur: Cursor, *, tenant_id: int, trigger_id: int, payload: Any) -> Emitted:
    """Store an event of `trigger_id` with `payload`, and queue it for the rules engine, in the caller's transaction."""
    event = insert_event(cur, tenant_id, trigger_id, payload)
    message = EventMessage(tenant_id=tenant_id, event_id=event["id"]).model_dump()
    return Emitted(event, enqueue(cur, "events", message))
