"""Queue messages: small, ids only; everything else is read from PostgreSQL.

Each carries the id of its outbox row so the consumer can acknowledge it in
the same transaction that acts on it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from chalicelib.models.base import Contract

Id = Annotated[int, Field(ge=1)]


class EventMessage(Contract):
    """On the `events` queue: an event for the rules engine."""

    kind: Literal["event"] = "event"
    outbox_id: Id | None = None
    tenant_id: Id
    event_id: Id


class ExecutionMessage(Contract):
    """On the `work` queue: a scheduled execution for a worker."""

    kind: Literal["execution"] = "execution"
    outbox_id: Id | None = None
    tenant_id: Id
    execution_id: Id


class NotificationMessage(Contract):
    """On the `notifications` queue: one change for the notifier to push to the tenant's WebSocket clients.

    `data` is the object as it was at that change (an execution without its
    parameters and result, which stay in PostgreSQL), so clients see every
    status in order even when the next change is already committed.
    """

    kind: Literal["notification"] = "notification"
    outbox_id: Id | None = None
    tenant_id: Id
    event: Literal["execution.status_changed", "inquiry.created", "inquiry.responded", "rule.triggered"]
    entity_type: str
    entity_id: Id
    data: dict[str, Any]
    timestamp: str


class CallbackMessage(Contract):
    """On the `workflow-callbacks` queue: a finished execution that a parent workflow or a task token waits on."""

    kind: Literal["callback"] = "callback"
    outbox_id: Id | None = None
    tenant_id: Id
    execution_id: Id
    status: str
    parent_execution_id: Id | None = None
    task_token: str | None = None


WorkflowKind = Literal["start", "task", "items", "finish", "fail", "cancel", "timeout", "expire"]


class WorkflowMessage(Contract):
    """On the `workflow-tasks` queue: a step of a workflow for the workflow handler.

    From the outbox (our own): `start` (start the state machine), `cancel`,
    `timeout` (the workflow's deadline), `expire` (an inquiry's ttl; then
    `execution_id` is the inquiry's execution). From the state machine (its
    `sqs:sendMessage` tasks, compiled in core.workflow.asl): `task` and
    `items`, carrying the task token to answer, then `finish` or `fail`.
    Extra keys Step Functions may add are ignored.
    """

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    kind: WorkflowKind
    outbox_id: Id | None = None
    tenant_id: Id
    execution_id: Id
    task: str | None = None
    index: Annotated[int, Field(ge=0)] | None = None
    task_token: str | None = None
    error: str | None = None
    cause: str | None = None
