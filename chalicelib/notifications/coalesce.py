"""Coalescing `rule.triggered` per rule, so a busy rule sends at most a few notifications a second (pure).

A rule that fires after a quiet spell (no enforcement in the last
`WINDOW_SECONDS`) is notified at once. While a rule is busy, its triggers
fold into the one notification of that rule still waiting in the outbox
(`count` grows, `event` is the latest); when none is waiting, a new one is
written due `WINDOW_SECONDS` later, so the triggers of that second fold into
it. Every trigger is counted exactly once across the notifications a client
receives; a burst of 50 events sends about one notification per second of
burst, plus one.
"""

from __future__ import annotations

import json
from typing import Any

from chalicelib.notifications.wire import contract_time

WINDOW_SECONDS = 1.0
# An event payload bigger than this is left out of the notification (fetch it: GET /api/v1/events).
MAX_PAYLOAD_BYTES = 16 * 1024


def _payload(payload: Any) -> tuple[Any, bool]:
    size = len(json.dumps(payload, default=str))
    return (None, True) if size > MAX_PAYLOAD_BYTES else (payload, False)


def triggered_data(rule: dict[str, Any], event: dict[str, Any], enforcement_id: int) -> dict[str, Any]:
    """The `data` of one trigger of `rule` by `event`: the rule, the event (with its payload), the enforcement."""
    payload, cut = _payload(event.get("payload"))
    summary: dict[str, Any] = {
        "id": event["id"],
        "trigger_id": event["trigger_id"],
        "payload": payload,
        "created": contract_time(event["created"]),
    }
    if cut:
        summary["payload_truncated"] = True
    return {
        "rule_id": rule["id"],
        "rule_ref": rule["ref"],
        "action_ref": rule["action_ref"],
        "trigger_id": event["trigger_id"],
        "enforcement_id": enforcement_id,
        "count": 1,
        "first_event_id": event["id"],
        "event": summary,
    }


def merge(pending: dict[str, Any], fresh: dict[str, Any]) -> dict[str, Any]:
    """The waiting notification body with one more trigger folded in: counted, latest event shown."""
    before = pending["data"]
    data = {
        **fresh["data"],
        "count": int(before.get("count", 1)) + int(fresh["data"].get("count", 1)),
        "first_event_id": before.get("first_event_id", fresh["data"].get("first_event_id")),
    }
    return {**pending, "data": data, "timestamp": fresh["timestamp"]}


def delay_seconds(recently_triggered: bool) -> float:
    """How long a new notification waits in the outbox: not at all after a quiet spell, a window when busy."""
    return WINDOW_SECONDS if recently_triggered else 0.0
