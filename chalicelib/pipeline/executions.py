"""Requesting an execution: the one path used by the API, the rules engine and (later) workflows.

The execution is created `requested`, its parameters checked against the
action's schema, and then either failed at once (a missing required parameter
never reaches a worker) or moved to `scheduled` with a work message in the
outbox — all in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chalicelib.core import params, status
from chalicelib.db import audit
from chalicelib.db.actions import find_for_run
from chalicelib.db.executions import insert_execution
from chalicelib.db.pipeline import transition
from chalicelib.db.pool import Cursor
from chalicelib.models.messages import ExecutionMessage
from chalicelib.pipeline.outbox import Pending, enqueue

SCHEDULER_ACTOR = "service:executor"


@dataclass
class Requested:
    """What a request produced: the execution row and the messages to publish after commit."""

    execution: dict[str, Any]
    messages: list[Pending] = field(default_factory=list)

    @property
    def scheduled(self) -> bool:
        """Whether it went to a worker (False: failed validation at once)."""
        return bool(self.execution["status"] == status.SCHEDULED)


def request_execution(
    cur: Cursor,
    *,
    tenant_id: int,
    action: dict[str, Any],
    parameters: dict[str, Any],
    actor: str,
    created_by: int | None = None,
    enforcement_id: int | None = None,
    parent_execution_id: int | None = None,
) -> Requested:
    """Create, validate and schedule an execution of `action` (a row from `find_for_run`)."""
    final_params, problems = params.check(action["parameters"], parameters)
    row = insert_execution(
        cur,
        tenant_id=tenant_id,
        action=action,
        parameters=final_params if not problems else parameters,
        created_by=created_by,
        parent_execution_id=parent_execution_id,
        enforcement_id=enforcement_id,
        pack_storage_key=action.get("pack_storage_key"),
    )
    execution_id = row["id"]
    audit.record(
        cur,
        tenant_id=tenant_id,
        actor=actor,
        action="execution.created",
        entity_type="execution",
        entity_id=execution_id,
        detail={"action_ref": action["ref"]},
    )
    if problems:
        message = "; ".join(problems)
        transition(cur, tenant_id, execution_id, status.FAILED, {"error": message})
        audit.record(
            cur,
            tenant_id=tenant_id,
            actor=SCHEDULER_ACTOR,
            action="execution.failed",
            entity_type="execution",
            entity_id=execution_id,
            detail={"error": message, "stage": "validation"},
        )
        return Requested({**row, "status": status.FAILED, "result": {"error": message}})
    transition(cur, tenant_id, execution_id, status.SCHEDULED)
    audit.record(
        cur,
        tenant_id=tenant_id,
        actor=SCHEDULER_ACTOR,
        action="execution.scheduled",
        entity_type="execution",
        entity_id=execution_id,
    )
    pending = enqueue(
        cur, "work", ExecutionMessage(tenant_id=tenant_id, execution_id=execution_id).model_dump(exclude_none=True)
    )
    return Requested({**row, "status": status.SCHEDULED}, [pending])


def find_action(cur: Cursor, tenant_id: int, ref: str) -> dict[str, Any] | None:
    """The runnable action `ref` names for the tenant (its own before a system one)."""
    return find_for_run(cur, tenant_id, ref)


__all__ = ["Requested", "find_action", "request_execution"]
