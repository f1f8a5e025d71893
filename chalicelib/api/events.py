"""Events and enforcements: records of what fired and which rules matched; and emitting an event.

`POST /api/v1/events` is how a running action (`attune_action.emit`, with its
execution-scoped token) or a user fires one of the tenant's triggers; an
action's event continues its execution's chain (trace and depth), and past
the depth limit it is recorded `suppressed` with the reason
(chalicelib/pipeline/events.py).
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.api.context import Call, endpoint
from chalicelib.api.params import PAGE, ChoiceParam, TextParam, id_filter, page, path_id
from chalicelib.api.serialize import listing, pick
from chalicelib.core import status
from chalicelib.core.auth import Permission
from chalicelib.core.errors import NotFound
from chalicelib.db.automation import ENFORCEMENT_FIELDS, ENFORCEMENTS
from chalicelib.db.pipeline import EVENT_FIELDS, EVENTS
from chalicelib.models.responses import Enforcement, EnforcementList, Event, EventAccepted, EventList
from chalicelib.models.sensors import EmitEvent
from chalicelib.pipeline import webhooks
from chalicelib.pipeline.events import MAX_TRACE_CHARS, trace_filter

bp = Blueprint(__name__)
ENFORCEMENT_STATUSES = status.ENFORCEMENT
EVENT_STATUSES = frozenset({"accepted", "suppressed"})
TRIGGER_ID = id_filter("trigger_id", "those of this trigger")
RULE_ID = id_filter("rule_id", "those of this rule (for events: the events it matched)")
EVENT_ID = id_filter("event_id", "those of this event")
TRACE = TextParam("trace", "Only those of this chain (its trace id).", max_length=MAX_TRACE_CHARS,
                  pattern="^[A-Za-z0-9-]+$")
EVENT_STATUS = ChoiceParam("status", "Only events of this status.", choices=EVENT_STATUSES)
ENFORCEMENT_STATUS = ChoiceParam("status", "Only enforcements of this status.", choices=ENFORCEMENT_STATUSES)


@bp.route("/api/v1/events", methods=["GET"])
@endpoint(Permission.READ, query=(*PAGE, TRIGGER_ID, RULE_ID, TRACE, EVENT_STATUS), response=EventList)
def list_events(call: Call) -> dict[str, Any]:
    """The tenant's events, newest first; filters `trigger_id`, `rule_id` (events that rule matched),
    `trace` (one chain), `status` (`accepted`, `suppressed`)."""
    window = page(call)
    rows, total = EVENTS.list(
        call.cur,
        call.principal.tenant_id,
        limit=window.limit,
        offset=window.offset,
        where={"trigger_id": TRIGGER_ID.read(call), "rule_id": RULE_ID.read(call),
               "trace": trace_filter(TRACE.read(call)), "status": EVENT_STATUS.read(call)},
    )
    return listing([pick(r, EVENT_FIELDS) for r in rows], total, window.limit, window.offset)


@bp.route("/api/v1/events", methods=["POST"])
@endpoint(Permission.EXECUTE, body=EmitEvent, status=202, actions_may_call=True, response=EventAccepted,
          errors=(404,))
def emit_event(call: Call) -> dict[str, Any]:
    """Fire one of the tenant's enabled triggers with `payload`; 202 with the event's id, status and chain."""
    body: EmitEvent = call.body
    return webhooks.emit(call.cur, tenant_id=call.principal.tenant_id, trigger_id=body.trigger_id,
                         payload=body.payload, execution_id=call.principal.execution_id,
                         after_commit=call.after_commit)


@bp.route("/api/v1/events/{event_id}", methods=["GET"])
@endpoint(Permission.READ, response=Event)
def get_event(call: Call, event_id: str) -> dict[str, Any]:
    """One event with its payload."""
    row = EVENTS.get(call.cur, call.principal.tenant_id, path_id(event_id, "event"))
    if row is None:
        raise NotFound(f"event {event_id} not found")
    return pick(row, EVENT_FIELDS)


@bp.route("/api/v1/enforcements", methods=["GET"])
@endpoint(Permission.READ, query=(*PAGE, TRIGGER_ID, RULE_ID, EVENT_ID, ENFORCEMENT_STATUS),
          response=EnforcementList)
def list_enforcements(call: Call) -> dict[str, Any]:
    """The tenant's enforcements, newest first; filters `trigger_id`, `rule_id`, `event_id`, `status`."""
    window = page(call)
    rows, total = ENFORCEMENTS.list(
        call.cur,
        call.principal.tenant_id,
        limit=window.limit,
        offset=window.offset,
        where={
            "trigger_id": TRIGGER_ID.read(call),
            "rule_id": RULE_ID.read(call),
            "event_id": EVENT_ID.read(call),
            "status": ENFORCEMENT_STATUS.read(call),
        },
    )
    return listing([pick(r, ENFORCEMENT_FIELDS) for r in rows], total, window.limit, window.offset)


@bp.route("/api/v1/enforcements/{enforcement_id}", methods=["GET"])
@endpoint(Permission.READ, response=Enforcement)
def get_enforcement(call: Call, enforcement_id: str) -> dict[str, Any]:
    """One enforcement."""
    row = ENFORCEMENTS.get(call.cur, call.principal.tenant_id, path_id(enforcement_id, "enforcement"))
    if row is None:
        raise NotFound(f"enforcement {enforcement_id} not found")
    return pick(row, ENFORCEMENT_FIELDS)
