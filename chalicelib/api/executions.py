"""Executions: run an action directly, list and read them."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.api.context import Call, endpoint
from chalicelib.api.params import PAGE, ChoiceParam, TextParam, id_filter, page, path_id
from chalicelib.api.serialize import listing, pick
from chalicelib.core.auth import Permission, allowed
from chalicelib.db.executions import EXECUTION_FIELDS, EXECUTIONS, STATUSES
from chalicelib.executions.service import cancel_execution, describe_execution, run_action
from chalicelib.models.executions import NewExecution
from chalicelib.models.responses import Execution, ExecutionList
from chalicelib.pipeline.events import MAX_TRACE_CHARS, trace_filter

bp = Blueprint(__name__)
ORDERS = frozenset({"asc", "desc"})
STATUS = ChoiceParam("status", "Only executions of this status.", choices=STATUSES)
ACTION_REF = TextParam("action_ref", "Only executions of this action.", max_length=200)
PARENT = id_filter("parent_execution_id", "the children of this workflow execution")
ENFORCEMENT = id_filter("enforcement_id", "the executions of this enforcement")
TRACE = TextParam("trace", "Only the executions of this chain (its trace id).", max_length=MAX_TRACE_CHARS,
                  pattern="^[A-Za-z0-9-]+$")
ORDER = ChoiceParam("order", "By id: desc (newest first) by default, asc for a workflow's children.",
                    choices=ORDERS)


@bp.route("/api/v1/executions", methods=["GET"])
@endpoint(Permission.READ, query=(*PAGE, STATUS, ACTION_REF, PARENT, ENFORCEMENT, TRACE, ORDER),
          response=ExecutionList)
def list_executions(call: Call) -> dict[str, Any]:
    """Newest first; filters `status`, `action_ref`, `parent_execution_id`, `enforcement_id`, `trace` (one chain).

    A workflow's children (`parent_execution_id`) come oldest first, in the
    order its tasks ran, unless `order=desc` asks otherwise.
    """
    window = page(call)
    parent = PARENT.read(call)
    order = ORDER.read(call) or ("asc" if parent is not None else "desc")
    rows, total = EXECUTIONS.list(
        call.cur,
        call.principal.tenant_id,
        limit=window.limit,
        offset=window.offset,
        where={
            "status": STATUS.read(call),
            "action_ref": ACTION_REF.read(call),
            "parent_execution_id": parent,
            "enforcement_id": ENFORCEMENT.read(call),
            "trace": trace_filter(TRACE.read(call)),
        },
        oldest_first=order == "asc",
    )
    return listing([pick(r, EXECUTION_FIELDS) for r in rows], total, window.limit, window.offset)


@bp.route("/api/v1/executions/{execution_id}", methods=["GET"])
@endpoint(Permission.READ, response=Execution)
def get_execution(call: Call, execution_id: str) -> dict[str, Any]:
    """One execution with its result (and, for a workflow, its tasks' states)."""
    row = describe_execution(call.cur, tenant_id=call.principal.tenant_id,
                             execution_id=path_id(execution_id, "execution"))
    return pick(row, row.keys())


@bp.route("/api/v1/executions", methods=["POST"])
@endpoint(Permission.EXECUTE, body=NewExecution, status=201, response=Execution, errors=(404, 422))
def create_execution(call: Call) -> dict[str, Any]:
    """Run an action the tenant owns, or a system action; invalid parameters fail it at once."""
    body: NewExecution = call.body
    row = run_action(
        call.cur, tenant_id=call.principal.tenant_id, action_ref=body.action_ref, parameters=body.parameters,
        actor=call.principal.actor, created_by=call.principal.user_id, after_commit=call.after_commit,
    )
    return pick(row, EXECUTION_FIELDS)


@bp.route("/api/v1/executions/{execution_id}/cancel", methods=["POST"])
@endpoint(Permission.EXECUTE, response=Execution, errors=(409,))
def cancel(call: Call, execution_id: str) -> dict[str, Any]:
    """Cancel: `canceled` at once if nothing runs yet, else `canceling` until the worker stops it; 409 if final."""
    row = cancel_execution(
        call.cur, tenant_id=call.principal.tenant_id, execution_id=path_id(execution_id, "execution"),
        actor=call.principal.actor, after_commit=call.after_commit, user_id=call.principal.user_id,
        may_cancel_any=allowed(call.principal.role, Permission.WRITE),
    )
    return pick(row, EXECUTION_FIELDS)
