"""Events and enforcements: read-only records of what fired and which rules matched."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.api.context import Call, endpoint
from chalicelib.api.params import choice_param, id_param, page, path_id
from chalicelib.api.serialize import listing, pick
from chalicelib.core import status
from chalicelib.core.auth import Permission
from chalicelib.core.errors import NotFound
from chalicelib.db.automation import ENFORCEMENT_FIELDS, ENFORCEMENTS, EVENT_FIELDS, EVENTS

bp = Blueprint(__name__)
ENFORCEMENT_STATUSES = status.ENFORCEMENT


@bp.route("/api/v1/events", methods=["GET"])
@endpoint(Permission.READ)
def list_events(call: Call) -> dict[str, Any]:
    """The tenant's events, newest first; filters `trigger_id`, `rule_id` (events that rule matched)."""
    window = page(call)
    rows, total = EVENTS.list(
        call.cur,
        call.principal.tenant_id,
        limit=window.limit,
        offset=window.offset,
        where={"trigger_id": id_param(call, "trigger_id"), "rule_id": id_param(call, "rule_id")},
    )
    return listing([pick(r, EVENT_FIELDS) for r in rows], total, window.limit, window.offset)


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
