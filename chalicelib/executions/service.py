"""What the executions API does, behind thin views: run an action, cancel an execution.

Each function works in the caller's tenant transaction and registers the
sends that must wait for its commit on `after_commit` (the endpoint runs
them once the transaction has committed, never for a rolled-back change).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from chalicelib.core.errors import Forbidden, NotFound, Unprocessable
from chalicelib.db import executions as db
from chalicelib.db.actions import find_for_run
from chalicelib.db.pool import Cursor
from chalicelib.executions import lifecycle
from chalicelib.executions.request import request_execution
from chalicelib.pipeline.outbox import publish
from chalicelib.workflows import summary

AfterCommit = list[Callable[[], None]]


def run_action(
    cur: Cursor,
    *,
    tenant_id: int,
    action_ref: str,
    parameters: dict[str, Any],
    actor: str,
    created_by: int | None,
    after_commit: AfterCommit,
) -> dict[str, Any]:
    """Request an execution of an action the tenant owns, or of a system action; the new execution.

    404 when the tenant cannot see the action, 422 when it is disabled;
    invalid parameters are not an error here: the execution fails at once
    with a message naming each problem.
    """
    action = find_for_run(cur, tenant_id, action_ref)
    if action is None:
        raise NotFound(f"action {action_ref!r} not found")
    if not action["enabled"]:
        raise Unprocessable(f"action {action_ref!r} is disabled")
    requested = request_execution(
        cur, tenant_id=tenant_id, action=action, parameters=parameters, actor=actor, created_by=created_by
    )
    after_commit.append(functools.partial(publish, requested.messages))
    return requested.execution


def describe_execution(cur: Cursor, *, tenant_id: int, execution_id: int) -> dict[str, Any]:
    """One execution as the API shows it; a workflow's also says where each of its tasks is (`tasks`)."""
    row = db.EXECUTIONS_WITH_WORKFLOW.get(cur, tenant_id, execution_id)
    if row is None:
        raise NotFound(f"execution {execution_id} not found")
    shown = {name: row.get(name) for name in db.EXECUTION_FIELDS}
    if row.get("workflow") is not None:
        shown["tasks"] = summary.tasks(cur, tenant_id, execution_id, row["workflow"])
    return shown


def cancel_execution(
    cur: Cursor, *, tenant_id: int, execution_id: int, actor: str, after_commit: AfterCommit,
    user_id: int | None = None, may_cancel_any: bool = True,
) -> dict[str, Any]:
    """Cancel; the execution as it is now (`canceled`, or `canceling` until its worker has stopped the action).

    Editors and admins cancel any of the tenant's executions; an executor only
    those it requested itself (403 otherwise; 404 for another tenant's).
    """
    if not may_cancel_any and db.created_by(cur, tenant_id, execution_id) != user_id:
        if db.load_status(cur, tenant_id, execution_id) is None:
            raise NotFound(f"execution {execution_id} not found")
        raise Forbidden("an executor may cancel only the executions it requested; editor or admin may cancel any")
    moved = lifecycle.cancel(cur, tenant_id, execution_id, actor=actor)
    after_commit.append(functools.partial(publish, moved.messages))
    return moved.row
