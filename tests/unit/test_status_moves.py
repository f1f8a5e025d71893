"""The named status moves of `core.status`: consistent with TRANSITIONS, never out of a final state.

Pure: no I/O. These pin the table the lifecycle's compare-and-set reads its
source states from, so a move that drifts from TRANSITIONS (or lets a final
execution move again) fails here before it can corrupt a row.
"""

from __future__ import annotations

import itertools

import pytest

from chalicelib.core import status
from chalicelib.core.errors import Conflict

# What each move is for, pair by pair (ARCHITECTURE §4 statuses, §5 lifecycle): each must be allowed.
INTENDED: dict[str, set[tuple[str, str]]] = {
    "dispatch": {(status.REQUESTED, status.SCHEDULED)},
    "start": {(status.REQUESTED, status.RUNNING)},  # a workflow: its state machine runs it, no worker
    "ask": {(status.REQUESTED, status.PAUSED)},  # an inquiry waits for a human from the start
    "pause": {(status.RUNNING, status.PAUSED)},  # a workflow while an inquiry of it waits
    "resume": {(status.PAUSED, status.RUNNING)},
    "reject": {(status.REQUESTED, status.FAILED)},
    "claim": {(status.SCHEDULED, status.RUNNING)},
    "refuse": {(status.SCHEDULED, status.FAILED)},
    "complete": {(s, f) for s in (status.RUNNING, status.CANCELING, status.PAUSED) for f in status.FINAL},
    "cancel": {
        (status.REQUESTED, status.CANCELED),
        (status.SCHEDULED, status.CANCELED),
        (status.RUNNING, status.CANCELING),
        (status.PAUSED, status.CANCELING),
        (status.PAUSED, status.CANCELED),  # an inquiry: nothing runs it, so nothing must stop first
    },
    "retry": {(status.RUNNING, status.SCHEDULED)},
    "reap": {(status.RUNNING, status.FAILED), (status.CANCELING, status.CANCELED)},
}


def test_the_status_sets_partition_and_transitions_cover_every_status() -> None:
    # GIVEN the status sets and the transition table
    # THEN final and active statuses split ALL, every status has a row, and final rows are empty
    assert status.FINAL.isdisjoint(status.ACTIVE)
    assert status.FINAL | status.ACTIVE == status.ALL
    assert set(status.TRANSITIONS) == set(status.ALL)
    for state, targets in status.TRANSITIONS.items():
        assert targets <= status.ALL, (state, targets - status.ALL)
        assert state not in targets, f"{state} -> {state} is not a change"
    for final in status.FINAL:
        assert status.TRANSITIONS[final] == frozenset(), final


def test_every_move_is_named_as_the_lifecycle_calls_it() -> None:
    # GIVEN the lifecycle's moves (ARCHITECTURE §5)
    # THEN exactly those are defined, each under its own name
    assert set(status.MOVES) == set(INTENDED)
    for name, move in status.MOVES.items():
        assert move.name == name


@pytest.mark.parametrize("name", sorted(INTENDED))
def test_move_sources_and_targets_are_consistent_with_transitions(name: str) -> None:
    # GIVEN one named move
    move = status.MOVES[name]
    # THEN its states are known statuses, every source reaches some target and every target some source
    assert move.sources <= status.ALL and move.targets <= status.ALL
    assert move.sources and move.targets
    for source in move.sources:
        assert any(status.can_move(source, t) for t in move.targets), f"{name}: {source} reaches no target"
    for target in move.targets:
        assert move.sources_for(target), f"{name}: no source reaches {target}"
    # AND `allows` is exactly "a source, a target, and an edge of TRANSITIONS"
    for current, to in itertools.product(sorted(status.ALL), repeat=2):
        expected = current in move.sources and to in move.targets and to in status.TRANSITIONS[current]
        assert move.allows(current, to) is expected, (name, current, to)
    # AND its compare-and-set sources for each target are exactly the sources with that edge, sorted
    for target in move.targets:
        want = sorted(s for s in move.sources if target in status.TRANSITIONS[s])
        assert move.sources_for(target) == want, (name, target)


@pytest.mark.parametrize("name", sorted(INTENDED))
def test_each_move_allows_what_it_is_for(name: str) -> None:
    # GIVEN what the move is used for by the lifecycle
    move = status.MOVES[name]
    # THEN each of those changes is allowed (and so is an edge of TRANSITIONS)
    for current, to in sorted(INTENDED[name]):
        assert move.allows(current, to), f"{name} must allow {current} -> {to}"
        assert status.can_move(current, to), f"TRANSITIONS lacks {current} -> {to}, used by {name}"


@pytest.mark.parametrize("name", sorted(INTENDED))
def test_no_move_leaves_a_final_state(name: str) -> None:
    # GIVEN any move
    move = status.MOVES[name]
    # THEN no final state is among its sources, and it allows nothing out of one
    assert move.sources.isdisjoint(status.FINAL), (name, move.sources & status.FINAL)
    for final, to in itertools.product(sorted(status.FINAL), sorted(status.ALL)):
        assert not move.allows(final, to), (name, final, to)
        assert not status.can_move(final, to)
    # AND its compare-and-set never names a final state as a source
    for target in move.targets:
        assert status.FINAL.isdisjoint(move.sources_for(target)), (name, target)


def test_claim_is_only_from_scheduled() -> None:
    # GIVEN the claim move
    claim = status.MOVES["claim"]
    # THEN only scheduled -> running; a redelivered message for a running/canceled execution claims nothing
    assert claim.sources == frozenset({status.SCHEDULED})
    assert claim.targets == frozenset({status.RUNNING})
    assert claim.sources_for(status.RUNNING) == [status.SCHEDULED]
    for current in sorted(status.ALL - {status.SCHEDULED}):
        assert not claim.allows(current, status.RUNNING), current
    # AND resuming a paused execution is not a claim (same target, different source)
    assert status.can_move(status.PAUSED, status.RUNNING)
    assert not claim.allows(status.PAUSED, status.RUNNING)


def test_retry_and_dispatch_are_the_only_ways_back_to_scheduled() -> None:
    # GIVEN every move that can reach `scheduled`
    reaching = {
        name: m.sources_for(status.SCHEDULED) for name, m in status.MOVES.items() if status.SCHEDULED in m.targets
    }
    # THEN dispatch takes a requested one there, retry a running one; nothing else does
    assert reaching == {"dispatch": [status.REQUESTED], "retry": [status.RUNNING]}


def test_sources_for_a_target_the_move_never_reaches_is_an_error() -> None:
    # GIVEN a move and a target outside its targets
    # WHEN its compare-and-set sources are asked for THEN it refuses (no silent empty WHERE)
    with pytest.raises(ValueError, match="claim"):
        status.MOVES["claim"].sources_for(status.FAILED)
    with pytest.raises(ValueError, match="retry"):
        status.MOVES["retry"].sources_for(status.CANCELED)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (status.REQUESTED, status.CANCELED),
        (status.SCHEDULED, status.CANCELED),
        (status.RUNNING, status.CANCELING),
        (status.PAUSED, status.CANCELING),
        (status.CANCELING, status.CANCELED),
        (status.SUCCEEDED, status.CANCELED),
        (status.FAILED, status.CANCELED),
        (status.CANCELED, status.CANCELED),
    ],
)
def test_cancel_target(current: str, target: str) -> None:
    # GIVEN an execution in `current` WHEN it is canceled THEN it goes to `target`:
    # straight to canceled unless a process runs that must be stopped first
    assert status.cancel_target(current) == target


@pytest.mark.parametrize("current", sorted(status.MOVES["cancel"].sources))
def test_cancel_of_every_cancelable_state_is_allowed(current: str) -> None:
    # GIVEN a state a cancel starts from WHEN the cancel's target is checked THEN no error
    status.require_move("cancel", current, status.cancel_target(current))


@pytest.mark.parametrize("current", sorted(status.FINAL | {status.CANCELING}))
def test_cancel_of_a_final_or_canceling_execution_is_a_409_naming_both_states(current: str) -> None:
    # GIVEN an execution that is final (or already canceling)
    target = status.cancel_target(current)
    # WHEN a cancel is checked
    with pytest.raises(Conflict) as raised:
        status.require_move("cancel", current, target)
    # THEN a 409 whose message names the state it is in and the state it cannot become
    assert raised.value.status == 409 and raised.value.code == "conflict"
    assert current in raised.value.message and target in raised.value.message
    assert raised.value.message == f"execution is {current}; it cannot become {target}"


def test_require_move_refuses_a_claim_of_a_running_execution_naming_both_states() -> None:
    # GIVEN a running execution WHEN a second claim is checked THEN 409, naming running twice (from and to)
    with pytest.raises(Conflict) as raised:
        status.require_move("claim", status.RUNNING, status.RUNNING)
    assert raised.value.status == 409
    assert raised.value.to_body()["error"] == {
        "code": "conflict", "message": "execution is running; it cannot become running",
    }
    # AND a move towards a target outside the move (retry to failed) is refused too
    with pytest.raises(Conflict, match="execution is running; it cannot become failed"):
        status.require_move("retry", status.RUNNING, status.FAILED)


def test_require_move_accepts_every_intended_change() -> None:
    # GIVEN every change the lifecycle makes WHEN it is checked THEN none raises
    for name, pairs in INTENDED.items():
        for current, to in pairs:
            status.require_move(name, current, to)
