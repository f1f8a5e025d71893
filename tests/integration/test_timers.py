"""Timers on real PostgreSQL and moto SQS: claims are exactly-once, fires emit exactly one event."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from chalicelib.aws import queues
from chalicelib.aws.clients import client
from chalicelib.db.pool import system_tx
from chalicelib.timers import ticker
from chalicelib.timers.fire import fire
from chalicelib.timers.messages import FireMessage
from functions.timers.app import fire_handler, ticker_handler
from tests.helpers.api import ApiUser, register


def _delayed() -> int:
    attrs = client("sqs").get_queue_attributes(
        QueueUrl=queues.queue_url("timer-fires"),
        AttributeNames=["ApproximateNumberOfMessagesDelayed", "ApproximateNumberOfMessages"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessagesDelayed"]) + int(attrs["ApproximateNumberOfMessages"])


def _fires(trigger_id: int) -> list[dict[str, Any]]:
    with system_tx() as cur:
        cur.execute(
            "SELECT id, tenant_id, trigger_id, due_at, status, sent_at, event_id FROM attune.timer_fire"
            " WHERE trigger_id = %s ORDER BY due_at",
            (trigger_id,),
        )
        return cur.fetchall()


def _timer(user: ApiUser, kind: str, params: dict[str, Any], *, rule_enabled: bool = True) -> tuple[int, int]:
    status, trigger = user.post("/api/v1/triggers", {"type": kind, "parameters": params})
    assert status == 201, trigger
    status, rule = user.post(
        "/api/v1/rules", {"trigger_id": trigger["id"], "action_ref": "core.noop", "enabled": rule_enabled}
    )
    assert status == 201, rule
    return int(trigger["id"]), int(rule["id"])


def _record(msg: FireMessage, n: int = 0) -> dict[str, Any]:
    return {
        "messageId": f"m-{msg.fire_id}-{n}",
        "receiptHandle": f"r-{n}",
        "body": json.dumps(msg.model_dump(mode="json")),
        "attributes": {},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
    }


def _message(row: dict[str, Any]) -> FireMessage:
    return FireMessage(
        tenant_id=row["tenant_id"], trigger_id=row["trigger_id"], fire_id=row["id"], due_at=row["due_at"]
    )


def _events(user: ApiUser, trigger_id: int) -> list[dict[str, Any]]:
    status, body = user.get(f"/api/v1/events?trigger_id={trigger_id}")
    assert status == 200, body
    return list(body["items"])


def test_rule_creation_schedules_at_once_and_duplicate_ticks_claim_nothing(api: Any) -> None:
    user = register(api)
    before = _delayed()
    # GIVEN a 5 s interval timer; WHEN its first rule is created
    trigger_id, _ = _timer(user, "interval", {"seconds": 5})
    # THEN its fires of the next ~90 s are claimed at once, without a tick, and the first one is sent
    fires = _fires(trigger_id)
    assert 17 <= len(fires) <= 18, len(fires)
    assert all(f["status"] == "claimed" for f in fires)
    assert [f["sent_at"] is not None for f in fires] == [True] + [False] * (len(fires) - 1)
    gaps = {(b["due_at"] - a["due_at"]).total_seconds() for a, b in pairwise(fires)}
    assert gaps == {5.0}
    assert _delayed() - before == 1
    # WHEN the ticker runs, twice (a duplicate tick)
    first, second = ticker_handler({}, None), ticker.tick()
    # THEN nothing already claimed is claimed again, and no second message is sent for the timer
    assert first["claimed"] <= 1 and first["sent"] == 0 and first["resent"] == 0
    assert second.claimed == 0 and second.sent == 0 and second.resent == 0
    assert _delayed() - before == 1
    # WHEN the first fire's message is delivered THEN it sends the second fire's, once (a redelivery sends none)
    head = _message(fires[0])
    assert ticker.send_successor(head) == 1 and ticker.send_successor(head) == 0
    assert [f["sent_at"] is not None for f in _fires(trigger_id)][:3] == [True, True, False]


def test_redelivered_fire_emits_one_event(api: Any) -> None:
    user = register(api)
    trigger_id, _ = _timer(user, "interval", {"seconds": 1})
    due = _fires(trigger_id)[0]
    msg = _message(due)
    # WHEN the same fire is delivered twice in one batch and once more later
    first = fire_handler({"Records": [_record(msg, 0), _record(msg, 1)]}, None)
    again = fire_handler({"Records": [_record(msg, 2)]}, None)
    # THEN every record succeeded, and exactly one event was emitted, at (not before) its due time
    assert first == {"batchItemFailures": []} and again == {"batchItemFailures": []}
    events = _events(user, trigger_id)
    assert len(events) == 1
    payload = events[0]["payload"]
    assert set(payload) == {"scheduled_at", "fired_at"}
    scheduled = datetime.fromisoformat(payload["scheduled_at"].replace("Z", "+00:00"))
    fired_at = datetime.fromisoformat(payload["fired_at"].replace("Z", "+00:00"))
    assert payload["scheduled_at"].endswith("Z") and len(payload["scheduled_at"]) == len("2026-01-01T00:00:00.000Z")
    assert abs(scheduled - due["due_at"]) < timedelta(milliseconds=1)
    assert timedelta(0) <= fired_at - scheduled < timedelta(milliseconds=200), (scheduled, fired_at)
    row = next(f for f in _fires(trigger_id) if f["id"] == due["id"])
    assert row["status"] == "fired" and row["event_id"] == events[0]["id"]
    # AND the event went to the rules engine through the outbox, like a webhook's
    with system_tx() as cur:
        cur.execute("SELECT body FROM attune.outbox WHERE queue = 'events'")
        bodies = [r["body"] for r in cur.fetchall()]
    assert any(b["event_id"] == events[0]["id"] for b in bodies)


def test_disabled_rule_means_no_fires(api: Any) -> None:
    user = register(api)
    # GIVEN a timer whose only rule is disabled
    trigger_id, rule_id = _timer(user, "interval", {"seconds": 1}, rule_enabled=False)
    # THEN nothing is claimed, by creation or by a tick
    assert _fires(trigger_id) == []
    ticker.tick()
    assert _fires(trigger_id) == []
    # WHEN the rule is enabled, fires are claimed at once; WHEN disabled again, a claimed fire emits nothing
    assert user.patch(f"/api/v1/rules/{rule_id}", {"enabled": True})[0] == 200
    claimed = _fires(trigger_id)
    assert len(claimed) >= 89
    assert user.patch(f"/api/v1/rules/{rule_id}", {"enabled": False})[0] == 200
    assert fire(_message(claimed[0])) is None
    assert _events(user, trigger_id) == []
    assert _fires(trigger_id)[0]["status"] == "skipped"
    # AND a disabled trigger, or a deleted one, emits nothing either
    assert user.patch(f"/api/v1/rules/{rule_id}", {"enabled": True})[0] == 200
    assert user.patch(f"/api/v1/triggers/{trigger_id}", {"enabled": False})[0] == 200
    assert fire(_message(claimed[1])) is None
    assert user.delete(f"/api/v1/triggers/{trigger_id}")[0] == 200
    assert fire(_message(claimed[2])) is None


def test_date_timer_fires_once_and_is_completed_for_good(api: Any) -> None:
    user = register(api)
    # GIVEN a date timer an hour in the past, with a rule
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    trigger_id, _ = _timer(user, "date", {"at": past})
    fires = _fires(trigger_id)
    assert len(fires) == 1 and fires[0]["sent_at"] is not None
    # THEN its message is due at once (no delay), and firing it emits one event
    assert ticker.delay_for(fires[0]["due_at"], datetime.now(UTC)) == 0
    assert fire(_message(fires[0])) is not None
    assert len(_events(user, trigger_id)) == 1
    # AND the trigger is completed: no tick, re-delivery or rule re-enable fires it again
    status, trigger = user.get(f"/api/v1/triggers/{trigger_id}")
    assert status == 200 and trigger["state"]["completed"] is True
    assert ticker.tick().claimed == 0
    assert fire(_message(fires[0])) is None
    status, _ = user.post("/api/v1/rules", {"trigger_id": trigger_id, "action_ref": "core.noop"})
    assert status == 201
    assert len(_fires(trigger_id)) == 1 and len(_events(user, trigger_id)) == 1


def test_lost_messages_are_resent_once_per_timer(api: Any) -> None:
    user = register(api)
    trigger_id, _ = _timer(user, "interval", {"seconds": 1})
    # GIVEN the queue lost its messages (an emulator restart) and 30 s passed
    later = datetime.now(UTC) + timedelta(seconds=30)
    # WHEN the ticker runs
    report = ticker.tick(later)
    # THEN the overdue fires coalesce: only the latest is re-sent, the others are missed
    assert report.resent == 1 and report.missed >= 15
    statuses = [f["status"] for f in _fires(trigger_id) if f["due_at"] < later - timedelta(seconds=ticker.OVERDUE_S)]
    assert statuses.count("claimed") == 1 and statuses[-1] == "claimed"


def test_changing_parameters_drops_pending_fires(api: Any) -> None:
    user = register(api)
    trigger_id, _ = _timer(user, "interval", {"seconds": 10})
    # WHEN the interval changes THEN the old claims are gone and the new schedule is claimed
    assert user.patch(f"/api/v1/triggers/{trigger_id}", {"parameters": {"seconds": 30}})[0] == 200
    fires = _fires(trigger_id)
    assert len(fires) == 3
    gaps = {(b["due_at"] - a["due_at"]).total_seconds() for a, b in pairwise(fires)}
    assert gaps == {30.0}
