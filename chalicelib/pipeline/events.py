"""`emit_event`: the one way an event enters the system (webhooks, timers, sensors, actions that chain).

It stores the event and its `events` queue message in the caller's
transaction (the transactional outbox), so an event is never stored without
its message nor sent without being stored; the caller publishes the message
after its commit.

Every event belongs to a chain: a trace id and a depth. A webhook call, a
timer fire or a sensor poll starts a new trace at depth 0; an event an action
emits (its execution-scoped token says which execution) continues that
execution's trace one level deeper, and the executions its rules start carry
it on. A loop (an action firing its own rule's webhook) therefore deepens
with every turn, and past `ATTUNE_MAX_CHAIN_DEPTH` the event is stored
`suppressed`, with the reason, and never queued: the loop ends where a user
can see why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, overload

from chalicelib.config import max_chain_depth
from chalicelib.core.errors import BadRequest
from chalicelib.db.pipeline import execution_chain, insert_event
from chalicelib.db.pool import Cursor
from chalicelib.models.messages import EventMessage
from chalicelib.pipeline.outbox import Pending, enqueue


@dataclass(frozen=True)
class Chain:
    """Where an action's event sits: its emitting execution's trace and id, and the depth the event gets."""

    trace: str
    depth: int
    execution_id: int


@dataclass(frozen=True)
class Emitted:
    """A stored event and its message to publish after commit."""

    event: dict[str, Any]
    message: Pending

    @property
    def event_id(self) -> int:
        """The new event's id."""
        return int(self.event["id"])


@dataclass(frozen=True)
class Suppressed:
    """An event stored but never evaluated: its chain went past the depth limit."""

    event: dict[str, Any]
    reason: str

    @property
    def event_id(self) -> int:
        """The stored event's id."""
        return int(self.event["id"])


def next_link(execution_id: int, trace: str, execution_depth: int) -> Chain:
    """The chain of an event emitted by an execution at `execution_depth`: same trace, one level deeper."""
    return Chain(trace=trace, depth=execution_depth + 1, execution_id=execution_id)


def suppression(depth: int, limit: int) -> str | None:
    """Why an event at `depth` is not evaluated (None: it is); a limit of 0 allows no chained events at all."""
    if depth <= limit:
        return None
    return (
        f"chain depth {depth} is over the limit of {limit} (ATTUNE_MAX_CHAIN_DEPTH): events emitted by actions "
        "went this deep, most likely a loop (an action firing its own rule's trigger); the event is recorded "
        "but no rule evaluates it"
    )


def chain_of(cur: Cursor, tenant_id: int, execution_id: int) -> Chain | None:
    """The chain an event emitted by this execution continues; None when the tenant has no such execution."""
    row = execution_chain(cur, tenant_id, execution_id)
    if row is None:
        return None
    return next_link(int(row["id"]), str(row["trace"]), int(row["depth"]))


@overload
def emit_event(cur: Cursor, *, tenant_id: int, trigger_id: int, payload: Any) -> Emitted: ...


@overload
def emit_event(
    cur: Cursor, *, tenant_id: int, trigger_id: int, payload: Any, chain: Chain | None
) -> Emitted | Suppressed: ...


def emit_event(
    cur: Cursor, *, tenant_id: int, trigger_id: int, payload: Any, chain: Chain | None = None
) -> Emitted | Suppressed:
    """Store an event of `trigger_id` with `payload`, and queue it for the rules engine, in the caller's transaction.

    Without a `chain` the event starts a new trace; with one (an action
    emitted it) it continues the chain, or is stored suppressed when the
    chain is too deep.
    """
    if chain is None:
        event = insert_event(cur, tenant_id, trigger_id, payload)
    else:
        reason = suppression(chain.depth, max_chain_depth())
        event = insert_event(cur, tenant_id, trigger_id, payload, trace=chain.trace, depth=chain.depth,
                             reason=reason, source_execution_id=chain.execution_id)
        if reason is not None:
            return Suppressed(event, reason)
    message = EventMessage(tenant_id=tenant_id, event_id=event["id"]).model_dump()
    return Emitted(event, enqueue(cur, "events", message))


def answer(result: Emitted | Suppressed) -> dict[str, Any]:
    """What an emit answers (202): the event's id, whether it will be evaluated, and its chain."""
    body: dict[str, Any] = {
        "event_id": result.event_id,
        "status": result.event["status"],
        "trace": result.event["trace"],
        "depth": result.event["depth"],
    }
    if isinstance(result, Suppressed):
        body["reason"] = result.reason
    return body


MAX_TRACE_CHARS = 64


def trace_filter(raw: str | None) -> str | None:
    """A `trace=` query value, checked (400 naming it); None when absent."""
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_TRACE_CHARS or not all(c.isascii() and (c.isalnum() or c == "-") for c in raw):
        raise BadRequest(f"query parameter 'trace' must be a trace id (letters, digits and '-'), got {raw[:80]!r}")
    return raw
