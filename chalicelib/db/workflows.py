"""Workflows: what the workflow handler reads of a workflow execution and its children.

None of it writes `status` (only the lifecycle does): the handler records
which state machine execution runs a workflow and the items its
`with_items` tasks rendered. Worker-side statements run in system
transactions, so every query filters by tenant itself.
"""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from chalicelib.db.pool import Cursor

LOAD = """
SELECT e.id, e.tenant_id, e.action_ref, e.action_id, e.status, e.parameters, e.secret_parameters, e.workflow,
       e.workflow_items, e.sfn_execution, e.enforcement_id, e.parent_execution_id, e.started,
       ev.payload AS trigger_payload, ev.trigger_id, ev.id AS event_id, t.type AS trigger_type, t.ref AS trigger_ref
FROM attune.execution e
LEFT JOIN attune.enforcement en ON en.id = e.enforcement_id
LEFT JOIN attune.event ev ON ev.id = en.event_id
LEFT JOIN attune.trigger t ON t.id = ev.trigger_id
WHERE e.id = %(id)s AND e.tenant_id = %(tenant_id)s
"""
LOCK = "SELECT id FROM attune.execution WHERE id = %(id)s AND tenant_id = %(tenant_id)s FOR UPDATE"
# Tasks of one workflow start side by side (a Map's items); only the end (finish, fail, cancel) excludes them.
SHARE = "SELECT id FROM attune.execution WHERE id = %(id)s AND tenant_id = %(tenant_id)s FOR SHARE"
# Children oldest first: the latest of a (task, item) is the one that counts (retries make more).
CHILDREN = """
SELECT id, task_name, item_index, status, result, task_token, action_ref, created, started, finished
FROM attune.execution
WHERE tenant_id = %(tenant_id)s AND parent_execution_id = %(id)s
ORDER BY id
"""
# Active workflows with a state machine execution, quiet for a while: no change to them or any child.
QUIET = """
SELECT e.id, e.tenant_id, e.sfn_execution
FROM attune.execution e
WHERE e.workflow IS NOT NULL AND e.status IN ('running', 'paused', 'canceling') AND e.sfn_execution IS NOT NULL
  AND e.updated < clock_timestamp() - make_interval(secs => %(quiet_s)s)
  AND NOT EXISTS (SELECT 1 FROM attune.execution c
                  WHERE c.parent_execution_id = e.id
                    AND c.updated >= clock_timestamp() - make_interval(secs => %(quiet_s)s))
ORDER BY e.updated
LIMIT %(limit)s
"""
SET_SFN_EXECUTION = """
UPDATE attune.execution SET sfn_execution = %(arn)s WHERE id = %(id)s AND tenant_id = %(tenant_id)s
"""
SET_ITEMS = """
UPDATE attune.execution
SET workflow_items = coalesce(workflow_items, '{}'::jsonb) || jsonb_build_object(%(task)s::text, %(items)s::jsonb)
WHERE id = %(id)s AND tenant_id = %(tenant_id)s
"""


def load(cur: Cursor, tenant_id: int, execution_id: int) -> dict[str, Any] | None:
    """The workflow execution, with the event that started it when a rule did."""
    cur.execute(LOAD, {"id": execution_id, "tenant_id": tenant_id})
    return cur.fetchone()


def lock(cur: Cursor, tenant_id: int, execution_id: int) -> None:
    """Serialize the workflow's handlers (task, finish, fail, cancel) on its row for this transaction."""
    cur.execute(LOCK, {"id": execution_id, "tenant_id": tenant_id})


def share(cur: Cursor, tenant_id: int, execution_id: int) -> None:
    """Hold the workflow's row against its end (finish, fail, cancel) while a task's child is requested."""
    cur.execute(SHARE, {"id": execution_id, "tenant_id": tenant_id})


def children(cur: Cursor, tenant_id: int, execution_id: int) -> list[dict[str, Any]]:
    """Every child execution of a workflow, oldest first."""
    cur.execute(CHILDREN, {"id": execution_id, "tenant_id": tenant_id})
    return cur.fetchall()


def quiet(cur: Cursor, *, quiet_s: float, limit: int) -> list[dict[str, Any]]:
    """Active workflows nothing has moved for `quiet_s` seconds (the sweep asks Step Functions about them)."""
    cur.execute(QUIET, {"quiet_s": quiet_s, "limit": limit})
    return cur.fetchall()


def set_sfn_execution(cur: Cursor, tenant_id: int, execution_id: int, arn: str) -> None:
    """Remember the state machine execution that runs the workflow (cancel stops it)."""
    cur.execute(SET_SFN_EXECUTION, {"id": execution_id, "tenant_id": tenant_id, "arn": arn})


def set_items(cur: Cursor, tenant_id: int, execution_id: int, task: str, items: list[Any]) -> None:
    """Keep a with_items task's rendered items: each item's task reads its own from here."""
    cur.execute(SET_ITEMS, {"id": execution_id, "tenant_id": tenant_id, "task": task, "items": Jsonb(items)})
