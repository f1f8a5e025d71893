"""Queue messages: small, ids only; everything else is read from PostgreSQL.

Each carries the id of its outbox row so the consumer can acknowledge it in
the same transaction that acts on it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

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
