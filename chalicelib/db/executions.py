"""Executions: the table the whole pipeline writes to."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from chalicelib.core import status
from chalicelib.db.crud import Table
from chalicelib.db.pool import Cursor

EXECUTION_FIELDS = (
    "id",
    "action_ref",
    "status",
    "parameters",
    "result",
    "parent_execution_id",
    "enforcement_id",
    "retry_count",
    "created",
    "updated",
    "started",
    "finished",
)
# Every status, from the one place transitions are defined.
STATUSES = status.FINAL | status.ACTIVE
EXECUTIONS = Table(
    "execution",
    EXECUTION_FIELDS,
    frozenset({"status", "action_ref", "parent_execution_id", "enforcement_id"}),
)

INSERT_EXECUTION = """
INSERT INTO attune.execution (tenant_id, action_ref, action_id, status, parameters, created_by,
                              parent_execution_id, enforcement_id, pack_storage_key)
VALUES (%(tenant_id)s, %(action_ref)s, %(action_id)s, 'requested', %(parameters)s, %(created_by)s,
        %(parent_execution_id)s, %(enforcement_id)s, %(pack_storage_key)s)
RETURNING id, action_ref, status, parameters, result, parent_execution_id, enforcement_id,
          retry_count, created, updated, started, finished
"""


def insert_execution(
    cur: Cursor,
    *,
    tenant_id: int,
    action: dict[str, Any],
    parameters: dict[str, Any],
    created_by: int | None,
    parent_execution_id: int | None = None,
    enforcement_id: int | None = None,
    pack_storage_key: str | None = None,
) -> dict[str, Any]:
    """A new execution in status `requested`, pinned to the pack version current now."""
    cur.execute(
        INSERT_EXECUTION,
        {
            "tenant_id": tenant_id,
            "action_ref": action["ref"],
            "action_id": action["id"],
            "parameters": Jsonb(parameters),
            "created_by": created_by,
            "parent_execution_id": parent_execution_id,
            "enforcement_id": enforcement_id,
            "pack_storage_key": pack_storage_key,
        },
    )
    row = cur.fetchone()
    assert row is not None
    return row
