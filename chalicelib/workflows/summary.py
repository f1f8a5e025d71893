"""What `GET /executions/{id}` adds for a workflow: each task's state, from its children.

One entry per task in definition order, so a user sees where a workflow is
without listing its children: `pending` (no child yet), or the state of its
newest children (any active -> that; else failed/canceled if any, else
succeeded), and the ids of every child it made (retries and items included).
"""

from __future__ import annotations

from typing import Any

from chalicelib.core import status
from chalicelib.db import workflows as db
from chalicelib.db.pool import Cursor
from chalicelib.workflows import context

# Among a task's newest children, the state shown: the first found in this order.
PRECEDENCE = (status.RUNNING, status.PAUSED, status.CANCELING, status.SCHEDULED, status.REQUESTED,
              status.FAILED, status.CANCELED, status.SUCCEEDED_WITH_ERRORS, status.SUCCEEDED)


def tasks(cur: Cursor, tenant_id: int, execution_id: int, snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    """The task summary of one workflow execution."""
    wf = context.definition(snapshot)
    children = db.children(cur, tenant_id, execution_id)
    newest = context.latest(children)
    summary = []
    for task in wf.tasks:
        ids = [int(c["id"]) for c in children if c.get("task_name") == task.name]
        states = {str(child["status"]) for (name, _), child in newest.items() if name == task.name}
        shown = next((s for s in PRECEDENCE if s in states), "pending")
        summary.append({"name": task.name, "status": shown, "executions": ids})
    return summary
