"""Executions: run an action directly, list and read them."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.api.context import Call, endpoint
from chalicelib.api.params import choice_param, id_param, page, path_id
from chalicelib.api.serialize import listing, pick
from chalicelib.core.auth import Permission, allowed
from chalicelib.db.executions import EXECUTION_FIELDS, EXECUTIONS, STATUSES
from chalicelib.executions.service import cancel_execution, describe_execution, run_action
from chalicelib.models.executions import NewExecution
from chalicelib.pipeline.events import trace_filter

bp = Blueprint(__name__)
ORDERS = frozenset({"asc", "desc"})


@bp.route("/api/v1/executions", methods=["GET"])
@endpoint(Permission.READ)
def list_executions(call: Call) -> dict[str, Any]:
    """Newest first; filters `status`, `action_ref`, `parent_execution_id`, `enforcement_id`, `trace` (one chain).

    A workflow's children (`parent_execution_id`) come oldest first, in the
    order its tasks ran, unless `order=desc` asks otherwise.
    """
    window = page(call)
    parent = id_param(call, "parent_execution_id")
    order = choice_param(call, "order", ORDERS) or ("asc" if parent is not None else "desc")
    rows, total = EXECUTIONS.list(
        call.cur,
        call.principal.tenant_id,
        limit=window.limit,
        offset=window.offset,
        where={
            "status": choice_param(call, "status", STATUSES),
            "action_ref": call.query("action_ref"),
            "parent_execution_id": parent,
            "enforcement_id": id_param(call, "enforcement_id"),
            "trace": trace_filter(call.query("trace")),
        },
        oldest_first=order == "asc",
    )
    return listing([pick(r, EXECUTION_FIELDS) for r in rows], total, window.limit, window.offset)


@bp.route("/api/v1/executions/{execution_id}", methods=["GET"])
@endpoint(Permission.READ)
def get_execution(call: Call, execution_id: str) -> dict[str, Any]:
    """One execution with its result (and, for a workflow, its tasks' states)."""
    row = describe_execution(call.cur, tenant_id=call.principal.tenant_id,
                             execution_id=path_id(execution_id, "execution"))
    return pick(row, row.keys())


@bp.route("/api/v1/executions", methods=["POST"])
@endpoint(Permission.EXECUTE, body=NewExecution, status=201)
def create_execution(call: Call) -> dict[str, Any]:
    """Run an action the tenant owns, or a system action; invalid parameters fail it at once."""
    body: NewExecution = call.body
    row = run_action(
        call.cur, tenant_id=call.principal.tenant_id, action_ref=body.action_ref, parameters=body.parameters,
        actor=call.principal.actor, created_by=call.principal.user_id, after_commit=call.after_commit,
    )
    return pick(row, EXECUTION_FIELDS)


@bp.route("/api/v1/executions/{execution_id}/cancel", methods=["POST"])
@endpoint(Permission.EXECUTE)
def cancel(call: Call, execution_id: str) -> dict[str, Any]:
    """Cancel: `canceled` at once if nothing runs yet, else `canceling` until the worker stops it; 409 if final."""
    row = cancel_execution(
        call.cur, tenant_id=call.principal.tenant_id, execution_id=path_id(execution_id, "execution"),
        actor=call.principal.actor, after_commit=call.after_commit, user_id=call.principal.user_id,
        may_cancel_any=allowed(call.principal.role, Permission.WRITE),
    )
    return pick(row, EXECUTION_FIELDS)
