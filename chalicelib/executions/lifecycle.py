"""The execution lifecycle: the only code that changes `attune.execution.status`.

Every move (dispatch, reject, claim, refuse, complete, cancel, retry, reap) is
a compare-and-set whose source states come from `core.status.MOVES`, and in
the caller's transaction it also writes what the change owes the rest of the
system, so none of it can be forgotten by one caller or done twice by another:

- its audit entry;
- a `notifications` message when a WebSocket client of the tenant listens;
- the enforcement's status, which follows its execution (`scheduled`, then the
  execution's final status);
- once final, a `workflow-callbacks` message when a parent workflow or a Step
  Functions task token waits on it.

Each move returns the outbox messages it enqueued; the caller publishes them
after its commit (`pipeline.outbox.publish`), or the relay sends them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalicelib.core import policies, status
from chalicelib.core.errors import Conflict, NotFound
from chalicelib.core.runners import kind_of
from chalicelib.db import audit, inquiries, pipeline
from chalicelib.db import executions as db
from chalicelib.db.pool import Cursor
from chalicelib.models.messages import CallbackMessage, ExecutionMessage, NotificationMessage, WorkflowMessage
from chalicelib.pipeline.outbox import Pending, enqueue
from chalicelib.worker.results import result_doc

log = logging.getLogger(__name__)

SCHEDULER_ACTOR = "service:executor"
CANCEL_ATTEMPTS = 3
# What a notification carries of the execution: parameters and result stay in PostgreSQL.
NOTIFIED_FIELDS = (
    "id", "action_ref", "status", "parent_execution_id", "enforcement_id", "retry_count",
    "created", "updated", "started", "finished",
)


@dataclass
class Moved:
    """A move that happened: the execution row after it, and the messages to publish after commit."""

    row: dict[str, Any]
    messages: list[Pending] = field(default_factory=list)

    @property
    def status(self) -> str:
        """Where the execution is now."""
        return str(self.row["status"])


def notification(tenant_id: int, event: str, entity_type: str, entity_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """A `notifications` message body (the notifier pushes it to the tenant's WebSocket clients)."""
    message = NotificationMessage(
        tenant_id=tenant_id,
        event=event,  # type: ignore[arg-type]
        entity_type=entity_type,
        entity_id=entity_id,
        data=data,
        timestamp=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    )
    return message.model_dump(mode="json", exclude_none=True)


def _notification(row: dict[str, Any]) -> dict[str, Any]:
    data = {name: row.get(name) for name in NOTIFIED_FIELDS}
    return notification(row["tenant_id"], "execution.status_changed", "execution", row["id"], data)


def _workflow_message(kind: str, tenant_id: int, execution_id: int) -> dict[str, Any]:
    message = WorkflowMessage(kind=kind, tenant_id=tenant_id, execution_id=execution_id)  # type: ignore[arg-type]
    return message.model_dump(exclude_none=True)


def _follow(cur: Cursor, row: dict[str, Any], *, actor: str, action: str, detail: dict[str, Any]) -> Moved:
    """Everything a status change owes, in the mover's transaction."""
    tenant_id, state = int(row["tenant_id"]), str(row["status"])
    audit.record(cur, tenant_id=tenant_id, actor=actor, action=action, entity_type="execution",
                 entity_id=row["id"], detail=detail)
    moved = Moved(row)
    if row.get("listened"):
        moved.messages.append(enqueue(cur, "notifications", _notification(row)))
    if row.get("enforcement_id") is not None and (state == status.SCHEDULED or state in status.FINAL):
        error = (row.get("result") or {}).get("error") if state != status.SUCCEEDED else None
        pipeline.follow_execution(cur, tenant_id, int(row["enforcement_id"]), state, error)
    if state in status.FINAL and (row.get("parent_execution_id") is not None or row.get("task_token")):
        callback = CallbackMessage(
            tenant_id=tenant_id, execution_id=row["id"], status=state,
            parent_execution_id=row.get("parent_execution_id"), task_token=row.get("task_token"),
        )
        moved.messages.append(enqueue(cur, "workflow-callbacks", callback.model_dump(exclude_none=True)))
    return moved


def _sources(move: str, to: str) -> list[str]:
    return status.MOVES[move].sources_for(to)


# -- dispatch: by runner kind ------------------------------------------------------
def _to_work_queue(cur: Cursor, row: dict[str, Any], runner_type: str) -> Moved | None:
    """Process runners (and http/container, which need no process of their own): a worker takes it."""
    moved = db.move(cur, row["tenant_id"], row["id"], to=status.SCHEDULED,
                    sources=_sources("dispatch", status.SCHEDULED))
    if moved is None:
        return None
    result = _follow(cur, moved, actor=SCHEDULER_ACTOR, action="execution.scheduled",
                     detail={"runner_type": runner_type})
    work = ExecutionMessage(tenant_id=row["tenant_id"], execution_id=row["id"])
    result.messages.insert(0, enqueue(cur, "work", work.model_dump(exclude_none=True)))
    return result


def _no_path(cur: Cursor, row: dict[str, Any], runner_type: str) -> Moved | None:
    """A runner kind this version has no path for fails clearly, at once."""
    return reject(cur, row, f"runner '{runner_type}' is not known to this version", stage="dispatch")


def _start_workflow(cur: Cursor, row: dict[str, Any], runner_type: str) -> Moved | None:
    """A workflow (or an action with `with_items`): running at once; the workflow handler starts its state machine.

    The start goes through the outbox (`workflow-tasks` queue), so a crash
    between this commit and Step Functions loses nothing; the handler's start
    is idempotent (one execution name per workflow execution).
    """
    moved = db.start(cur, row["tenant_id"], row["id"], sources=_sources("start", status.RUNNING))
    if moved is None:
        return None
    result = _follow(cur, moved, actor=SCHEDULER_ACTOR, action="execution.started",
                     detail={"runner_type": runner_type, "workflow": True})
    start = _workflow_message("start", row["tenant_id"], row["id"])
    result.messages.insert(0, enqueue(cur, "workflow-tasks", start))
    return result


def _ask(cur: Cursor, row: dict[str, Any], runner_type: str) -> Moved | None:
    """An inquiry (`core.ask`, or a workflow's inquiry task): paused at once, with its inquiry pending.

    Its parameters are the inquiry: prompt, schema, ttl, default, roles. Its
    expiry is a message due at `ttl` (the outbox holds what SQS cannot delay);
    a workflow it belongs to is paused while it waits.
    """
    tenant_id = int(row["tenant_id"])
    moved = db.move(cur, tenant_id, row["id"], to=status.PAUSED, sources=_sources("ask", status.PAUSED))
    if moved is None:
        return None
    spec = moved["parameters"] or {}
    ttl = float(spec.get("ttl") or 3600)
    parent = moved.get("parent_execution_id")
    inquiry = inquiries.insert(
        cur, tenant_id=tenant_id, execution_id=int(moved["id"]), workflow_execution_id=parent,
        prompt=str(spec.get("prompt") or ""), schema=dict(spec.get("schema") or {}),
        roles=[str(r) for r in spec.get("roles") or []], default=spec.get("default"), ttl=ttl,
    )
    detail = {"inquiry_id": inquiry["id"] if inquiry else None, "ttl": ttl}
    result = _follow(cur, moved, actor=SCHEDULER_ACTOR, action="execution.paused", detail=detail)
    if inquiry is not None:
        audit.record(cur, tenant_id=tenant_id, actor=SCHEDULER_ACTOR, action="inquiry.created",
                     entity_type="inquiry", entity_id=inquiry["id"], detail={"execution_id": moved["id"], "ttl": ttl})
        if moved.get("listened"):
            result.messages.append(enqueue(cur, "notifications", notification(
                tenant_id, "inquiry.created", "inquiry", int(inquiry["id"]), dict(inquiry))))
    expire = _workflow_message("expire", tenant_id, int(moved["id"]))
    result.messages.append(enqueue(cur, "workflow-tasks", expire, delay_s=ttl))
    if parent is not None:
        paused = pause(cur, tenant_id, int(parent), actor=SCHEDULER_ACTOR)
        if paused is not None:
            result.messages += paused.messages
    return result


Dispatcher = Callable[[Cursor, dict[str, Any], str], "Moved | None"]
# By the path of the runner's kind (core.runners): a new path is a new entry here, callers do not change.
DISPATCH: dict[str, Dispatcher] = {
    "work": _to_work_queue,
    "workflow": _start_workflow,
    "inquiry": _ask,
}


def dispatch(cur: Cursor, row: dict[str, Any], runner_type: str) -> Moved | None:
    """requested -> the path its runner kind takes; None when it was no longer requested.

    An execution that carries a workflow definition (a workflow action, or an
    action with the seed's `with_items`) takes the workflow path whatever its runner.
    """
    if row.get("is_workflow"):
        return _start_workflow(cur, row, runner_type)
    kind = kind_of(runner_type)
    return DISPATCH[kind.path](cur, row, runner_type) if kind else _no_path(cur, row, runner_type)


# -- the moves -----------------------------------------------------------------------
def created(cur: Cursor, row: dict[str, Any], *, actor: str) -> Moved:
    """A new execution exists (`requested`): audited and notified like every later change."""
    return _follow(cur, row, actor=actor, action="execution.created", detail={"action_ref": row["action_ref"]})


def reject(cur: Cursor, row: dict[str, Any], error: str, *, stage: str) -> Moved | None:
    """requested -> failed before any worker sees it (parameters, templates, no path for the runner)."""
    moved = db.move(cur, row["tenant_id"], row["id"], to=status.FAILED, sources=_sources("reject", status.FAILED),
                    result=result_doc(error=error))
    if moved is None:
        return None
    return _follow(cur, moved, actor=SCHEDULER_ACTOR, action="execution.failed",
                   detail={"status": status.FAILED, "error": error, "stage": stage})


def claim(cur: Cursor, tenant_id: int, execution_id: int, *, worker_id: str, runner_type: str) -> Moved | None:
    """scheduled -> running for `worker_id`; None when another claim or a cancel won."""
    row = db.claim(cur, tenant_id, execution_id, sources=_sources("claim", status.RUNNING), worker_id=worker_id)
    if row is None:
        return None
    return _follow(cur, row, actor=f"worker:{worker_id}", action="execution.started",
                   detail={"attempt": row["attempt"], "runner_type": runner_type})


def refuse(cur: Cursor, tenant_id: int, execution_id: int, *, worker_id: str, reason: str) -> Moved | None:
    """scheduled -> failed by a worker that found it cannot be run; nothing was started."""
    row = db.move(cur, tenant_id, execution_id, to=status.FAILED, sources=_sources("refuse", status.FAILED),
                  result=result_doc(error=reason), worker_id=worker_id, count_attempt=True)
    if row is None:
        return None
    return _follow(cur, row, actor=f"worker:{worker_id}", action="execution.completed",
                   detail={"status": status.FAILED, "exit_code": None, "duration_s": 0, "error": reason})


def complete(
    cur: Cursor, tenant_id: int, execution_id: int, *, final: str, result: dict[str, Any], actor: str,
    detail: dict[str, Any] | None = None, retry_policy: Mapping[str, Any] | None = None, cause: str = "failure",
) -> Moved | None:
    """running (or canceling, paused) -> `final` with its result; None when the reaper or a cancel got there first.

    A failure the action's retry policy covers (`cause`: failure or timeout) is
    not final: the execution goes back to `scheduled` with a work message
    delayed by the policy's backoff (core.policies), the attempt recorded.
    """
    if final == status.FAILED and retry_policy:
        delay = policies.retry_delay(retry_policy, db.retry_count(cur, tenant_id, execution_id), cause)
        if delay is not None:
            return retry(cur, tenant_id, execution_id, actor=actor, reason=str(result.get("error")),
                         delay_s=delay, exit_code=result.get("exit_code"))
    row = db.move(cur, tenant_id, execution_id, to=final, sources=_sources("complete", final), result=result)
    if row is None:
        return None
    return _follow(cur, row, actor=actor, action="execution.completed",
                   detail={"status": final, "exit_code": result.get("exit_code"), **(detail or {})})


def pause(cur: Cursor, tenant_id: int, execution_id: int, *, actor: str) -> Moved | None:
    """running -> paused: a workflow one of whose inquiries waits; None when it was not running."""
    row = db.move(cur, tenant_id, execution_id, to=status.PAUSED, sources=_sources("pause", status.PAUSED))
    if row is None:
        return None
    return _follow(cur, row, actor=actor, action="execution.paused", detail={"status": status.PAUSED})


def resume(cur: Cursor, tenant_id: int, execution_id: int, *, actor: str) -> Moved | None:
    """paused -> running: a workflow none of whose inquiries waits any more; None when it was not paused."""
    if inquiries.pending_of_workflow(cur, tenant_id, execution_id):
        return None
    row = db.move(cur, tenant_id, execution_id, to=status.RUNNING, sources=_sources("resume", status.RUNNING))
    if row is None:
        return None
    return _follow(cur, row, actor=actor, action="execution.resumed", detail={"status": status.RUNNING})


def cancel(cur: Cursor, tenant_id: int, execution_id: int, *, actor: str) -> Moved:
    """Cancel: not yet running -> canceled at once; running or paused -> canceling, and its runner stops it.

    A worker stops its action; a workflow's handler fails its outstanding
    tasks, cancels its children and stops its state machine (a `cancel`
    message); an inquiry, which nothing runs, is canceled at once and its
    inquiry expires. 404 for an execution the tenant does not have; 409
    naming the state when it is already final.
    """
    for _ in range(CANCEL_ATTEMPTS):  # a claim or a completion may land between the read and the move
        state = db.load_state(cur, tenant_id, execution_id)
        if state is None:
            raise NotFound(f"execution {execution_id} not found")
        current = str(state["status"])
        target = status.cancel_target(current, stoppable=bool(state["is_workflow"]) or current == status.RUNNING)
        status.require_move("cancel", current, target)
        result = result_doc(error=f"canceled by {actor}") if target == status.CANCELED else None
        row = db.move(cur, tenant_id, execution_id, to=target, sources=[current], result=result)
        if row is not None:
            break
    else:
        raise Conflict(f"execution {execution_id} kept changing state; try the cancel again")
    action = "execution.canceled" if target == status.CANCELED else "execution.cancel_requested"
    moved = _follow(cur, row, actor=actor, action=action, detail={"status": target, "was": current})
    if target == status.CANCELING and state["is_workflow"]:
        moved.messages.append(enqueue(cur, "workflow-tasks", _workflow_message("cancel", tenant_id, execution_id)))
    elif target == status.CANCELED and current == status.PAUSED:
        expired = inquiries.expire(cur, tenant_id, execution_id)
        if expired is not None:
            audit.record(cur, tenant_id=tenant_id, actor=actor, action="inquiry.expired", entity_type="inquiry",
                         entity_id=expired["id"], detail={"reason": "canceled"})
    return moved


def retry(
    cur: Cursor, tenant_id: int, execution_id: int, *, actor: str, reason: str, delay_s: float = 0,
    exit_code: int | None = None, sources: list[str] | None = None,
) -> Moved | None:
    """running -> scheduled again, its work message due in `delay_s` (in the queue, not a sleeping worker).

    None when it had moved on. The failed attempt is recorded in `attempts`.
    """
    row = db.retry(cur, tenant_id, execution_id, sources=sources or _sources("retry", status.SCHEDULED),
                   exit_code=exit_code, error=reason, delay_s=delay_s)
    if row is None:
        return None
    moved = _follow(cur, row, actor=actor, action="execution.retried",
                    detail={"retry_count": row["retry_count"], "reason": reason, "delay_s": delay_s})
    work = ExecutionMessage(tenant_id=tenant_id, execution_id=execution_id)
    moved.messages.insert(0, enqueue(cur, "work", work.model_dump(exclude_none=True), delay_s=delay_s))
    return moved


def reap(cur: Cursor, row: dict[str, Any], *, actor: str) -> Moved | None:
    """A claimed execution whose worker stopped beating: running -> failed, canceling -> canceled."""
    current = str(row["status"])
    to = status.CANCELED if current == status.CANCELING else status.FAILED
    if not status.MOVES["reap"].allows(current, to):
        return None
    error = f"worker lost: no heartbeat for {row['silent_s']}s"
    delay = policies.retry_delay(row.get("retry_policy"), int(row.get("retry_count") or 0), "failure")
    if to == status.FAILED and delay is not None:  # the action's retry policy covers a lost worker too
        return retry(cur, row["tenant_id"], row["id"], actor=actor, reason=error, delay_s=delay, sources=[current])
    # From the state it was found in only: a running execution is never reaped to `canceled`.
    moved = db.move(cur, row["tenant_id"], row["id"], to=to, sources=[current], result=result_doc(error=error))
    if moved is None:
        return None
    beat = row.get("heartbeat_at")
    return _follow(cur, moved, actor=actor, action="execution.failed" if to == status.FAILED else "execution.canceled",
                   detail={"status": to, "error": error, "worker_id": row["worker_id"],
                           "last_heartbeat": beat.isoformat() if beat else None, "stage": "reaper"})
