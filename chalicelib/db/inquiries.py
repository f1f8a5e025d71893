"""Inquiries: every statement that reads or writes `attune.inquiry`.

An inquiry's status moves only forward, from `pending`, and each move is a
compare-and-set on it: a response and the expiry can race freely, exactly
one wins. The task token a workflow waits on is never here: it stays on the
inquiry's execution, answered by the lifecycle's callback.
"""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from chalicelib.db.pool import Cursor

INQUIRY_FIELDS = """
i.id, i.tenant_id, i.execution_id, i.workflow_execution_id, i.status, i.prompt, i.schema, i.roles,
i.expires_at AS timeout_at, i.response, i.default_response, i.responded_by, i.responded_at, i.created,
u.username AS responded_by_username
"""
INSERT = """
INSERT INTO attune.inquiry (tenant_id, execution_id, workflow_execution_id, status, prompt, schema, roles,
                            default_response, expires_at)
VALUES (%(tenant_id)s, %(execution_id)s, %(workflow_execution_id)s, 'pending', %(prompt)s, %(schema)s,
        %(roles)s, %(default)s, clock_timestamp() + make_interval(secs => %(ttl)s))
ON CONFLICT (execution_id) DO NOTHING
RETURNING id, tenant_id, execution_id, workflow_execution_id, status, prompt, schema, roles,
          expires_at AS timeout_at, created
"""
GET = """
SELECT """ + INQUIRY_FIELDS + """
FROM attune.inquiry i LEFT JOIN attune.app_user u ON u.id = i.responded_by
WHERE i.id = %(id)s AND i.tenant_id = %(tenant_id)s
"""
GET_FOR_UPDATE = """
SELECT i.id, i.tenant_id, i.execution_id, i.workflow_execution_id, i.status, i.schema, i.roles,
       i.default_response, i.expires_at, i.expires_at <= clock_timestamp() AS due
FROM attune.inquiry i
WHERE i.tenant_id = %(tenant_id)s AND (i.id = %(id)s OR i.execution_id = %(execution_id)s)
FOR UPDATE
"""
LIST = """
SELECT """ + INQUIRY_FIELDS + """, count(*) OVER () AS total
FROM attune.inquiry i LEFT JOIN attune.app_user u ON u.id = i.responded_by
WHERE i.tenant_id = %(tenant_id)s
  AND (%(status)s::text IS NULL OR i.status = %(status)s::text)
  AND (%(execution_id)s::bigint IS NULL OR i.execution_id = %(execution_id)s::bigint
       OR i.workflow_execution_id = %(execution_id)s::bigint)
ORDER BY i.id DESC
LIMIT %(limit)s OFFSET %(offset)s
"""
RESPOND = """
UPDATE attune.inquiry
SET status = 'responded', response = %(response)s, responded_by = %(user_id)s, responded_at = clock_timestamp()
WHERE id = %(id)s AND tenant_id = %(tenant_id)s AND status = 'pending'
RETURNING id, execution_id, workflow_execution_id, responded_at
"""
EXPIRE = """
UPDATE attune.inquiry
SET status = 'expired'
WHERE tenant_id = %(tenant_id)s AND execution_id = %(execution_id)s AND status = 'pending'
RETURNING id, execution_id, workflow_execution_id, default_response
"""
EXPIRE_OF_WORKFLOW = """
UPDATE attune.inquiry
SET status = 'expired'
WHERE tenant_id = %(tenant_id)s AND workflow_execution_id = %(workflow_execution_id)s AND status = 'pending'
RETURNING id, execution_id
"""
PENDING_OF_WORKFLOW = """
SELECT count(*) AS n FROM attune.inquiry
WHERE tenant_id = %(tenant_id)s AND workflow_execution_id = %(workflow_execution_id)s AND status = 'pending'
"""


def insert(
    cur: Cursor, *, tenant_id: int, execution_id: int, workflow_execution_id: int | None, prompt: str,
    schema: dict[str, Any], roles: list[str], default: Any, ttl: float,
) -> dict[str, Any] | None:
    """A pending inquiry of `execution_id`, due to expire in `ttl` seconds; None when it has one already."""
    cur.execute(INSERT, {
        "tenant_id": tenant_id, "execution_id": execution_id, "workflow_execution_id": workflow_execution_id,
        "prompt": prompt, "schema": Jsonb(schema), "roles": roles,
        "default": None if default is None else Jsonb(default), "ttl": ttl,
    })
    return cur.fetchone()


def get(cur: Cursor, tenant_id: int, inquiry_id: int) -> dict[str, Any] | None:
    """One inquiry of the tenant, with who answered it."""
    cur.execute(GET, {"tenant_id": tenant_id, "id": inquiry_id})
    return cur.fetchone()


def lock(cur: Cursor, tenant_id: int, *, inquiry_id: int | None = None,
         execution_id: int | None = None) -> dict[str, Any] | None:
    """The inquiry (by its id or its execution's), locked until the transaction ends."""
    cur.execute(GET_FOR_UPDATE, {"tenant_id": tenant_id, "id": inquiry_id, "execution_id": execution_id})
    return cur.fetchone()


def list_page(cur: Cursor, tenant_id: int, *, status: str | None, execution_id: int | None,
              limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """A page of the tenant's inquiries, newest first, and how many match in all."""
    cur.execute(LIST, {"tenant_id": tenant_id, "status": status, "execution_id": execution_id,
                       "limit": limit, "offset": offset})
    rows = cur.fetchall()
    return rows, int(rows[0]["total"]) if rows else 0


def respond(cur: Cursor, tenant_id: int, inquiry_id: int, response: Any, user_id: int | None) -> dict[str, Any] | None:
    """pending -> responded; None when it was no longer pending."""
    cur.execute(RESPOND, {"tenant_id": tenant_id, "id": inquiry_id, "response": Jsonb(response),
                          "user_id": user_id})
    return cur.fetchone()


def expire(cur: Cursor, tenant_id: int, execution_id: int) -> dict[str, Any] | None:
    """The inquiry of `execution_id`: pending -> expired; None when it was not pending (or there is none)."""
    cur.execute(EXPIRE, {"tenant_id": tenant_id, "execution_id": execution_id})
    return cur.fetchone()


def expire_of_workflow(cur: Cursor, tenant_id: int, workflow_execution_id: int) -> list[dict[str, Any]]:
    """Every pending inquiry of a workflow -> expired (the workflow ended or was canceled)."""
    cur.execute(EXPIRE_OF_WORKFLOW, {"tenant_id": tenant_id, "workflow_execution_id": workflow_execution_id})
    return cur.fetchall()


def pending_of_workflow(cur: Cursor, tenant_id: int, workflow_execution_id: int) -> int:
    """How many inquiries of a workflow still wait: it is `paused` while any does."""
    cur.execute(PENDING_OF_WORKFLOW, {"tenant_id": tenant_id, "workflow_execution_id": workflow_execution_id})
    row = cur.fetchone()
    return int(row["n"]) if row else 0
