"""T3.16 Rule trigger notifications: `rule.triggered` only for rules with `notify_on_trigger`, coalesced.

A WebSocket client subscribed to `rule.triggered`: a rule without
`notify_on_trigger` sends nothing when it fires; a notifying rule fired by
one webhook event sends one notification carrying the event (its payload
included); a burst of 50 events on it sends a bounded number of
notifications (about one per second of burst, plus one), whose `count`s add
up to exactly 50, so nothing is lost in the coalescing. Another tenant's
client, connected all along, receives none of it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.e2e.client import Cloud, Listener, User
from tests.e2e.flow import create_rule, fire, unique_ref, wait_evaluated, webhook_trigger

BURST = 50
MAX_NOTIFICATIONS_FOR_BURST = 10  # ~1 per second of burst + 1; a 50-event burst takes a second or two
TIMEOUT_S = 60


def _notifying_rule(user: User, trigger_id: int) -> dict[str, Any]:
    body = {"trigger_id": trigger_id, "action_ref": "core.noop", "ref": unique_ref("loud"), "notify_on_trigger": True}
    resp = user.post("/api/v1/rules", body)
    assert resp.status_code == 201, resp.text
    assert resp.json()["notify_on_trigger"] is True
    return dict(resp.json())


def _of_rule(listener: Listener, rule_id: int) -> list[dict[str, Any]]:
    return [m for m in listener.notifications() if m["event"] == "rule.triggered" and m["entity_id"] == rule_id]


def _counted(listener: Listener, rule_id: int, total: int) -> list[dict[str, Any]]:
    """Wait until the rule's notifications count `total` triggers; they are returned."""
    return listener.wait(
        lambda ms: (found := [m for m in ms if m.get("event") == "rule.triggered" and m["entity_id"] == rule_id])
        and sum(m["data"]["count"] for m in found) >= total and found,
        f"rule {rule_id}'s notifications to count {total} triggers", TIMEOUT_S)


def test_rule_triggered_is_sent_only_when_asked_and_coalesced(cloud: Cloud) -> None:
    user, other = cloud.register("t316"), cloud.register("t316-other")
    quiet_trigger, loud_trigger = webhook_trigger(user), webhook_trigger(user)
    quiet = create_rule(user, quiet_trigger["id"], "core.noop")
    loud = _notifying_rule(user, loud_trigger["id"])
    with user.listen() as ws, other.listen() as foreign:
        ws.subscribe(["rule.triggered"])
        # WHEN the rule without notify_on_trigger fires, and then the notifying one (the barrier)
        calm = fire(cloud, quiet_trigger["id"], {"n": 0})
        wait_evaluated(user, quiet["id"], [calm])
        event_id = fire(cloud, loud_trigger["id"], {"host": "db-1", "cpu": 97})
        # THEN one notification, for the notifying rule only, with the rule and the event
        (note,) = _counted(ws, loud["id"], 1)
        assert set(note) == {"event", "entity_type", "entity_id", "data", "timestamp"}, note
        assert note["entity_type"] == "rule" and note["entity_id"] == loud["id"]
        data = note["data"]
        assert data["rule_ref"] == loud["ref"] and data["trigger_id"] == loud_trigger["id"], data
        assert data["count"] == 1 and data["first_event_id"] == event_id
        assert data["event"]["id"] == event_id and data["event"]["payload"] == {"host": "db-1", "cpu": 97}, data
        assert data["enforcement_id"] and data["action_ref"] == "core.noop"
        assert [m["entity_id"] for m in ws.notifications()] == [loud["id"]], "the quiet rule sent nothing"

        # WHEN a burst of 50 events hits the notifying rule
        with ThreadPoolExecutor(8) as pool:
            burst = list(pool.map(lambda i: fire(cloud, loud_trigger["id"], {"n": i}), range(BURST)))
        notes = _counted(ws, loud["id"], 1 + BURST)[1:]
        # THEN a bounded number of notifications, which count every trigger exactly once
        counts = [m["data"]["count"] for m in notes]
        print(f"a burst of {BURST} events sent {len(notes)} notification(s), counting {counts}")
        assert 1 <= len(notes) <= MAX_NOTIFICATIONS_FOR_BURST, counts
        assert sum(m["data"]["count"] for m in notes) == BURST
        assert {m["data"]["event"]["id"] for m in notes} <= set(burst)
        assert {m["data"]["first_event_id"] for m in notes} <= set(burst)

        # WHEN the other tenant's own notifying rule fires (its notification is the barrier)
        theirs = _notifying_rule(other, webhook_trigger(other)["id"])
        fire(cloud, theirs["trigger_id"], {"theirs": True})
        _counted(foreign, theirs["id"], 1)
        # THEN each tenant heard only its own rules
        assert {m["entity_id"] for m in foreign.notifications() if m["event"] == "rule.triggered"} == {theirs["id"]}
        assert _of_rule(ws, theirs["id"]) == []
