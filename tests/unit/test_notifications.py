"""The pure parts of notifications: subscribe parsing, matching, the client's message, rule.triggered coalescing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.core.errors import BadRequest
from chalicelib.models.messages import NotificationMessage
from chalicelib.notifications import coalesce, wire
from chalicelib.notifications.subscriptions import EVENTS, matches, parse_message


def _note(event: str = "execution.status_changed", entity_type: str = "execution", entity_id: int = 7,
          data: dict[str, Any] | None = None) -> NotificationMessage:
    return NotificationMessage(tenant_id=3, event=event, entity_type=entity_type, entity_id=entity_id,  # type: ignore[arg-type]
                               data=data if data is not None else {"id": entity_id, "status": "running"},
                               timestamp="2026-01-27T10:30:00.000Z", outbox_id=11)


# -- subscribe ---------------------------------------------------------------------------------
def test_a_subscribe_keeps_only_what_narrows() -> None:
    # GIVEN a subscribe naming events twice and an entity WHEN parsed THEN stored sorted, deduplicated, without action
    parsed = parse_message(json.dumps({"action": "subscribe", "events": ["inquiry.*", "execution.status_changed",
                                                                         "inquiry.*"], "entity_id": 5}))
    assert parsed.stored() == {"events": ["execution.status_changed", "inquiry.*"], "entity_id": 5}
    # AND a bare subscribe hears everything again
    assert parse_message('{"action": "subscribe"}').stored() == {}


@pytest.mark.parametrize(("body", "says"), [
    ("not json", "JSON object"),
    ("[1, 2]", "JSON object, got list"),
    ('{"events": ["*"]}', "unknown action None"),
    ('{"action": "unsubscribe"}', "unknown action 'unsubscribe'"),
    ('{"action": "subscribe", "events": ["execution.finished"]}', "unknown event 'execution.finished'"),
    ('{"action": "subscribe", "events": []}', "events"),
    ('{"action": "subscribe", "events": "execution.*"}', "events"),
    ('{"action": "subscribe", "entity_id": 0}', "entity_id"),
    ('{"action": "subscribe", "entity_id": "12"}', "entity_id"),
    ('{"action": "subscribe", "entity_id": true}', "entity_id"),
    ('{"action": "subscribe", "tenant_id": 1}', "tenant_id"),
    (None, "JSON object"),
])
def test_bad_messages_are_a_400_naming_the_problem(body: str | None, says: str) -> None:
    with pytest.raises(BadRequest) as err:
        parse_message(body)
    assert says in err.value.message


def test_an_oversized_message_is_refused_before_parsing() -> None:
    with pytest.raises(BadRequest, match="limit"):
        parse_message(json.dumps({"action": "subscribe", "pad": "x" * 40_000}))


@pytest.mark.parametrize(("subscription", "event", "entity_id", "heard"), [
    ({}, "rule.triggered", 1, True),
    (None, "inquiry.created", 1, True),
    ({"events": ["*"]}, "inquiry.responded", 1, True),
    ({"events": ["execution.*"]}, "execution.status_changed", 1, True),
    ({"events": ["execution.*"]}, "inquiry.created", 1, False),
    ({"events": ["inquiry.created"]}, "inquiry.responded", 1, False),
    ({"events": ["inquiry.created", "rule.triggered"]}, "rule.triggered", 1, True),
    ({"entity_id": 9}, "execution.status_changed", 9, True),
    ({"entity_id": 9}, "execution.status_changed", 90, False),
    ({"events": ["execution.status_changed"], "entity_id": 9}, "inquiry.created", 9, False),
    ({"events": ["exec*"]}, "execution.status_changed", 1, False),  # only whole families
])
def test_matching(subscription: dict[str, Any] | None, event: str, entity_id: int, heard: bool) -> None:
    assert matches(subscription, event, entity_id) is heard


def test_every_event_of_the_contract_can_be_subscribed_to() -> None:
    for event in EVENTS:
        assert parse_message(json.dumps({"action": "subscribe", "events": [event]})).stored() == {"events": [event]}


# -- what the client receives ----------------------------------------------------------------
def test_the_client_message_has_the_contract_shape_and_names_the_execution() -> None:
    doc = json.loads(wire.encode(_note()))
    assert doc == {"event": "execution.status_changed", "entity_type": "execution", "entity_id": 7,
                   "data": {"id": 7, "status": "running", "execution_id": 7},
                   "timestamp": "2026-01-27T10:30:00.000Z"}


def test_timestamps_read_as_the_api_writes_them() -> None:
    note = _note(data={"id": 7, "created": "2026-01-27T10:30:00.123456Z", "started": "2026-01-27T11:30:00+01:00",
                       "finished": None, "prompt": "2026-01-27T10:30:00.123456Z"})
    data = json.loads(wire.encode(note))["data"]
    assert data["created"] == "2026-01-27T10:30:00.123Z" and data["started"] == "2026-01-27T10:30:00.000Z"
    assert data["finished"] is None and data["prompt"] == "2026-01-27T10:30:00.123456Z"  # not a timestamp field


def test_other_entities_are_not_given_an_execution_id() -> None:
    doc = json.loads(wire.encode(_note("inquiry.created", "inquiry", 4, {"id": 4, "execution_id": 8})))
    assert doc["data"] == {"id": 4, "execution_id": 8}


def test_an_oversized_notification_keeps_what_identifies_it() -> None:
    # GIVEN an inquiry notification with a huge schema WHEN encoded THEN it fits, marked truncated
    note = _note("inquiry.created", "inquiry", 4, {"id": 4, "execution_id": 8, "schema": {"x": "y" * 200_000}})
    raw = wire.encode(note)
    assert len(raw) <= wire.MAX_PAYLOAD_BYTES
    assert json.loads(raw)["data"] == {"id": 4, "execution_id": 8, "truncated": True}


# -- coalescing rule.triggered -----------------------------------------------------------------
RULE = {"id": 5, "ref": "r", "action_ref": "core.noop"}


def _event(event_id: int, payload: Any = None) -> dict[str, Any]:
    return {"id": event_id, "trigger_id": 2, "payload": payload if payload is not None else {"n": event_id},
            "created": datetime(2026, 1, 27, 10, 30, tzinfo=UTC)}


def _body(event_id: int, enforcement_id: int) -> dict[str, Any]:
    return {"tenant_id": 3, "event": "rule.triggered", "entity_type": "rule", "entity_id": 5,
            "data": coalesce.triggered_data(RULE, _event(event_id), enforcement_id),
            "timestamp": f"t{event_id}"}


def test_one_trigger_carries_the_rule_and_the_event() -> None:
    data = coalesce.triggered_data(RULE, _event(40), 9)
    assert data == {"rule_id": 5, "rule_ref": "r", "action_ref": "core.noop", "trigger_id": 2, "enforcement_id": 9,
                    "count": 1, "first_event_id": 40,
                    "event": {"id": 40, "trigger_id": 2, "payload": {"n": 40}, "created": "2026-01-27T10:30:00.000Z"}}


def test_triggers_fold_into_the_waiting_notification_counting_each_once() -> None:
    # GIVEN a waiting notification for event 40 WHEN events 41..49 fold into it
    waiting = _body(40, 100)
    for n in range(41, 50):
        waiting = coalesce.merge(waiting, _body(n, n + 60))
    # THEN it counts ten triggers, shows the latest event, remembers the first
    assert waiting["data"]["count"] == 10
    assert waiting["data"]["first_event_id"] == 40
    assert waiting["data"]["event"]["id"] == 49 and waiting["data"]["enforcement_id"] == 109
    assert waiting["timestamp"] == "t49" and waiting["entity_id"] == 5 and waiting["tenant_id"] == 3


def test_a_huge_payload_is_left_out() -> None:
    data = coalesce.triggered_data(RULE, _event(1, {"blob": "x" * (coalesce.MAX_PAYLOAD_BYTES + 1)}), 2)
    assert data["event"]["payload"] is None and data["event"]["payload_truncated"] is True


def test_a_quiet_rule_is_notified_at_once_a_busy_one_after_a_window() -> None:
    assert coalesce.delay_seconds(recently_triggered=False) == 0
    assert coalesce.delay_seconds(recently_triggered=True) == coalesce.WINDOW_SECONDS


def test_a_burst_sends_a_bounded_number_of_notifications() -> None:
    # GIVEN the coalescing rules, simulated: a trigger every 20 ms for 50 triggers; a waiting notification
    # is delivered when it becomes due (at once, or after the window)
    window, step = coalesce.WINDOW_SECONDS, 0.02
    waiting: dict[str, Any] | None = None
    due_at = 0.0
    last_trigger: float | None = None
    sent: list[int] = []
    for i in range(50):
        now = i * step
        if waiting is not None and now >= due_at:
            sent.append(waiting["data"]["count"])
            waiting = None
        fresh = _body(i + 1, i + 1)
        if waiting is not None:
            waiting = coalesce.merge(waiting, fresh)
        else:
            recent = last_trigger is not None and now - last_trigger < window
            waiting, due_at = fresh, now + coalesce.delay_seconds(recent) + 0.03  # + delivery time
        last_trigger = now
    assert waiting is not None
    sent.append(waiting["data"]["count"])
    # THEN one notification at once, then about one per window, and every trigger counted once
    assert 2 <= len(sent) <= 1 + 50 * step / window + 1, sent
    assert sum(sent) == 50
    assert sent[0] == 1 + int(0.03 / step)  # the first went out at once, with what came in its delivery time
