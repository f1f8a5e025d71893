"""Execution and inquiry status transitions, checked in this one place.

Every status change in the system is a compare-and-set whose allowed
"from" states come from `sources(to)`, so a redelivered message or a racing
worker can never move an execution backwards or out of a final state.
"""

from __future__ import annotations

from chalicelib.core.errors import Conflict

REQUESTED = "requested"
SCHEDULED = "scheduled"
RUNNING = "running"
PAUSED = "paused"
CANCELING = "canceling"
SUCCEEDED = "succeeded"
SUCCEEDED_WITH_ERRORS = "succeeded_with_errors"
FAILED = "failed"
CANCELED = "canceled"

FINAL = frozenset({SUCCEEDED, SUCCEEDED_WITH_ERRORS, FAILED, CANCELED})
ACTIVE = frozenset({REQUESTED, SCHEDULED, RUNNING, PAUSED, CANCELING})

TRANSITIONS: dict[str, frozenset[str]] = {
    REQUESTED: frozenset({SCHEDULED, FAILED, CANCELED}),
    SCHEDULED: frozenset({RUNNING, FAILED, CANCELING, CANCELED}),
    RUNNING: frozenset({SUCCEEDED, SUCCEEDED_WITH_ERRORS, FAILED, PAUSED, CANCELING, CANCELED}),
    PAUSED: frozenset({RUNNING, SUCCEEDED, SUCCEEDED_WITH_ERRORS, FAILED, CANCELING, CANCELED}),
    CANCELING: frozenset({CANCELED, FAILED, SUCCEEDED, SUCCEEDED_WITH_ERRORS}),
}
for _final in FINAL:
    TRANSITIONS[_final] = frozenset()


def can_move(current: str, to: str) -> bool:
    """Whether an execution in `current` may move to `to`."""
    return to in TRANSITIONS.get(current, frozenset())


def sources(to: str) -> list[str]:
    """The states from which `to` is reachable: the WHERE clause of a compare-and-set."""
    return sorted(state for state, targets in TRANSITIONS.items() if to in targets)


def require_move(current: str, to: str) -> None:
    """Raise a 409 naming both states when the move is not allowed."""
    if not can_move(current, to):
        raise Conflict(f"execution is {current}; it cannot become {to}")
