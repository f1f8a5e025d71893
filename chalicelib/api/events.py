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
from chalicelib.api.params import choice_param, id_param, page, path_id
from chalicelib.api.serialize import listing, pick
from chalicelib.core import status
from chalicelib.core.auth import Permission
from chalicelib.core.errors import NotFound
from chalicelib.db.automation import ENFORCEMENT_FIELDS, ENFORCEMENTS
from chalicelib.db.pipeline import EVENT_FIELDS, EVENTS
from chalicelib.models.sensors import EmitEvent
from chalicelib.pipeline import webhooks
from chalicelib.pipeline.events import trace_filter

bp = Blueprint(__name__)
ENFORCEMENT_STATUSES = status.ENFORCEMENT
EVENT_STATUSES = frozenset({"accepted", "suppressed"})


@bp.route("/api/v1/events", methods=["GET"])
@endpoint(Permission.READ)
def list_events(call: Call) -> dict[str, Any]:
    """The tenant's events, newest first; filters `trigger_id`, `rule_id` (events that rule matched),
    `trace` (one chain), `status` (`accepted`, `suppressed`)."""
    window = page(call)
    rows, total = EVENTS.list(
        call.cur,
        call.principal.tenant_id,
        limit=window.limit,
        offset=window.offset,
        where={"trigger_id": id_param(call, "trigger_id"), "rule_id": id_param(call, "rule_id"),
               "trace": trace_filter(call.query("trace")), "status": choice_param(call, "status", EVENT_STATUSES)},
    )
    return listing([pick(r, EVENT_FIELDS) for r in rows], total, window.limit, window.offset)


@bp.route("/api/v1/events", methods=["POST"])
@endpoint(Permission.EXECUTE, body=EmitEvent, status=202, actions_may_call=True)
def emit_event(call: Call) -> dict[str, Any]:
    """Fire one of the tenant's enabled triggers with `payload`; 202 with the event's id, status and chain."""
    body: EmitEvent = call.body
    return webhooks.emit(call.cur, tenant_id=call.principal.tenant_id, trigger_id=body.trigger_id,
                         payload=body.payload, execution_id=call.principal.execution_id,
                         after_commit=call.after_commit)


@bp.route("/api/v1/events/{event_id}", methods=["GET"])
@endpoint(Permission.READ)
def get_event(call: Call, event_id: str) -> dict[str, Any]:
    """One event with its payload."""
    row = EVENTS.get(call.cur, call.principal.tenant_id, path_id(event_id, "event"))
    if row is None:
        raise NotFound(f"event {event_id} not found")
    return pick(row, EVENT_FIELDS)


@bp.route("/api/v1/enforcements", methods=["GET"])
@endpoint(Permission.READ)
def list_enforcements(call: Call) -> dict[str, Any]:
    """The tenant's enforcements, newest first; filters `trigger_id`, `rule_id`, `event_id`, `status`."""
    window = page(call)
    rows, total = ENFORCEMENTS.list(
        call.cur,
        call.principal.tenant_id,
        limit=window.limit,
        offset=window.offset,
        where={
            "trigger_id": id_param(call, "trigger_id"),
            "rule_id": id_param(call, "rule_id"),
            "event_id": id_param(call, "event_id"),
            "status": choice_param(call, "status", ENFORCEMENT_STATUSES),
        },
    )
    return listing([pick(r, ENFORCEMENT_FIELDS) for r in rows], total, window.limit, window.offset)


@bp.route("/api/v1/enforcements/{enforcement_id}", methods=["GET"])
@endpoint(Permission.READ)
def get_enforcement(call: Call, enforcement_id: str) -> dict[str, Any]:
    """One enforcement."""
    row = ENFORCEMENTS.get(call.cur, call.principal.tenant_id, path_id(enforcement_id, "enforcement"))
    if row is None:
        raise NotFound(f"enforcement {enforcement_id} not found")
    return pick(row, ENFORCEMENT_FIELDS)
