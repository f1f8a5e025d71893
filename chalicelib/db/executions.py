"""Executions: every statement that reads for a run or writes `attune.execution`.

The lifecycle module (chalicelib/executions) is the only caller of the
writing statements; each status change is a compare-and-set whose allowed
source states are a parameter taken from `core.status.MOVES`, never written
here, so a redelivered message, a second worker, the reaper and a cancel can
race freely: exactly one of them moves the row, the others match nothing.
Worker-side statements run in system transactions, so every query filters by
tenant itself.
"""

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
    "attempts",
    "task_name",
    "item_index",
    "trace",
    "depth",
    "created",
    "updated",
    "started",
    "finished",
)
# Every status, from the one place transitions are defined.
STATUSES = status.ALL
EXECUTIONS = Table(
    "execution",
    EXECUTION_FIELDS,
    frozenset({"status", "action_ref", "parent_execution_id", "enforcement_id", "trace"}),
)
# One execution with the workflow it runs (lists leave that out).
EXECUTIONS_WITH_WORKFLOW = Table("execution", (*EXECUTION_FIELDS, "workflow"))

# What every move returns: enough for its audit entry, its notification, the
# enforcement it follows and the callback it owes; `listened` says whether any
# WebSocket client of the tenant is connected (no notification otherwise).
_RETURNED = """
RETURNING e.id, e.tenant_id, e.action_ref, e.status, e.parameters, e.result, e.parent_execution_id,
          e.enforcement_id, e.retry_count, e.attempts, e.attempt, e.worker_id, e.task_token, e.created,
          e.updated, e.started, e.finished, e.task_name, e.item_index, e.trace, e.depth,
          e.workflow IS NOT NULL AS is_workflow,
          EXISTS (SELECT 1 FROM attune.ws_connection c WHERE c.tenant_id = e.tenant_id) AS listened
"""

# The chain (trace, depth) the request gives, else a new trace at depth 0 (a user's request).
INSERT_EXECUTION = """
INSERT INTO attune.execution AS e (tenant_id, action_ref, action_id, status, parameters, created_by,
                              parent_execution_id, enforcement_id, pack_storage_key, task_token,
                              workflow, task_name, item_index, trace, depth)
VALUES (%(tenant_id)s, %(action_ref)s, %(action_id)s, 'requested', %(parameters)s, %(created_by)s,
        %(parent_execution_id)s, %(enforcement_id)s, %(pack_storage_key)s, %(task_token)s,
        %(workflow)s, %(task_name)s, %(item_index)s, coalesce(%(trace)s, gen_random_uuid()::text),
        coalesce(%(depth)s, 0))
ON CONFLICT (task_token) WHERE task_token IS NOT NULL DO NOTHING
""" + _RETURNED
STORE_SEALED_PARAMETERS = """
UPDATE attune.execution SET secret_parameters = %(sealed)s WHERE id = %(id)s AND tenant_id = %(tenant_id)s
"""
# The generic compare-and-set: dispatch, reject, refuse, complete, cancel, reap.
MOVE = """
UPDATE attune.execution e
SET status = %(to)s,
    result = coalesce(%(result)s, e.result),
    finished = CASE WHEN %(final)s THEN clock_timestamp() ELSE e.finished END,
    worker_id = coalesce(%(worker_id)s, e.worker_id),
    attempt = e.attempt + %(attempts)s,
    attempts = CASE WHEN %(final)s AND e.started IS NOT NULL AND e.status IN ('running', 'canceling')
                    THEN e.attempts || jsonb_build_array(jsonb_build_object(
                        'attempt', e.attempt, 'started', e.started, 'finished', clock_timestamp(),
                        'exit_code', %(result)s::jsonb -> 'exit_code', 'error', %(result)s::jsonb -> 'error'))
                    ELSE e.attempts END
WHERE e.id = %(id)s AND e.tenant_id = %(tenant_id)s AND e.status = ANY(%(sources)s)
""" + _RETURNED
# A workflow starts without a worker: its state machine runs it (never reaped: no worker_id).
START = """
UPDATE attune.execution e
SET status = %(to)s, started = clock_timestamp()
WHERE e.id = %(id)s AND e.tenant_id = %(tenant_id)s AND e.status = ANY(%(sources)s)
""" + _RETURNED
# A claim also takes the worker's name, starts the clock and the heartbeat.
CLAIM = """
UPDATE attune.execution e
SET status = %(to)s, worker_id = %(worker_id)s, started = clock_timestamp(),
    heartbeat_at = clock_timestamp(), attempt = e.attempt + 1
WHERE e.id = %(id)s AND e.tenant_id = %(tenant_id)s AND e.status = ANY(%(sources)s)
""" + _RETURNED
# A retry records the attempt that failed, forgets its worker, clock and result, and counts itself.
RETRY = """
UPDATE attune.execution e
SET status = %(to)s, worker_id = NULL, heartbeat_at = NULL, started = NULL, result = NULL,
    retry_count = e.retry_count + 1,
    attempts = e.attempts || jsonb_build_array(jsonb_build_object(
        'attempt', e.attempt, 'started', e.started, 'finished', clock_timestamp(),
        'exit_code', %(exit_code)s::jsonb, 'error', %(error)s::text, 'retry_in_s', %(delay)s::float8))
WHERE e.id = %(id)s AND e.tenant_id = %(tenant_id)s AND e.status = ANY(%(sources)s)
""" + _RETURNED
# The execution and the action it names: the tenant's own or a system action.
LOAD_FOR_RUN = """
SELECT e.id, e.tenant_id, e.status, e.action_ref, e.parameters, e.secret_parameters, e.pack_storage_key,
       a.id AS action_id, a.runner_type, a.entry_point, a.code, a.timeout, a.retry, a.http_config, a.image,
       a.parameters AS declared
FROM attune.execution e
LEFT JOIN attune.action a
       ON a.id = e.action_id AND (a.tenant_id = e.tenant_id OR a.tenant_id IS NULL)
WHERE e.id = %(id)s AND e.tenant_id = %(tenant_id)s
"""
OUTCOME = "SELECT result, task_name FROM attune.execution WHERE id = %(id)s AND tenant_id = %(tenant_id)s"
IS_RUNNING = """
SELECT 1 FROM attune.execution WHERE id = %(id)s AND tenant_id = %(tenant_id)s AND status = 'running'
"""
CREATED_BY = "SELECT created_by FROM attune.execution WHERE id = %(id)s AND tenant_id = %(tenant_id)s"
RETRY_COUNT = "SELECT retry_count FROM attune.execution WHERE id = %(id)s AND tenant_id = %(tenant_id)s"
# With what a cancel must know: whether something runs it that must be stopped first.
LOAD_STATUS = """
SELECT id, status, worker_id, workflow IS NOT NULL AS is_workflow
FROM attune.execution WHERE id = %(id)s AND tenant_id = %(tenant_id)s
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
# Executions a worker claimed whose beat stopped. Only executions with a worker
# (worker_id and heartbeat_at set): a workflow's parent is `running` without one
# and must never be reaped. SKIP LOCKED lets two reapers run at once; the move
# itself is the compare-and-set.
STALE = """
SELECT e.id, e.tenant_id, e.status, e.worker_id, e.heartbeat_at, e.retry_count, a.retry AS retry_policy,
       floor(extract(epoch FROM clock_timestamp() - e.heartbeat_at))::bigint AS silent_s
FROM attune.execution e
LEFT JOIN attune.action a ON a.id = e.action_id
WHERE e.status = ANY(%(sources)s) AND e.worker_id IS NOT NULL
  AND e.heartbeat_at < clock_timestamp() - make_interval(secs => %(stale_seconds)s)
ORDER BY e.heartbeat_at
LIMIT %(limit)s
FOR UPDATE OF e SKIP LOCKED
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
    task_token: str | None = None,
    workflow: dict[str, Any] | None = None,
    task_name: str | None = None,
    item_index: int | None = None,
    trace: str | None = None,
    depth: int | None = None,
) -> dict[str, Any] | None:
    """A new execution in status `requested`, pinned to the pack version current now.

    None when an execution with this task token exists already: a workflow's
    task message delivered twice creates its child once.
    """
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
            "task_token": task_token,
            "workflow": None if workflow is None else Jsonb(workflow),
            "task_name": task_name,
            "item_index": item_index,
            "trace": trace,
            "depth": depth,
        },
    )
    return cur.fetchone()


def set_secret_parameters(cur: Cursor, tenant_id: int, execution_id: int, sealed: bytes) -> None:
    """Store the sealed values of the parameters declared `secret` (never readable through the API)."""
    cur.execute(STORE_SEALED_PARAMETERS, {"id": execution_id, "tenant_id": tenant_id, "sealed": sealed})


def move(
    cur: Cursor,
    tenant_id: int,
    execution_id: int,
    *,
    to: str,
    sources: list[str],
    result: dict[str, Any] | None = None,
    worker_id: str | None = None,
    count_attempt: bool = False,
) -> dict[str, Any] | None:
    """Compare-and-set `status` to `to` from one of `sources`; the moved row, or None when it was not there."""
    cur.execute(
        MOVE,
        {
            "id": execution_id,
            "tenant_id": tenant_id,
            "to": to,
            "sources": sources,
            "final": to in status.FINAL,
            "result": None if result is None else Jsonb(result),
            "worker_id": worker_id,
            "attempts": 1 if count_attempt else 0,
        },
    )
    return cur.fetchone()


def start(cur: Cursor, tenant_id: int, execution_id: int, *, sources: list[str]) -> dict[str, Any] | None:
    """Move a workflow to running and start its clock; None when it was no longer requested."""
    cur.execute(START, {"id": execution_id, "tenant_id": tenant_id, "to": status.RUNNING, "sources": sources})
    return cur.fetchone()


def claim(
    cur: Cursor, tenant_id: int, execution_id: int, *, sources: list[str], worker_id: str
) -> dict[str, Any] | None:
    """Move to running for `worker_id`; None when another claim (or a cancel) won."""
    cur.execute(
        CLAIM,
        {"id": execution_id, "tenant_id": tenant_id, "to": status.RUNNING, "sources": sources, "worker_id": worker_id},
    )
    return cur.fetchone()


def retry(
    cur: Cursor, tenant_id: int, execution_id: int, *, sources: list[str],
    exit_code: int | None = None, error: str | None = None, delay_s: float = 0,
) -> dict[str, Any] | None:
    """Move back to scheduled for another attempt, recording the one that failed; None when it had moved on."""
    cur.execute(RETRY, {"id": execution_id, "tenant_id": tenant_id, "to": status.SCHEDULED, "sources": sources,
                        "exit_code": Jsonb(exit_code), "error": error, "delay": delay_s})
    return cur.fetchone()


def created_by(cur: Cursor, tenant_id: int, execution_id: int) -> int | None:
    """The user who requested the execution (None: a rule, a workflow, or no such execution)."""
    cur.execute(CREATED_BY, {"id": execution_id, "tenant_id": tenant_id})
    row = cur.fetchone()
    return None if row is None or row["created_by"] is None else int(row["created_by"])


def retry_count(cur: Cursor, tenant_id: int, execution_id: int) -> int:
    """How many times the execution was retried so far (0 for an unknown one)."""
    cur.execute(RETRY_COUNT, {"id": execution_id, "tenant_id": tenant_id})
    row = cur.fetchone()
    return 0 if row is None else int(row["retry_count"])


def load_for_run(cur: Cursor, tenant_id: int, execution_id: int) -> dict[str, Any] | None:
    """The execution with its action's runner fields (action columns None when the action is gone)."""
    cur.execute(LOAD_FOR_RUN, {"id": execution_id, "tenant_id": tenant_id})
    return cur.fetchone()


def outcome(cur: Cursor, tenant_id: int, execution_id: int) -> dict[str, Any] | None:
    """An execution's result and, for a workflow's child, its task name."""
    cur.execute(OUTCOME, {"id": execution_id, "tenant_id": tenant_id})
    return cur.fetchone()


def is_running(cur: Cursor, tenant_id: int, execution_id: int) -> bool:
    """Whether the execution is running now: an action's token is honoured only then."""
    cur.execute(IS_RUNNING, {"id": execution_id, "tenant_id": tenant_id})
    return cur.fetchone() is not None


def load_status(cur: Cursor, tenant_id: int, execution_id: int) -> str | None:
    """The execution's current status, None when the tenant has no such execution."""
    row = load_state(cur, tenant_id, execution_id)
    return None if row is None else str(row["status"])


def load_state(cur: Cursor, tenant_id: int, execution_id: int) -> dict[str, Any] | None:
    """Status, worker and whether it is a workflow; None when the tenant has no such execution."""
    cur.execute(LOAD_STATUS, {"id": execution_id, "tenant_id": tenant_id})
    return cur.fetchone()


def heartbeat(cur: Cursor, keys: list[tuple[int, int]]) -> dict[int, str]:
    """Beat for (tenant_id, execution_id) pairs; execution id -> status of those still running or canceling."""
    cur.execute(HEARTBEAT, {"tenant_ids": [t for t, _ in keys], "ids": [i for _, i in keys]})
    return {int(row["id"]): str(row["status"]) for row in cur.fetchall()}


def stale(cur: Cursor, *, sources: list[str], stale_seconds: float, limit: int) -> list[dict[str, Any]]:
    """Lock up to `limit` claimed executions in `sources` without a heartbeat for `stale_seconds`."""
    cur.execute(STALE, {"sources": sources, "stale_seconds": stale_seconds, "limit": limit})
    return cur.fetchall()
