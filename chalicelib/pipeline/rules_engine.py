"""The rules engine: an event → the enabled rules of its trigger → enforcements → executions.

A short pipeline in the StackStorm manner (match → enforce), in one
transaction per event: enforcements are unique per (rule, event), so a
redelivered event creates nothing twice, and the event's outbox row is
acknowledged in the same commit. A rule with `notify_on_trigger` also
tells the tenant's WebSocket clients, if any are connected (`rule.triggered`,
coalesced per rule: chalicelib/notifications/triggers.py).
"""

from __future__ import annotations

import logging
from typing import Any

from chalicelib.core.criteria import TemplateFailure, matches, render
from chalicelib.datastore import DatastoreView
from chalicelib.db import outbox, pipeline
from chalicelib.db.actions import find_for_run
from chalicelib.db.pool import Cursor, system_tx
from chalicelib.executions import request_execution
from chalicelib.models.messages import EventMessage
from chalicelib.notifications.triggers import Listening, rule_triggered
from chalicelib.pipeline.outbox import Pending

log = logging.getLogger(__name__)


def _context(cur: Cursor, event: dict[str, Any]) -> dict[str, Any]:
    return {
        "trigger": {
            "data": event["payload"],
            "id": event["trigger_id"],
            "type": event["trigger_type"],
            "ref": event["trigger_ref"],
        },
        "event": {
            "id": event["id"],
            "trigger_id": event["trigger_id"],
            "payload": event["payload"],
            "created": event["created"].isoformat(),
        },
        "datastore": DatastoreView(cur, event["tenant_id"]),
    }


def _enforce(
    cur: Cursor, event: dict[str, Any], rule: dict[str, Any], base: dict[str, Any], listening: Listening
) -> list[Pending]:
    """One rule against one event: no match, or an enforcement and (when the action exists) its execution.

    The enforcement then follows its execution (the lifecycle moves it). A
    template error in the rule's parameters still makes an execution, failed
    at once with the error, so it shows where the user looks (§5, T2.4); only
    a missing or disabled action leaves the enforcement `failed` on its own.
    """
    tenant = int(event["tenant_id"])
    keys = {"tenant_id": tenant, "rule_id": rule["id"], "event_id": event["id"], "trigger_id": event["trigger_id"]}
    context = {**base, "rule": {"id": rule["id"], "ref": rule["ref"], "action_ref": rule["action_ref"]}}
    try:
        if not matches(rule["criteria"], context):
            return []
    except TemplateFailure as exc:  # the criteria cannot be evaluated: nothing to run, say why
        pipeline.insert_enforcement(cur, **keys, state="failed", error=exc.message)
        return []
    failure: str | None = None
    parameters: Any = {}
    try:
        parameters = render(rule["parameters"], context)
    except TemplateFailure as exc:
        failure = f"template error: {exc.message}"
    enforcement_id = pipeline.insert_enforcement(cur, **keys, state="created", error=None)
    if enforcement_id is None:
        return []  # this event was already enforced for this rule (a redelivery)
    notified = rule_triggered(cur, rule=rule, event=event, enforcement_id=enforcement_id, listening=listening)
    action = find_for_run(cur, tenant, rule["action_ref"])
    if action is None or not action["enabled"]:
        error = f"action {rule['action_ref']!r} not found or disabled"
        pipeline.set_enforcement_status(cur, enforcement_id, "failed", error)
        return notified
    requested = request_execution(
        cur,
        tenant_id=tenant,
        action=action,
        parameters=parameters if isinstance(parameters, dict) else {},
        actor=f"rule:{rule['ref']}",
        enforcement_id=enforcement_id,
        failure=failure,
        trace=event["trace"],  # the event's chain goes on with its execution
        depth=event["depth"],
    )
    return [*requested.messages, *notified]


def process_event(message: EventMessage) -> list[Pending]:
    """Evaluate one event against its trigger's rules; the messages to publish after commit."""
    pending: list[Pending] = []
    # Pipelined: statements whose results are not read (audit entries, the enforcement's move, the
    # acknowledgement...) go out with the next query that is, not each in a round trip of its own.
    with system_tx() as cur, cur.connection.pipeline():
        pipeline.commit_asynchronously(cur)  # safe here: a lost commit is evaluated again (db/pipeline.py)
        event = pipeline.load_event(cur, message.tenant_id, message.event_id)
        if event is not None:
            base = _context(cur, event)
            listening = Listening(cur, message.tenant_id)
            for rule in pipeline.enabled_rules(cur, message.tenant_id, event["trigger_id"]):
                pending += _enforce(cur, event, rule, base, listening)
        outbox.ack(cur, message.outbox_id)
    return pending
