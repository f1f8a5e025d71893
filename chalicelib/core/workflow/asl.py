"""A workflow compiled to Amazon States Language: Step Functions owns the control flow.

Ordering, fan-out, retry with backoff, abort/continue and waiting are the
state machine's; the work itself is ours. Every task is an
`sqs:sendMessage.waitForTaskToken` whose message carries ids only
(`tenant_id`, `execution_id`, the task's name, the item's index, the token);
the runtime looks everything else up, runs the task, and answers the token.
The state machine's own state is the same two ids all the way through
(`ResultPath: null`), so it never nears Step Functions' 256 KB limit.

The queue URL is the placeholder `${WorkflowTasksQueueUrl}`, as in a SAM
template's `DefinitionSubstitutions`, so the compiled definition (and its
digest, the state machine's content-addressed name) is the same in every
stack.

Only constructs that both AWS and moto 5.x run: no JSONata, Variables,
`states:startExecution` or Express. One workaround in the ASL itself: moto
(and likely LocalStack, whose interpreter moto's is) turns an error named
`States.*` that leaves a Parallel branch or a Map iteration into a crash of
the whole execution, past every Catch, so no `fail` message would be sent.
A task timeout that is neither retried nor continued is therefore caught
where it happens and re-raised as `Attune.TaskTimedOut` by a Fail state
whose cause (`{"task", "error"}` JSON) names the task (on AWS too: one ASL everywhere, and a better
message). moto's other two faults here, a Retry reusing the task token and
`send_task_failure` dropping its cause, are the emulator's to fix (see
tests/integration/test_workflow_asl_moto.py), not worked around in the ASL.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Literal

from chalicelib.core.errors import ValidationFailed
from chalicelib.core.workflow.model import Task, Workflow, levels, topological_order
from chalicelib.models.packs import RetryPolicy

QUEUE_PLACEHOLDER = "${WorkflowTasksQueueUrl}"
SEND = "arn:aws:states:::sqs:sendMessage"
SEND_AND_WAIT = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
# Errors the runtime fails a token with, and those the state machine raises.
TASK_FAILED = "Attune.TaskFailed"
INQUIRY_EXPIRED = "Attune.InquiryExpired"
CANCELED = "Attune.Canceled"  # never caught or retried by a task: cancellation must reach the top
TASK_TIMED_OUT = "Attune.TaskTimedOut"
WORKFLOW_FAILED = "Attune.WorkflowFailed"
STATES_TIMEOUT = "States.Timeout"
CONTINUED_ERRORS = [TASK_FAILED, INQUIRY_EXPIRED, STATES_TIMEOUT]
RETRIED_ERRORS = {"failure": TASK_FAILED, "timeout": STATES_TIMEOUT}
MAX_DEFINITION_BYTES = 1024 * 1024  # Step Functions' limit on a state machine definition
MAX_QUEUE_URL = 160
MAX_NESTING = 12  # layout recursion (so Parallel nesting) past which the body is laid out in levels
IDS = {"tenant_id.$": "$.tenant_id", "execution_id.$": "$.execution_id"}

State = dict[str, Any]


def compile_asl(wf: Workflow) -> dict[str, Any]:
    """The state machine that runs `wf`; the same workflow always gives the same dict."""
    body = _Compiler().branch(_plan(wf))
    asl: dict[str, Any] = {"StartAt": "Workflow", "States": {
        "Workflow": {"Type": "Parallel", "Branches": [body], "ResultPath": None, "Next": "Finish",
                     "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed"}]},
        "Finish": _send({"kind": "finish", **IDS}, End=True),
        "Failed": _send({"kind": "fail", **IDS, "error.$": "$.error.Error", "cause.$": "$.error.Cause"},
                        Next="Fail"),
        "Fail": {"Type": "Fail", "Error": WORKFLOW_FAILED},
    }}
    text = _canonical(asl)
    # Sized as deployed: each placeholder becomes a queue URL (AWS's are under MAX_QUEUE_URL characters).
    size = len(text) + text.count(QUEUE_PLACEHOLDER) * (MAX_QUEUE_URL - len(QUEUE_PLACEHOLDER))
    if size > MAX_DEFINITION_BYTES:
        raise ValidationFailed(f"workflow: compiles to ~{size} bytes of ASL, over Step Functions' limit "
                               f"of {MAX_DEFINITION_BYTES}; split it into nested workflows")
    return asl


def substitute(asl: dict[str, Any], queue_url: str) -> str:
    """The definition's JSON text with the tasks queue's URL in place of the placeholder."""
    return json.dumps(_replace(asl, queue_url), separators=(",", ":"))


def asl_digest(asl: dict[str, Any]) -> str:
    """sha256 of the canonical JSON: equal definitions share one state machine, named after it."""
    return hashlib.sha256(_canonical(asl).encode()).hexdigest()


def _canonical(asl: dict[str, Any]) -> str:
    return json.dumps(asl, sort_keys=True, separators=(",", ":"))


def _replace(value: Any, queue_url: str) -> Any:
    if value == QUEUE_PLACEHOLDER:
        return queue_url
    if isinstance(value, dict):
        return {key: _replace(item, queue_url) for key, item in value.items()}
    if isinstance(value, list):
        return [_replace(item, queue_url) for item in value]
    return value


def _send(body: dict[str, Any], **rest: Any) -> State:
    return {"Type": "Task", "Resource": SEND,
            "Parameters": {"QueueUrl": QUEUE_PLACEHOLDER, "MessageBody": body}, **rest}


def _wait(kind: str, task: Task, **extra: str) -> State:
    body = {"kind": kind, **IDS, "task": task.name, **extra, "task_token.$": "$$.Task.Token"}
    return {"Type": "Task", "Resource": SEND_AND_WAIT,
            "Parameters": {"QueueUrl": QUEUE_PLACEHOLDER, "MessageBody": body}}


# --- Layout: the DAG as series and parallel blocks -------------------------------------------------

@dataclass(frozen=True)
class _Series:
    parts: tuple[_Node, ...]


@dataclass(frozen=True)
class _Parallel:
    branches: tuple[_Node, ...]


_Node = Task | _Series | _Parallel


def _plan(wf: Workflow) -> _Node:
    """The body's layout: series-parallel when that nests shallowly, else plain levels."""
    position = {task.name: i for i, task in enumerate(wf.tasks)}
    try:
        return _layout(list(wf.tasks), position, 0)
    except _TooDeep:
        blocks = [level[0] if len(level) == 1 else _Parallel(tuple(level)) for level in levels(wf)]
        return _series(blocks)


class _TooDeep(Exception):
    """The series-parallel plan nests (or peels) past MAX_NESTING: Python's and JSON's recursion, compile time."""


def _layout(tasks: list[Task], position: dict[str, int], depth: int) -> _Node:
    """A series-parallel plan of `tasks` (in definition order) that never runs a task before its dependencies.

    Independent groups run as parallel branches, and the DAG is cut in series
    wherever everything after the cut depends on everything before it, so a
    task waits for exactly its dependencies when the DAG is series-parallel.
    When it is not (an N: a->c, b->c, b->d), the tasks without dependencies
    run first, as levels would: correct, at the price of some waiting.
    """
    if depth > MAX_NESTING:
        raise _TooDeep
    parts: list[_Node] = []
    while len(tasks) > 1:
        groups = _components(tasks, position)
        if len(groups) > 1:
            parts.append(_Parallel(tuple(_layout(group, position, depth + 1) for group in groups)))
            return _series(parts)
        segments = _clean_cuts(tasks)
        if len(segments) > 1:
            parts.extend(_layout(segment, position, depth + 1) for segment in segments)
            return _series(parts)
        depth += 1  # each peel costs a pass over the rest: bounded like nesting, so never quadratic
        if depth > MAX_NESTING:
            raise _TooDeep
        names = {task.name for task in tasks}
        roots = [task for task in tasks if not names.intersection(task.depends_on)]
        tasks = [task for task in tasks if names.intersection(task.depends_on)]
        parts.append(_layout(roots, position, depth))
    parts.append(tasks[0])
    return _series(parts)


def _series(parts: Sequence[_Node]) -> _Node:
    """One node for `parts` in order, nested series spliced in (a series of one is that one)."""
    flat: list[_Node] = []
    for part in parts:
        flat.extend(part.parts if isinstance(part, _Series) else [part])
    return flat[0] if len(flat) == 1 else _Series(tuple(flat))


def _components(tasks: list[Task], position: dict[str, int]) -> list[list[Task]]:
    """Weakly connected groups, each in definition order, ordered by their first task."""
    parent = {task.name: task.name for task in tasks}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for task in tasks:
        for dep in task.depends_on:
            if dep in parent:
                a, b = root(task.name), root(dep)
                parent[max(a, b, key=position.__getitem__)] = min(a, b, key=position.__getitem__)
    groups: dict[str, list[Task]] = {}
    for task in tasks:
        groups.setdefault(root(task.name), []).append(task)
    return list(groups.values())


def _clean_cuts(tasks: list[Task]) -> list[list[Task]]:
    """The topological order split wherever every later task depends (transitively) on every earlier one.

    Such a cut is a prefix of every topological order, so one order finds
    them all: with ancestors as bit sets over positions, the cut before
    position k is clean when each task from k on has all of bits 0..k-1.
    """
    order = topological_order(tasks)
    at = {task.name: i for i, task in enumerate(order)}
    ancestors: list[int] = []
    for task in order:
        bits = 0
        for dep in task.depends_on:
            if dep in at:
                bits |= ancestors[at[dep]] | (1 << at[dep])
        ancestors.append(bits)
    # full[i]: how long a prefix of the order task i has entirely among its ancestors.
    full = [((~bits) & (bits + 1)).bit_length() - 1 for bits in ancestors]
    cuts, lowest = [], len(order)
    for k in range(len(order) - 1, 0, -1):
        lowest = min(lowest, full[k])
        if lowest >= k:
            cuts.append(k)
    bounds = [0, *reversed(cuts), len(order)]
    return [order[a:b] for a, b in pairwise(bounds)]


# --- States ----------------------------------------------------------------------------------------

@dataclass
class _Exit:
    """A way out of a fragment, pointed at whatever comes next once that is known."""

    state: State
    kind: Literal["next", "catch"]
    pass_name: str = ""  # for a catch: the Pass that ends the branch when nothing comes next


@dataclass
class _Fragment:
    start: str
    states: dict[str, State]
    exits: list[_Exit] = field(default_factory=list)


class _Compiler:
    """Turns a layout into states; numbers Parallel blocks in the order it meets them."""

    def __init__(self) -> None:
        self.parallels = 0

    def branch(self, node: _Node) -> dict[str, Any]:
        """A complete `{"StartAt", "States"}` whose last states end it."""
        fragment = self.fragment(node)
        _link(fragment, None)
        return {"StartAt": fragment.start, "States": fragment.states}

    def fragment(self, node: _Node) -> _Fragment:
        if isinstance(node, Task):
            return _with_items(node) if node.with_items is not None else _single(node)
        if isinstance(node, _Parallel):
            self.parallels += 1
            name = f"parallel.{self.parallels}"
            state: State = {"Type": "Parallel", "Branches": [self.branch(b) for b in node.branches],
                            "ResultPath": None}
            return _Fragment(name, {name: state}, [_Exit(state, "next")])
        parts = [self.fragment(part) for part in node.parts]
        for here, after in pairwise(parts):
            _link(here, after.start)
        states = {name: state for part in parts for name, state in part.states.items()}
        return _Fragment(parts[0].start, states, parts[-1].exits)


def _link(fragment: _Fragment, target: str | None) -> None:
    """Point the fragment's exits at `target`, or end the branch there when it is None."""
    for way in fragment.exits:
        if way.kind == "next":
            if target is None:
                way.state["End"] = True
            else:
                way.state["Next"] = target
        elif target is None:
            fragment.states[way.pass_name] = {"Type": "Pass", "End": True}
            way.state["Catch"][0]["Next"] = way.pass_name
        else:
            way.state["Catch"][0]["Next"] = target
    fragment.exits = []


def _single(task: Task) -> _Fragment:
    """An action or inquiry run once: one waitForTaskToken state named after the task."""
    state = _wait("task", task)
    state["ResultPath"] = None
    fragment = _Fragment(task.name, {task.name: state}, [_Exit(state, "next")])
    _policies(task, task.name, fragment)
    return fragment


def _with_items(task: Task) -> _Fragment:
    """`<name>.items` asks the runtime for the item indices, then the Map `<name>` runs `<name>.item` per index."""
    items, item = f"{task.name}.items", f"{task.name}.item"
    ask = _wait("items", task)
    ask.update(ResultPath=f"$.items_{task.name}", Next=task.name)
    one = _wait("task", task, **{"index.$": "$.index"})
    one["ResultPath"] = None
    iteration = _Fragment(item, {item: one}, [_Exit(one, "next")])
    _policies(task, item, iteration)
    _link(iteration, None)
    fan_out: State = {
        "Type": "Map", "ItemsPath": f"$.items_{task.name}.indices", "MaxConcurrency": task.concurrency_limit,
        "ItemSelector": {**IDS, "index.$": "$$.Map.Item.Value"},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": item, "States": iteration.states},
        "ResultPath": None,
    }
    fragment = _Fragment(items, {items: ask, task.name: fan_out}, [_Exit(fan_out, "next")])
    if task.on_failure == "continue":
        # Items that cannot be listed (the template failed) skip the task, as a failed item would be skipped.
        ask["Catch"] = [{"ErrorEquals": [TASK_FAILED], "ResultPath": None}]
        fragment.exits.append(_Exit(ask, "catch", f"{task.name}.continue"))
    return fragment


def _policies(task: Task, name: str, fragment: _Fragment) -> None:
    """Timeout, Retry and Catch on the state that does the work (`name`, a task or an item)."""
    state = fragment.states[name]
    if task.timeout is not None and not task.is_inquiry:
        state["TimeoutSeconds"] = task.timeout
    policy = task.retry_policy
    if policy is not None and policy.max_attempts > 0:
        state["Retry"] = [_retrier(policy)]
    if task.on_failure == "continue":
        state["Catch"] = [{"ErrorEquals": list(CONTINUED_ERRORS), "ResultPath": None}]
        fragment.exits.append(_Exit(state, "catch", f"{name}.continue"))
    elif task.timeout is not None and not task.is_inquiry:
        timed_out = f"{name}.timeout"
        state["Catch"] = [{"ErrorEquals": [STATES_TIMEOUT], "ResultPath": None, "Next": timed_out}]
        # The cause reads like the runtime's own task failures: JSON naming the task and the error.
        cause = json.dumps({"task": task.name, "error": f"timed out after {task.timeout} s"})
        fragment.states[timed_out] = {"Type": "Fail", "Error": TASK_TIMED_OUT, "Cause": cause}


def _retrier(policy: RetryPolicy) -> dict[str, Any]:
    """The action-level retry policy in Step Functions' words (which it was modelled on)."""
    return {"ErrorEquals": [RETRIED_ERRORS[cause] for cause in RETRIED_ERRORS if cause in policy.on],
            "IntervalSeconds": max(1, math.ceil(policy.delay_seconds)),
            "BackoffRate": float(policy.backoff_multiplier),
            "MaxAttempts": policy.max_attempts,
            "MaxDelaySeconds": max(1, math.ceil(policy.max_delay_seconds))}


def state_names(asl: dict[str, Any]) -> list[str]:
    """Every state name in the definition, nested ones included (AWS wants them unique machine-wide)."""
    names: list[str] = []

    def walk(states: dict[str, Any]) -> None:
        for name, state in states.items():
            names.append(name)
            for branch in state.get("Branches", []):
                walk(branch["States"])
            if "ItemProcessor" in state:
                walk(state["ItemProcessor"]["States"])

    walk(asl["States"])
    return names

