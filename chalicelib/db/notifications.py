"""WebSocket connections and the notifications outbox: every statement the notification path runs.

Connections (`attune.ws_connection`) are written by the WebSocket routes in
a tenant transaction and read by the notifier in a system one, so every
query here filters by tenant itself. The notifier takes a notification's
outbox row together with any earlier row about the same entity that is
still there (a message that SQS delivers late or out of order): locking
them in id order, in the transaction that posts them, is what keeps every
execution's changes in order whichever notifier instance gets which message.
"""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from chalicelib.db.pool import Cursor

# A delivery's commit only acknowledges posts already made: a commit lost in a crash means the
# same notification is posted again (at least once), so it need not wait for the WAL flush.
RELAXED_COMMIT = "SET LOCAL synchronous_commit = off"
CONNECT = """
INSERT INTO attune.ws_connection (connection_id, tenant_id, user_id)
VALUES (%(connection_id)s, %(tenant_id)s, %(user_id)s)
ON CONFLICT (connection_id) DO UPDATE
SET tenant_id = EXCLUDED.tenant_id, user_id = EXCLUDED.user_id, subscription = '{}', connected_at = now()
"""
DISCONNECT = "DELETE FROM attune.ws_connection WHERE connection_id = %(connection_id)s"
# The tenant comes from the row: a message names only its connection.
SUBSCRIBE = """
UPDATE attune.ws_connection SET subscription = %(subscription)s
WHERE connection_id = %(connection_id)s
RETURNING tenant_id
"""
CONNECTIONS_OF_TENANT = """
SELECT connection_id, subscription FROM attune.ws_connection
WHERE tenant_id = %(tenant_id)s
ORDER BY connected_at, connection_id
"""
TENANT_LISTENS = "SELECT EXISTS (SELECT 1 FROM attune.ws_connection WHERE tenant_id = %(tenant_id)s) AS listens"
# A gone connection is forgotten, unless it connected moments ago: API Gateway may answer
# Gone to a post that races the end of its own $connect.
FORGET_GONE = """
DELETE FROM attune.ws_connection
WHERE connection_id = ANY(%(ids)s) AND tenant_id = %(tenant_id)s
  AND connected_at < clock_timestamp() - make_interval(secs => %(grace)s)
"""
# The local gateway's start: a restarted gateway holds no connections.
FORGET_ALL = "DELETE FROM attune.ws_connection"
# This notification's row and the earlier ones of the same entity, locked in id order, taken.
TAKE_UP_TO = """
DELETE FROM attune.outbox WHERE id IN (
    SELECT id FROM attune.outbox
    WHERE queue = 'notifications' AND id <= %(id)s AND body @> %(entity)s
    ORDER BY id
    FOR UPDATE
)
RETURNING id, body
"""
# The notification of a rule still waiting in the outbox (one being delivered is skipped).
WAITING_TRIGGERED = """
SELECT id, body FROM attune.outbox
WHERE queue = 'notifications' AND body @> %(entity)s
ORDER BY id DESC
LIMIT 1
FOR UPDATE SKIP LOCKED
"""
REPLACE_BODY = "UPDATE attune.outbox SET body = %(body)s WHERE id = %(id)s"
# Whether the rule's previous enforcement is recent (the (rule_id, event_id) index, backwards).
RECENTLY_TRIGGERED = """
SELECT created > clock_timestamp() - make_interval(secs => %(window)s) AS recent
FROM attune.enforcement
WHERE rule_id = %(rule_id)s AND tenant_id = %(tenant_id)s AND event_id < %(event_id)s
ORDER BY event_id DESC
LIMIT 1
"""


def connect(cur: Cursor, *, connection_id: str, tenant_id: int, user_id: int) -> None:
    """Record a connection (a reconnect with the same id starts afresh, hearing everything)."""
    cur.execute(CONNECT, {"connection_id": connection_id, "tenant_id": tenant_id, "user_id": user_id})


def disconnect(cur: Cursor, connection_id: str) -> None:
    """Forget a connection; nothing happens for one already forgotten."""
    cur.execute(DISCONNECT, {"connection_id": connection_id})


def subscribe(cur: Cursor, connection_id: str, subscription: dict[str, Any]) -> bool:
    """Store what the connection wants to hear; False when the connection is not known."""
    cur.execute(SUBSCRIBE, {"connection_id": connection_id, "subscription": Jsonb(subscription)})
    return cur.fetchone() is not None


def connections_of(cur: Cursor, tenant_id: int) -> list[dict[str, Any]]:
    """Every connection of the tenant with its subscription, oldest first."""
    cur.execute(CONNECTIONS_OF_TENANT, {"tenant_id": tenant_id})
    return cur.fetchall()


def tenant_listens(cur: Cursor, tenant_id: int) -> bool:
    """Whether any WebSocket client of the tenant is connected (an index probe)."""
    cur.execute(TENANT_LISTENS, {"tenant_id": tenant_id})
    row = cur.fetchone()
    return bool(row and row["listens"])


def forget_gone(cur: Cursor, tenant_id: int, connection_ids: list[str], grace_seconds: float) -> None:
    """Drop connections the gateway says are gone."""
    if connection_ids:
        cur.execute(FORGET_GONE, {"ids": connection_ids, "tenant_id": tenant_id, "grace": grace_seconds})


def forget_all(cur: Cursor) -> int:
    """Drop every connection (a gateway that restarted has none); how many there were."""
    cur.execute(FORGET_ALL)
    return cur.rowcount


def relax_commit(cur: Cursor) -> None:
    """This transaction's commit does not wait for the disk (see RELAXED_COMMIT)."""
    cur.execute(RELAXED_COMMIT)


def take_up_to(cur: Cursor, outbox_id: int, entity: dict[str, Any]) -> list[dict[str, Any]]:
    """Delete and return, in id order, the notification rows of `entity` up to `outbox_id`."""
    cur.execute(TAKE_UP_TO, {"id": outbox_id, "entity": Jsonb(entity)})
    return sorted(cur.fetchall(), key=lambda row: int(row["id"]))


def waiting_triggered(cur: Cursor, tenant_id: int, rule_id: int) -> dict[str, Any] | None:
    """The rule's `rule.triggered` notification still in the outbox and not being delivered, locked."""
    entity = {"tenant_id": tenant_id, "event": "rule.triggered", "entity_id": rule_id}
    cur.execute(WAITING_TRIGGERED, {"entity": Jsonb(entity)})
    return cur.fetchone()


def replace_body(cur: Cursor, outbox_id: int, body: dict[str, Any]) -> None:
    """Rewrite a waiting notification (a coalesced trigger)."""
    cur.execute(REPLACE_BODY, {"id": outbox_id, "body": Jsonb(body)})


def recently_triggered(cur: Cursor, *, tenant_id: int, rule_id: int, event_id: int, window_seconds: float) -> bool:
    """Whether the rule's previous enforcement is younger than `window_seconds`."""
    cur.execute(RECENTLY_TRIGGERED, {"tenant_id": tenant_id, "rule_id": rule_id, "event_id": event_id,
                                     "window": window_seconds})
    row = cur.fetchone()
    return bool(row and row["recent"])
