"""Triggers: webhooks (answer with their URL) and timers (parameters validated at creation)."""

from __future__ import annotations

import uuid
from typing import Any

from chalice import Blueprint

from chalicelib.api.context import Call, endpoint
from chalicelib.api.params import PAGE, ChoiceParam, enabled_filter, page, path_id
from chalicelib.api.serialize import listing, pick
from chalicelib.core.auth import Permission
from chalicelib.core.errors import NotFound, ValidationFailed
from chalicelib.core.timers import validate_trigger_parameters
from chalicelib.db import audit, timers
from chalicelib.db.automation import TRIGGER_FIELDS, TRIGGERS, insert_trigger, set_trigger_secret, update_trigger
from chalicelib.models.automation import NewTrigger, TriggerPatch
from chalicelib.models.responses import Deleted, Trigger, TriggerList
from chalicelib.pipeline.webhooks import seal_secret
from chalicelib.timers.ticker import schedule_now

bp = Blueprint(__name__)
TYPES = frozenset({"webhook", "interval", "date", "cron", "sensor"})
TIMER_TYPES = frozenset({"interval", "date", "cron"})
TYPE = ChoiceParam("type", "Only triggers of this type.", choices=TYPES)
ENABLED = enabled_filter("triggers")


def render(row: dict[str, Any]) -> dict[str, Any]:
    """A trigger as the API shows it; webhooks carry the URL to POST events to (never the secret)."""
    out = pick(row, TRIGGER_FIELDS)
    if row["type"] == "webhook":
        out["webhook_url"] = f"/api/v1/webhooks/{row['id']}"
        out["hmac"] = row.get("webhook_secret") is not None
    return out


def _store_secret(call: Call, row: dict[str, Any], secret: str) -> dict[str, Any]:
    if row["type"] != "webhook":
        raise ValidationFailed("secret applies to webhook triggers only")
    sealed = seal_secret(call.principal.tenant_id, row["id"], secret)
    set_trigger_secret(call.cur, call.principal.tenant_id, row["id"], sealed)
    return {**row, "webhook_secret": sealed}


def _load(call: Call, trigger_id: str) -> dict[str, Any]:
    row = TRIGGERS.get(call.cur, call.principal.tenant_id, path_id(trigger_id, "trigger"))
    if row is None:
        raise NotFound(f"trigger {trigger_id} not found")
    return row


@bp.route("/api/v1/triggers", methods=["POST"])
@endpoint(Permission.WRITE, body=NewTrigger, status=201, response=Trigger, errors=(409,))
def create_trigger(call: Call) -> dict[str, Any]:
    """Create a trigger; timer parameters are checked here (bad cron or zone → 400)."""
    body: NewTrigger = call.body
    params = validate_trigger_parameters(body.type, dict(body.parameters))
    row = insert_trigger(
        call.cur,
        call.principal.tenant_id,
        {
            "ref": body.ref or f"{body.type}-{uuid.uuid4().hex[:8]}",
            "type": body.type,
            "description": body.description,
            "parameters": params,
            "enabled": body.enabled,
        },
    )
    if body.secret is not None:
        row = _store_secret(call, row, body.secret)
    if body.type in TIMER_TYPES and body.enabled:
        tid = row["id"]
        call.after_commit.append(lambda: schedule_now(tid))  # first fires now, not at the next tick
    audit.record(
        call.cur,
        tenant_id=call.principal.tenant_id,
        actor=call.principal.actor,
        action="trigger.created",
        entity_type="trigger",
        entity_id=row["id"],
        detail={"type": body.type, "hmac": body.secret is not None},
    )
    return render(row)


@bp.route("/api/v1/triggers", methods=["GET"])
@endpoint(Permission.READ, query=(*PAGE, TYPE, ENABLED), response=TriggerList)
def list_triggers(call: Call) -> dict[str, Any]:
    """The tenant's triggers, newest first; filters `type`, `enabled`."""
    window = page(call)
    rows, total = TRIGGERS.list(
        call.cur,
        call.principal.tenant_id,
        limit=window.limit,
        offset=window.offset,
        where={"type": TYPE.read(call), "enabled": ENABLED.read(call)},
    )
    return listing([render(r) for r in rows], total, window.limit, window.offset)


@bp.route("/api/v1/triggers/{trigger_id}", methods=["GET"])
@endpoint(Permission.READ, response=Trigger)
def get_trigger(call: Call, trigger_id: str) -> dict[str, Any]:
    """One trigger."""
    return render(_load(call, trigger_id))


@bp.route("/api/v1/triggers/{trigger_id}", methods=["PATCH"])
@endpoint(Permission.WRITE, body=TriggerPatch, response=Trigger)
def patch_trigger(call: Call, trigger_id: str) -> dict[str, Any]:
    """Change parameters (re-validated), description or enabled."""
    body: TriggerPatch = call.body
    current = _load(call, trigger_id)
    values = body.model_dump(exclude_unset=True)
    if body.parameters is not None:
        values["parameters"] = validate_trigger_parameters(current["type"], dict(body.parameters))
    secret = values.pop("secret", None)
    row = update_trigger(call.cur, call.principal.tenant_id, current["id"], values)
    if row is None:
        raise NotFound(f"trigger {trigger_id} not found")
    if current["type"] in TIMER_TYPES:
        if body.parameters is not None:  # a new schedule: pending fires of the old one are dropped
            timers.reset_timer(call.cur, call.principal.tenant_id, row["id"])
        if row["enabled"] and (body.parameters is not None or body.enabled):
            tid = row["id"]
            call.after_commit.append(lambda: schedule_now(tid))
    if secret is not None:
        row = _store_secret(call, row, secret)
        values["secret"] = "(changed)" if secret else "(removed)"
    audit.record(
        call.cur,
        tenant_id=call.principal.tenant_id,
        actor=call.principal.actor,
        action="trigger.updated",
        entity_type="trigger",
        entity_id=row["id"],
        detail={"fields": sorted(values)},
    )
    return render(row)


@bp.route("/api/v1/triggers/{trigger_id}", methods=["DELETE"])
@endpoint(Permission.WRITE, response=Deleted)
def delete_trigger(call: Call, trigger_id: str) -> dict[str, Any]:
    """Delete a trigger and the rules that use it."""
    tid = path_id(trigger_id, "trigger")
    if not TRIGGERS.delete(call.cur, call.principal.tenant_id, tid):
        raise NotFound(f"trigger {trigger_id} not found")
    audit.record(
        call.cur,
        tenant_id=call.principal.tenant_id,
        actor=call.principal.actor,
        action="trigger.deleted",
        entity_type="trigger",
        entity_id=tid,
    )
    return {"deleted": tid}
