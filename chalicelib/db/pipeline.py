"""SQL of the event pipeline: triggers, events, enforcements (execution SQL is in db/executions.py)."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from chalicelib.db.automation import EVENT_ENFORCED_BY_RULE
from chalicelib.db.crud import Table
from chalicelib.db.pool import Cursor

# Events as the API shows them: what fired, and the chain it belongs to (docs/sensors.md, "Chains").
EVENT_FIELDS = (
    "id", "trigger_id", "payload", "created", "trace", "depth", "status", "reason", "source_execution_id",
)
EVENTS = Table("event", EVENT_FIELDS, frozenset({"trigger_id", "rule_id", "trace", "status"}),
               filter_conditions={"rule_id": EVENT_ENFORCED_BY_RULE})

# The rules engine's transaction need not wait for its WAL flush (asynchronous commit): if the
# database server itself crashes before the flush, the transaction is lost whole, including the
# event's outbox acknowledgement, so the relay re-sends the event and it is evaluated again; a
# later synchronous commit (the worker's claim of the execution it made) flushes it first. An
# application crash loses nothing either way. What a user was answered (the webhook's event) and
# what a worker claims or completes stay synchronous.
ASYNC_COMMIT = "SET LOCAL synchronous_commit = off"
FIND_WEBHOOK_TRIGGER = """
SELECT id, tenant_id, type, enabled, webhook_secret FROM attune.trigger WHERE id = %(id)s
"""
# A trace given is the emitting execution's; none starts a new one.
INSERT_EVENT = """
INSERT INTO attune.event (tenant_id, trigger_id, payload, trace, depth, status, reason, source_execution_id)
VALUES (%(tenant_id)s, %(trigger_id)s, %(payload)s, coalesce(%(trace)s, gen_random_uuid()::text), %(depth)s,
        %(status)s, %(reason)s, %(source_execution_id)s)
RETURNING id, trigger_id, payload, created, trace, depth, status, reason, source_execution_id
"""
LOAD_EVENT = """
SELECT e.id, e.tenant_id, e.trigger_id, e.payload, e.created, e.trace, e.depth,
       t.type AS trigger_type, t.ref AS trigger_ref
FROM attune.event e JOIN attune.trigger t ON t.id = e.trigger_id
WHERE e.id = %(id)s AND e.tenant_id = %(tenant_id)s
"""
ENABLED_RULES = """
SELECT id, ref, action_ref, criteria, parameters, notify_on_trigger FROM attune.rule
WHERE tenant_id = %(tenant_id)s AND trigger_id = %(trigger_id)s AND enabled
ORDER BY id
"""
INSERT_ENFORCEMENT = """
INSERT INTO attune.enforcement (tenant_id, rule_id, event_id, trigger_id, status, error)
VALUES (%(tenant_id)s, %(rule_id)s, %(event_id)s, %(trigger_id)s, %(status)s, %(error)s)
ON CONFLICT (rule_id, event_id) DO NOTHING
RETURNING id
"""
SET_ENFORCEMENT_STATUS = """
UPDATE attune.enforcement SET status = %(status)s, error = %(error)s WHERE id = %(id)s
"""
# An enforcement follows its execution: `scheduled` once dispatched, then its final status.
# Only from a non-final state, so a late or redelivered move never rewrites the outcome.
FOLLOW_EXECUTION = """
UPDATE attune.enforcement SET status = %(status)s, error = coalesce(%(error)s, error)
WHERE id = %(id)s AND tenant_id = %(tenant_id)s AND status IN ('created', 'scheduled')
"""


# The chain an action's event continues: the trace and depth of the execution whose token emitted it.
EXECUTION_CHAIN = """
SELECT id, trace, depth FROM attune.execution WHERE id = %(id)s AND tenant_id = %(tenant_id)s
"""


def commit_asynchronously(cur: Cursor) -> None:
    """Let this transaction's commit return before its WAL is flushed (see ASYNC_COMMIT for when that is safe)."""
    cur.execute(ASYNC_COMMIT)


def find_trigger(cur: Cursor, trigger_id: int) -> dict[str, Any] | None:
    """A trigger by id across tenants (a webhook call names no tenant)."""
    cur.execute(FIND_WEBHOOK_TRIGGER, {"id": trigger_id})
    return cur.fetchone()


def insert_event(
    cur: Cursor,
    tenant_id: int,
    trigger_id: int,
    payload: Any,
    *,
    trace: str | None = None,
    depth: int = 0,
    reason: str | None = None,
    source_execution_id: int | None = None,
) -> dict[str, Any]:
    """Store what fired; with a `reason` it is stored `suppressed` (never evaluated)."""
    cur.execute(
        INSERT_EVENT,
        {
            "tenant_id": tenant_id, "trigger_id": trigger_id, "payload": Jsonb(payload), "trace": trace,
            "depth": depth, "status": "accepted" if reason is None else "suppressed", "reason": reason,
            "source_execution_id": source_execution_id,
        },
    )
    row = cur.fetchone()
    assert row is not None
    return row


def execution_chain(cur: Cursor, tenant_id: int, execution_id: int) -> dict[str, Any] | None:
    """The trace and depth of a tenant's execution (None: no such execution)."""
    cur.execute(EXECUTION_CHAIN, {"id": execution_id, "tenant_id": tenant_id})
    return cur.fetchone()


def load_event(cur: Cursor, tenant_id: int, event_id: int) -> dict[str, Any] | None:
    """An event with its trigger's type and ref."""
    cur.execute(LOAD_EVENT, {"id": event_id, "tenant_id": tenant_id})
    return cur.fetchone()


def enabled_rules(cur: Cursor, tenant_id: int, trigger_id: int) -> list[dict[str, Any]]:
    """The rules an event of this trigger is evaluated against."""
    cur.execute(ENABLED_RULES, {"tenant_id": tenant_id, "trigger_id": trigger_id})
    return cur.fetchall()


def insert_enforcement(
    cur: Cursor, *, tenant_id: int, rule_id: int, event_id: int, trigger_id: int, state: str, error: str | None
) -> int | None:
    """One enforcement per (rule, event); None when a redelivered event already made it."""
    cur.execute(
        INSERT_ENFORCEMENT,
        {
            "tenant_id": tenant_id,
            "rule_id": rule_id,
            "event_id": event_id,
            "trigger_id": trigger_id,
            "status": state,
            "error": error,
        },
    )
    row = cur.fetchone()
    return None if row is None else int(row["id"])


def set_enforcement_status(cur: Cursor, enforcement_id: int, state: str, error: str | None = None) -> None:
    """Record what became of an enforcement's execution request."""
    cur.execute(SET_ENFORCEMENT_STATUS, {"id": enforcement_id, "status": state, "error": error})


def follow_execution(cur: Cursor, tenant_id: int, enforcement_id: int, state: str, error: str | None) -> None:
    """Move an enforcement along with its execution (called by the lifecycle only)."""
    cur.execute(FOLLOW_EXECUTION, {"id": enforcement_id, "tenant_id": tenant_id, "status": state, "error": error})
