"""The worker's SQL: load what to run, claim, refuse, heartbeat, reap.

Every status change here is a compare-and-set on the current status, so a
redelivered message, a second worker, the reaper and a cancel can race freely:
exactly one of them moves the row, the others match nothing. All of it runs in
system transactions, so every query filters by tenant itself.
"""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from chalicelib.db.pool import Cursor

# The execution and the action it names: the tenant's own or a system action.
LOAD_FOR_RUN = """
SELECT e.id, e.tenant_id, e.status, e.action_ref, e.parameters, e.pack_storage_key,
       a.id AS action_id, a.runner_type, a.entry_point, a.code, a.timeout, a.parameters AS declared
FROM attune.execution e
LEFT JOIN attune.action a
       ON a.id = e.action_id AND (a.tenant_id = e.tenant_id OR a.tenant_id IS NULL)
WHERE e.id = %(id)s AND e.tenant_id = %(tenant_id)s
"""
# scheduled -> running: only a scheduled execution can be claimed, so only one claim wins.
CLAIM = """
UPDATE attune.execution
SET status = 'running', worker_id = %(worker_id)s, started = clock_timestamp(),
    heartbeat_at = clock_timestamp(), attempt = attempt + 1
WHERE id = %(id)s AND tenant_id = %(tenant_id)s AND status = 'scheduled'
RETURNING id, tenant_id, attempt, started
"""
# scheduled -> failed without running anything (no runner for the type, no such action...).
REFUSE = """
UPDATE attune.execution
SET status = 'failed', worker_id = %(worker_id)s, result = %(result)s, finished = clock_timestamp(),
    attempt = attempt + 1
WHERE id = %(id)s AND tenant_id = %(tenant_id)s AND status = 'scheduled'
RETURNING id
"""
# One statement beats for every execution this process runs; what comes back is
# still ours to run (`canceling` asks the action to stop), what does not was
# finished by someone else (reaper, cancel).
HEARTBEAT = """
UPDATE attune.execution e
SET heartbeat_at = clock_timestamp()
FROM unnest(%(tenant_ids)s::bigint[], %(ids)s::bigint[]) AS k(tenant_id, id)
WHERE e.id = k.id AND e.tenant_id = k.tenant_id AND e.status IN ('running', 'canceling')
RETURNING e.id, e.status
"""
# running -> failed for executions whose worker stopped beating. Only executions a
# worker claimed (worker_id and heartbeat_at set): a workflow's parent execution is
# `running` without a worker and must never be reaped. SKIP LOCKED lets two reapers
# run at once; the outer status test is the compare-and-set.
REAP_STALE = """
UPDATE attune.execution e
SET status = 'failed', finished = clock_timestamp(),
    result = jsonb_build_object(
        'exit_code', NULL, 'stdout', '', 'stderr', '', 'output', NULL,
        'error', 'worker lost: no heartbeat for '
                 || floor(extract(epoch FROM clock_timestamp() - stale.heartbeat_at))::bigint || 's')
FROM (
    SELECT id, heartbeat_at FROM attune.execution
    WHERE status = 'running' AND worker_id IS NOT NULL
      AND heartbeat_at < clock_timestamp() - make_interval(secs => %(stale_seconds)s)
    ORDER BY heartbeat_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
) AS stale
WHERE e.id = stale.id AND e.status = 'running'
RETURNING e.id, e.tenant_id, e.worker_id, e.result, stale.heartbeat_at
"""


def load_for_run(cur: Cursor, tenant_id: int, execution_id: int) -> dict[str, Any] | None:
    """The execution with its action's runner fields (action columns None when the action is gone)."""
    cur.execute(LOAD_FOR_RUN, {"id": execution_id, "tenant_id": tenant_id})
    return cur.fetchone()


def claim(cur: Cursor, tenant_id: int, execution_id: int, worker_id: str) -> dict[str, Any] | None:
    """Move a scheduled execution to running for `worker_id`; None when it was not scheduled."""
    cur.execute(CLAIM, {"id": execution_id, "tenant_id": tenant_id, "worker_id": worker_id})
    return cur.fetchone()


def refuse(cur: Cursor, tenant_id: int, execution_id: int, worker_id: str, result: dict[str, Any]) -> bool:
    """Fail a scheduled execution that cannot be run; whether it was still scheduled."""
    cur.execute(
        REFUSE, {"id": execution_id, "tenant_id": tenant_id, "worker_id": worker_id, "result": Jsonb(result)}
    )
    return cur.fetchone() is not None


def heartbeat(cur: Cursor, keys: list[tuple[int, int]]) -> dict[int, str]:
    """Beat for (tenant_id, execution_id) pairs; execution id -> status of those still running or canceling."""
    cur.execute(HEARTBEAT, {"tenant_ids": [t for t, _ in keys], "ids": [i for _, i in keys]})
    return {int(row["id"]): str(row["status"]) for row in cur.fetchall()}


def reap_stale(cur: Cursor, stale_seconds: float, limit: int) -> list[dict[str, Any]]:
    """Fail running executions without a heartbeat for `stale_seconds`; the rows failed."""
    cur.execute(REAP_STALE, {"stale_seconds": stale_seconds, "limit": limit})
    return cur.fetchall()
