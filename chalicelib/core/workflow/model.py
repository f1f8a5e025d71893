"""The workflow language: tasks in a DAG, fan-out, retry/abort/continue, inquiries.

A workflow is user input registered once and run many times, so every
mistake that can be seen in the document is refused at registration (a 400
naming the task and the problem): unknown keys, unknown or cyclic
`depends_on`, template syntax, an inquiry that would be retried. What is
left for the runtime is only what depends on data (what a template renders
to, what an action returns).

The models are pydantic, strict and frozen like every contract of ours;
`parse_workflow` is the one way in, because the rules that span tasks
(unique names, the DAG, templates) are checked there, after the shapes.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.exceptions import ValidationError as SchemaViolation
from pydantic import AliasChoices, Field, PrivateAttr, ValidationError, field_validator

from chalicelib.core.errors import ValidationFailed
from chalicelib.core.templating import check_syntax, check_tree
from chalicelib.models.base import Contract
from chalicelib.models.packs import ACTION_REF_PATTERN, Description, RetryPolicy, Timeout

TASK_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
MAX_TASKS = 1000
MAX_INQUIRY_TTL = 7 * 24 * 3600
# Names a task may not take: the template context's own names (a task would hide them), and the states
# the compiler puts around the body (AWS wants state names unique in the whole state machine).
RESERVED_NAMES = frozenset({"parameters", "execution", "item", "index", "datastore", "trigger",
                            "Workflow", "Finish", "Failed", "Fail"})
IMPLICIT_TASK = "items"
DEFAULT_INQUIRY_PROMPT = "Do you approve?"


def default_inquiry_schema() -> dict[str, Any]:
    """A fresh copy of the approve/deny schema an inquiry gets when it names none."""
    return {"type": "object", "properties": {"approved": {"type": "boolean"}}, "required": ["approved"]}


TaskName = Annotated[str, Field(pattern=TASK_NAME_PATTERN)]
ActionRef = Annotated[str, Field(pattern=ACTION_REF_PATTERN)]
Role = Literal["admin", "editor", "executor", "viewer"]
OnFailure = Literal["abort", "continue", "retry"]


def _aliases(name: str) -> AliasChoices:
    """The snake_case key and StackStorm's kebab-case spelling of it."""
    return AliasChoices(name, name.replace("_", "-"))


def check_with_items(value: Any) -> Any:
    """A template string or a literal list; anything else is refused with the two forms named."""
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            raise ValueError("expected a template ('{{ parameters.items }}') or a list")
        return value
    if isinstance(value, list):
        return value
    raise ValueError(f"expected a template ('{{{{ parameters.items }}}}') or a list, got {type(value).__name__}")


def check_concurrency(value: Any) -> Any:
    """An integer >= 1 or "unlimited" (one message instead of pydantic's one per union member)."""
    if value is None or value == "unlimited":
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("expected an integer >= 1 or 'unlimited'")
    return value


class InquirySpec(Contract):
    """A human approval: the execution pauses until someone with one of `roles` answers, or `ttl` passes."""

    prompt: Annotated[str, Field(min_length=1, max_length=4096)] = DEFAULT_INQUIRY_PROMPT
    schema_: dict[str, Any] = Field(default_factory=default_inquiry_schema, alias="schema")
    ttl: Annotated[int, Field(ge=1, le=MAX_INQUIRY_TTL)] = 3600
    # The response used when the inquiry expires; None means expiry fails the task (Attune.InquiryExpired).
    default: dict[str, Any] | None = None
    # Who may answer; empty means any role that may respond to inquiries.
    roles: list[Role] = Field(default_factory=list)


class Task(Contract):
    """One node of the DAG: an action to run (once, or once per item) or an inquiry to wait on."""

    name: TaskName
    description: Description | None = None
    action: ActionRef | None = None
    inquiry: InquirySpec | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[TaskName] = Field(default_factory=list, validation_alias=_aliases("depends_on"))
    with_items: str | list[Any] | None = Field(None, validation_alias=_aliases("with_items"))
    concurrency: int | Literal["unlimited"] | None = None
    retry: RetryPolicy | None = None
    on_failure: OnFailure = Field("abort", validation_alias=_aliases("on_failure"))
    timeout: Timeout | None = None

    @field_validator("depends_on", mode="before")
    @classmethod
    def _one_name_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("with_items", mode="before")
    @classmethod
    def _with_items(cls, value: Any) -> Any:
        return None if value is None else check_with_items(value)

    @field_validator("concurrency", mode="before")
    @classmethod
    def _concurrency(cls, value: Any) -> Any:
        return check_concurrency(value)

    @property
    def is_inquiry(self) -> bool:
        """Whether the task waits on a human rather than running an action."""
        return self.inquiry is not None

    @property
    def concurrency_limit(self) -> int:
        """How many items run at once, as Step Functions' `MaxConcurrency` reads it: 0 = unlimited."""
        return self.concurrency if isinstance(self.concurrency, int) else 0

    @property
    def retry_policy(self) -> RetryPolicy | None:
        """The retries this task gets: its `retry`, or the defaults when it only says `on_failure: retry`."""
        if self.retry is not None:
            return self.retry
        return RetryPolicy() if self.on_failure == "retry" else None


class Workflow(Contract):
    """A workflow definition as registered; build it with `parse_workflow` (or `implicit_with_items`)."""

    parameters: dict[str, Any] | None = None
    description: Description | None = None
    tasks: Annotated[list[Task], Field(min_length=1, max_length=MAX_TASKS)]
    output: dict[str, Any] | None = None
    # Enforced by the runtime (it cancels the execution), not compiled into the state machine.
    timeout: Timeout | None = None
    _implicit: bool = PrivateAttr(default=False)
    _index: dict[str, Task] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        """Index the tasks by name once, for the runtime's per-message lookups."""
        self._index = {task.name: task for task in self.tasks}

    @property
    def implicit(self) -> bool:
        """Whether this is an action's own `with_items` rather than a user's workflow document."""
        return self._implicit

    def task(self, name: str) -> Task:
        """The task called `name` (a message from the state machine names it); KeyError if none."""
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(f"workflow has no task {name!r}") from None


def parse_workflow(doc: Mapping[str, Any], where: str = "workflow") -> Workflow:
    """Validate a workflow document; every refusal is a ValidationFailed starting with `where`."""
    if not isinstance(doc, Mapping):
        raise ValidationFailed(f"{where}: expected a mapping with 'tasks', got {type(doc).__name__}")
    try:
        wf = Workflow.model_validate(dict(doc))
    except ValidationError as exc:
        raise ValidationFailed(f"{where}: {_describe(exc, doc)}") from exc
    _check(wf, where)
    return wf


def implicit_with_items(action_ref: str, with_items: str | list[Any], concurrency: int | str | None = None) -> Workflow:
    """The seed's action-level `with_items` as a workflow of one task that runs the action per item.

    So one runtime serves both: the action's executions fan out exactly like
    a workflow task's, with the same concurrency and the same child executions.
    """
    for key, check, value in (("with_items", check_with_items, with_items),
                              ("concurrency", check_concurrency, concurrency)):
        try:
            check(value)
        except ValueError as exc:
            raise ValidationFailed(f"{key}: {exc}") from exc
    if isinstance(with_items, str):
        check_syntax(with_items, "with_items")
    else:
        check_tree(with_items, "with_items")
    task: dict[str, Any] = {"name": IMPLICIT_TASK, "action": action_ref, "with_items": with_items,
                            "input": {"item": "{{ item }}", "index": "{{ index }}"}}
    if concurrency is not None:
        task["concurrency"] = concurrency
    wf = parse_workflow({"tasks": [task]}, where=f"action {action_ref}")
    wf._implicit = True
    return wf


def referenced_actions(wf: Workflow) -> set[str]:
    """The action refs the tasks run, so registration can check they exist (and are visible)."""
    return {task.action for task in wf.tasks if task.action is not None}


def levels(wf: Workflow) -> list[list[Task]]:
    """Tasks by longest dependency depth (level 0 = no depends_on), in definition order within a level."""
    depth: dict[str, int] = {}
    for task in topological_order(wf.tasks):
        depth[task.name] = 1 + max((depth[d] for d in task.depends_on), default=-1)
    grouped: list[list[Task]] = [[] for _ in range(max(depth.values()) + 1)]
    for task in wf.tasks:
        grouped[depth[task.name]].append(task)
    return grouped


def topological_order(tasks: Sequence[Task]) -> list[Task]:
    """Dependencies first, ties broken by definition order; dependencies outside `tasks` are ignored.

    Deterministic on purpose: the compiled state machine (and so its
    content-addressed name) must not depend on anything but the document.
    """
    position = {task.name: i for i, task in enumerate(tasks)}
    waiting = {task.name: {d for d in task.depends_on if d in position} for task in tasks}
    dependents: dict[str, list[str]] = {task.name: [] for task in tasks}
    for name, deps in waiting.items():
        for dep in deps:
            dependents[dep].append(name)
    ready = [position[name] for name, deps in waiting.items() if not deps]
    heapq.heapify(ready)
    order: list[Task] = []
    while ready:
        task = tasks[heapq.heappop(ready)]
        order.append(task)
        for name in dependents[task.name]:
            waiting[name].discard(task.name)
            if not waiting[name]:
                heapq.heappush(ready, position[name])
    return order


def _check(wf: Workflow, where: str) -> None:
    """The rules pydantic cannot see: across tasks, inside templates, inquiry restrictions."""
    seen: set[str] = set()
    for task in wf.tasks:
        if task.name in seen:
            raise ValidationFailed(f"{where}: task name '{task.name}' is used twice")
        seen.add(task.name)
    for task in wf.tasks:
        _check_task(task, where)
    for task in wf.tasks:
        for dep in task.depends_on:
            if dep not in seen:
                raise ValidationFailed(f"{where}: task '{task.name}' depends on unknown task '{dep}'")
    cycle = _find_cycle(wf.tasks)
    if cycle:
        raise ValidationFailed(f"{where}: tasks {' -> '.join(cycle)} form a cycle")
    if wf.output is not None:
        check_tree(wf.output, f"{where}: output")


def _check_task(task: Task, where: str) -> None:
    label = f"{where}: task '{task.name}'"
    if task.name in RESERVED_NAMES:
        raise ValidationFailed(f"{label}: the name is reserved ({', '.join(sorted(RESERVED_NAMES))})")
    if (task.action is None) == (task.inquiry is None):
        given = "both" if task.action is not None else "neither"
        raise ValidationFailed(f"{label}: needs exactly one of 'action' or 'inquiry', has {given}")
    if task.concurrency is not None and task.with_items is None:
        raise ValidationFailed(f"{label}: 'concurrency' needs 'with_items'")
    if task.inquiry is not None:
        _check_inquiry(task, task.inquiry, label)
    check_tree(task.input, f"{label} input")
    if isinstance(task.with_items, str):
        check_syntax(task.with_items, f"{label} with_items")
    elif task.with_items is not None:
        check_tree(task.with_items, f"{label} with_items")


def _check_inquiry(task: Task, inquiry: InquirySpec, label: str) -> None:
    """An inquiry waits once for one answer: nothing to fan out, retry, feed or time out but its ttl."""
    refused = {"with_items": task.with_items is not None, "retry": task.retry_policy is not None,
               "timeout": task.timeout is not None, "input": bool(task.input)}
    for key, present in refused.items():
        if present:
            hint = " (use inquiry.ttl)" if key == "timeout" else ""
            raise ValidationFailed(f"{label}: an inquiry task cannot have {key}{hint}")
    check_syntax(inquiry.prompt, f"{label} inquiry.prompt")
    try:
        Draft202012Validator.check_schema(inquiry.schema_)
    except SchemaError as exc:
        raise ValidationFailed(f"{label} inquiry.schema: not a valid JSON Schema: {exc.message}") from exc
    if inquiry.default is not None:
        try:
            Draft202012Validator(inquiry.schema_).validate(inquiry.default)
        except SchemaViolation as exc:
            raise ValidationFailed(f"{label} inquiry.default: does not match inquiry.schema: {exc.message}") from exc


def _find_cycle(tasks: Sequence[Task]) -> list[str]:
    """One cycle in data-flow order (`a -> b` = b depends on a), or [] when the graph is a DAG."""
    done = {task.name for task in topological_order(tasks)}
    if len(done) == len(tasks):
        return []
    deps = {task.name: [d for d in task.depends_on if d not in done] for task in tasks}
    # Every task left waits on another left task; walking dependencies must come back to one.
    start = next(task.name for task in tasks if task.name not in done)
    walk = [start]
    while walk.count(walk[-1]) == 1:
        walk.append(deps[walk[-1]][0])
    first = walk.index(walk[-1])
    return list(reversed(walk[first:]))


def _describe(exc: ValidationError, doc: Mapping[str, Any]) -> str:
    """Pydantic's errors as `task 'b' retry.max_attempts: problem; ...`, naming tasks as authors do."""
    problems = []
    for err in exc.errors(include_url=False, include_input=False)[:5]:
        loc = list(err["loc"])
        head = ""
        if len(loc) >= 2 and loc[0] == "tasks" and isinstance(loc[1], int):
            head = _task_label(doc, loc[1])
            loc = loc[2:]
        path = ".".join(str(p) for p in loc)
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        where = " ".join(part for part in (head, path) if part) or "(document)"
        problems.append(f"{where}: {message}")
    return "; ".join(problems)


def _task_label(doc: Mapping[str, Any], index: int) -> str:
    tasks = doc.get("tasks")
    if isinstance(tasks, list) and index < len(tasks) and isinstance(tasks[index], Mapping):
        name = tasks[index].get("name")
        if isinstance(name, str) and name:
            return f"task '{name}'"
    return f"tasks[{index}]"
