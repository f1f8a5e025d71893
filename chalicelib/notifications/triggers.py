"""`rule.triggered`: written by the rules engine for rules with `notify_on_trigger`, coalesced per rule.

Only when a client of the tenant is connected (one index probe per event,
made only once a notifying rule has matched), so a tenant without listeners
pays nothing. The coalescing (chalicelib/notifications/coalesce.py) happens
in the outbox itself: a trigger folds into its rule's notification that is
still waiting there, which is why the notifier reads what it posts from the
outbox row rather than from the queue message.
"""

from __future__ import annotations

from typing import Any

from chalicelib.db import notifications as db
from chalicelib.db.pool import Cursor
from chalicelib.executions.lifecycle import notification
from chalicelib.notifications import coalesce
from chalicelib.pipeline.outbox import Pending, enqueue


class Listening:
    """Whether the tenant has a connected WebSocket client; asked of the database at most once."""

    def __init__(self, cur: Cursor, tenant_id: int) -> None:
        self._cur = cur
        self._tenant_id = tenant_id
        self._known: bool | None = None

    def __call__(self) -> bool:
        """The answer, from the first call on."""
        if self._known is None:
            self._known = db.tenant_listens(self._cur, self._tenant_id)
        return self._known


def rule_triggered(
    cur: Cursor, *, rule: dict[str, Any], event: dict[str, Any], enforcement_id: int, listening: Listening
) -> list[Pending]:
    """Notify that `rule` fired on `event` (if it asks to be and someone listens); the message to publish, if new."""
    if not rule.get("notify_on_trigger") or not listening():
        return []
    tenant_id = int(event["tenant_id"])
    body = notification(tenant_id, "rule.triggered", "rule", int(rule["id"]),
                        coalesce.triggered_data(rule, event, enforcement_id))
    waiting = db.waiting_triggered(cur, tenant_id, int(rule["id"]))
    if waiting is not None:
        db.replace_body(cur, int(waiting["id"]), coalesce.merge(waiting["body"], body))
        return []
    recent = db.recently_triggered(cur, tenant_id=tenant_id, rule_id=int(rule["id"]), event_id=int(event["id"]),
                                   window_seconds=coalesce.WINDOW_SECONDS)
    return [enqueue(cur, "notifications", body, delay_s=coalesce.delay_seconds(recent))]
