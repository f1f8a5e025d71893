"""Rules: trigger → (criteria) → action, with templated parameters."""

from __future__ import annotations

import uuid
from typing import Any

from chalice import Blueprint

from chalicelib.api.context import Call, endpoint
from chalicelib.api.params import PAGE, TextParam, enabled_filter, id_filter, page, path_id
from chalicelib.api.serialize import listing, pick
from chalicelib.core.auth import Permission
from chalicelib.core.errors import NotFound
from chalicelib.core.jsondoc import ascii_digits
from chalicelib.core.templating import check_criteria, check_tree
from chalicelib.db import audit
from chalicelib.db.automation import (
    RULE_FIELDS,
    RULES,
    TRIGGERS,
    action_exists,
    insert_rule,
    update_rule,
)
from chalicelib.db.pool import Cursor
from chalicelib.models.automation import NewRule, RulePatch
from chalicelib.models.responses import Deleted, Rule, RuleList
from chalicelib.timers.ticker import schedule_now

bp = Blueprint(__name__)
TRIGGER_ID = id_filter("trigger_id", "the rules of this trigger")
ACTION_REF = TextParam("action_ref", "Only the rules that run this action.", max_length=200)
ENABLED = enabled_filter("rules")


# A reference to another tenant's trigger or action is a 404, exactly like a
# nonexistent one and like every other cross-tenant access: a different
# status would tell the caller that the id exists elsewhere.
def _check_action(cur: Cursor, tenant_id: int, action_ref: str) -> None:
    if not action_exists(cur, tenant_id, action_ref):
        raise NotFound(f"action_ref '{action_ref}' not found: no action of that ref you can run")


def _check_trigger(cur: Cursor, tenant_id: int, trigger_id: int) -> None:
    if TRIGGERS.get(cur, tenant_id, trigger_id) is None:
        raise NotFound(f"trigger_id {trigger_id} not found")


def _load(call: Call, rule_id: str) -> dict[str, Any]:
    tenant = call.principal.tenant_id
    row = RULES.get(call.cur, tenant, path_id(rule_id, "rule")) if ascii_digits(rule_id) else None
    if row is None and not ascii_digits(rule_id):
        row = RULES.get_by(call.cur, tenant, "ref", rule_id)
    if row is None:
        raise NotFound(f"rule {rule_id} not found")
    return row


@bp.route("/api/v1/rules", methods=["POST"])
@endpoint(Permission.WRITE, body=NewRule, status=201, response=Rule, errors=(404, 409))
def create_rule(call: Call) -> dict[str, Any]:
    """Create a rule; the trigger must be the tenant's and the action runnable by it."""
    body: NewRule = call.body
    tenant = call.principal.tenant_id
    _check_trigger(call.cur, tenant, body.trigger_id)
    _check_action(call.cur, tenant, body.action_ref)
    if body.criteria:
        check_criteria(body.criteria)
    check_tree(body.parameters, "parameters")
    values = body.model_dump()
    values["ref"] = body.ref or f"rule-{uuid.uuid4().hex[:8]}"
    row = insert_rule(call.cur, tenant, values)
    if row["enabled"]:  # a timer used by its first enabled rule fires from now on, without waiting for a tick
        call.after_commit.append(lambda: schedule_now(body.trigger_id))
    audit.record(
        call.cur,
        tenant_id=tenant,
        actor=call.principal.actor,
        action="rule.created",
        entity_type="rule",
        entity_id=row["id"],
        detail={"trigger_id": body.trigger_id, "action_ref": body.action_ref},
    )
    return pick(row, RULE_FIELDS)


@bp.route("/api/v1/rules", methods=["GET"])
@endpoint(Permission.READ, query=(*PAGE, TRIGGER_ID, ACTION_REF, ENABLED), response=RuleList)
def list_rules(call: Call) -> dict[str, Any]:
    """The tenant's rules, newest first; filters `trigger_id`, `action_ref`, `enabled`."""
    window = page(call)
    rows, total = RULES.list(
        call.cur,
        call.principal.tenant_id,
        limit=window.limit,
        offset=window.offset,
        where={
            "trigger_id": TRIGGER_ID.read(call),
            "action_ref": ACTION_REF.read(call),
            "enabled": ENABLED.read(call),
        },
    )
    return listing([pick(r, RULE_FIELDS) for r in rows], total, window.limit, window.offset)


@bp.route("/api/v1/rules/{rule_id}", methods=["GET"])
@endpoint(Permission.READ, response=Rule)
def get_rule(call: Call, rule_id: str) -> dict[str, Any]:
    """One rule, by id or ref."""
    return pick(_load(call, rule_id), RULE_FIELDS)


@bp.route("/api/v1/rules/{rule_id}", methods=["PATCH"])
@endpoint(Permission.WRITE, body=RulePatch, response=Rule)
def patch_rule(call: Call, rule_id: str) -> dict[str, Any]:
    """Enable, disable or change a rule; only the fields given change."""
    body: RulePatch = call.body
    current = _load(call, rule_id)
    values = body.model_dump(exclude_unset=True)
    if body.action_ref is not None:
        _check_action(call.cur, call.principal.tenant_id, body.action_ref)
    if body.criteria:
        check_criteria(body.criteria)
    if body.parameters is not None:
        check_tree(body.parameters, "parameters")
    row = update_rule(call.cur, call.principal.tenant_id, current["id"], values)
    if row is None:
        raise NotFound(f"rule {rule_id} not found")
    if body.enabled:
        call.after_commit.append(lambda: schedule_now(current["trigger_id"]))
    audit.record(
        call.cur,
        tenant_id=call.principal.tenant_id,
        actor=call.principal.actor,
        action="rule.updated",
        entity_type="rule",
        entity_id=row["id"],
        detail={"changed": values},
    )
    return pick(row, RULE_FIELDS)


@bp.route("/api/v1/rules/{rule_id}", methods=["DELETE"])
@endpoint(Permission.WRITE, response=Deleted)
def delete_rule(call: Call, rule_id: str) -> dict[str, Any]:
    """Delete a rule; its past enforcements go with it."""
    current = _load(call, rule_id)
    RULES.delete(call.cur, call.principal.tenant_id, current["id"])
    audit.record(
        call.cur,
        tenant_id=call.principal.tenant_id,
        actor=call.principal.actor,
        action="rule.deleted",
        entity_type="rule",
        entity_id=current["id"],
    )
    return {"deleted": current["id"]}
