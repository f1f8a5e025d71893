"""Executions: run an action directly, list and read them."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.api.context import Call, endpoint
from chalicelib.api.params import choice_param, id_param, page, path_id
from chalicelib.api.serialize import listing, pick
from chalicelib.core.auth import Permission
from chalicelib.core.errors import NotFound, Unprocessable
from chalicelib.db.executions import EXECUTION_FIELDS, EXECUTIONS, STATUSES
from chalicelib.models.executions import NewExecution
from chalicelib.pipeline.executions import find_action, request_execution
from chalicelib.pipeline.outbox import publish

bp = Blueprint(__name__)


@bp.route("/api/v1/executions", methods=["GET"])
@endpoint(Permission.READ)
def list_executions(call: Call) -> dict[str, Any]:
    """Newest first; filters `status`, `action_ref`, `parent_execution_id`, `enforcement_id`."""
    window = page(call)
    rows, total = EXECUTIONS.list(
        call.cur,
        call.principal.tenant_id,
        limit=window.limit,
        offset=window.offset,
        where={
            "status": choice_param(call, "status", STATUSES),
            "action_ref": call.query("action_ref"),
            "parent_execution_id": id_param(call, "parent_execution_id"),
            "enforcement_id": id_param(call, "enforcement_id"),
        },
    )
    return listing([pick(r, EXECUTION_FIELDS) for r in rows], total, window.limit, window.offset)


@bp.route("/api/v1/executions/{execution_id}", methods=["GET"])
@endpoint(Permission.READ)
def get_execution(call: Call, execution_id: str) -> dict[str, Any]:
    """One execution with its result."""
    row = EXECUTIONS.get(call.cur, call.principal.tenant_id, path_id(execution_id, "execution"))
    if row is None:
        raise NotFound(f"execution {execution_id} not found")
    return pick(row, EXECUTION_FIELDS)


@bp.route("/api/v1/executions", methods=["POST"])
@endpoint(Permission.EXECUTE, body=NewExecution, status=201)
def create_execution(call: Call) -> dict[str, Any]:
    """Run an action the tenant owns, or a system action; invalid parameters fail it at once."""
    body: NewExecution = call.body
    tenant = call.principal.tenant_id
    action = find_action(call.cur, tenant, body.action_ref)
    if action is None:
        raise NotFound(f"action {body.action_ref!r} not found")
    if not action["enabled"]:
        raise Unprocessable(f"action {body.action_ref!r} is disabled")
    requested = request_execution(
        call.cur,
        tenant_id=tenant,
        action=action,
        parameters=body.parameters,
        actor=call.principal.actor,
        created_by=call.principal.user_id,
    )
    call.after_commit.append(lambda: publish(requested.messages))
    return pick(requested.execution, EXECUTION_FIELDS)
