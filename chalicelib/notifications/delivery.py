"""The notifier's work: one `notifications` message → a post to every matching connection of its tenant.

Order: SQS may deliver a change before the one it follows (a standard queue,
several notifier instances, the relay re-sending a lost message), so the
message is only a doorbell. The notifier takes, in one transaction, the
message's outbox row and every earlier row about the same entity still
there, locked in id order (commit order per entity), posts them in that
order, and the commit acknowledges them. A second instance ringing for a
later change waits on those row locks, then finds only its own row; a late
doorbell finds nothing and posts nothing. Each client therefore sees every
change of an execution exactly in order (at least once: a crash after a
post and before the commit posts again).

A gone connection (the client left without `$disconnect` reaching us) is
forgotten; a connection that refuses one message does not stop the others;
an unreachable endpoint fails the message, which SQS delivers again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from chalicelib.aws import websocket
from chalicelib.db import notifications as db
from chalicelib.db.pool import Cursor, system_tx
from chalicelib.models.messages import NotificationMessage
from chalicelib.notifications import wire
from chalicelib.notifications.subscriptions import matches

log = logging.getLogger(__name__)

# A connection that answers Gone within this long of connecting is kept: its $connect may still be finishing.
GONE_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class Delivered:
    """What one message came to: notifications taken from the outbox, posts made, connections gone."""

    notifications: int = 0
    posts: int = 0
    gone: int = 0


def _entity(message: NotificationMessage) -> dict[str, Any]:
    return {"tenant_id": message.tenant_id, "entity_type": message.entity_type, "entity_id": message.entity_id}


def _taken(cur: Cursor, message: NotificationMessage) -> list[NotificationMessage]:
    """This notification and the undelivered earlier ones of its entity, oldest first, out of the outbox."""
    if message.outbox_id is None:  # not from the outbox: nothing to order it against
        return [message]
    taken = []
    for row in db.take_up_to(cur, message.outbox_id, _entity(message)):
        try:
            taken.append(NotificationMessage.model_validate({**row["body"], "outbox_id": row["id"]}))
        except ValidationError as exc:  # written by us, so never; dropping it beats retrying it forever
            log.error("dropping malformed notification outbox row %s: %s", row["id"], exc)
    return taken


def deliver(message: NotificationMessage) -> Delivered:
    """Post `message` (and what it must follow) to the tenant's matching connections, in order."""
    with system_tx() as cur:
        db.relax_commit(cur)
        batch = _taken(cur, message)
        if not batch:
            return Delivered()
        connections = db.connections_of(cur, message.tenant_id)
        gone: set[str] = set()
        posts = 0
        for note in batch:
            frame = wire.encode(note)
            for conn in connections:
                connection_id = str(conn["connection_id"])
                if connection_id in gone or not matches(conn["subscription"], note.event, note.entity_id):
                    continue
                outcome = websocket.post(connection_id, frame)
                if outcome is websocket.Posted.GONE:
                    gone.add(connection_id)
                elif outcome is websocket.Posted.SENT:
                    posts += 1
        db.forget_gone(cur, message.tenant_id, sorted(gone), GONE_GRACE_SECONDS)
    return Delivered(notifications=len(batch), posts=posts, gone=len(gone))
