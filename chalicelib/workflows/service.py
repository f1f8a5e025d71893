"""The workflow handler: what each `workflow-tasks` message asks, done idempotently.

Step Functions owns control flow (order, fan-out, retry, catch); this module
owns what a step means in Attune's terms, in PostgreSQL:

- `start`: create (once per compiled definition) and start the workflow's
  state machine; arm the workflow's timeout.
- `task`: a state waits on a task token: render the task's input from the
  workflow's context and request its child execution with that token (a
  duplicate delivery finds the token taken and creates nothing); the
  lifecycle's completion of the child answers the token (`callbacks`).
- `items`: render a with_items task's list, keep it, answer with its indices.
- `finish` / `fail`: the state machine ended; complete the workflow.
- `cancel` / `timeout`: fail every outstanding token (`Attune.Canceled`:
  `StopExecution` does not release a token wait), cancel running children,
  stop the state machine, end the workflow.
- `expire`: an inquiry's ttl ran out (`inquiries.expire_due`).

Boto3 calls happen outside transactions, after the database change they
follow is committed; a crash between the two is mended by SQS redelivery
(the message is deleted only after the handler returns).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from chalicelib import inquiries
from chalicelib.aws import queues, states
from chalicelib.core import status
from chalicelib.core.criteria import TemplateFailure, render
from chalicelib.core.errors import Conflict, NotFound
from chalicelib.core.workflow import Workflow, asl_digest, compile_asl, substitute
from chalicelib.db import inquiries as inquiry_rows
from chalicelib.db import outbox
from chalicelib.db import workflows as db
from chalicelib.db.actions import find_for_run
from chalicelib.db.pool import Cursor, system_tx
from chalicelib.executions import lifecycle
from chalicelib.executions.request import request_execution
from chalicelib.models.messages import WorkflowMessage
from chalicelib.pipeline.outbox import Pending, enqueue, publish
from chalicelib.worker.results import result_doc
from chalicelib.workflows import context

log = logging.getLogger(__name__)

ASK_ACTION = "core.ask"
MAX_ITEMS = 10_000  # the indices travel in the state (256 KB); items themselves stay in PostgreSQL
WORKFLOW_ERRORS = ("Attune.TaskFailed", "Attune.InquiryExpired")
ACTIVE_WORKFLOW = (status.RUNNING, status.PAUSED)


def _actor(execution_id: int) -> str:
    return f"workflow:{execution_id}"


def task_cause(task: str | None, error: str, execution_id: int | None = None) -> str:
    """A SendTaskFailure cause: which task failed and why, as JSON the `fail` handler reads back."""
    return json.dumps({"task": task, "execution_id": execution_id, "error": error})


# -- start -------------------------------------------------------------------------
def state_machine_for(wf: Workflow) -> str:
    """The ARN of the state machine that runs `wf`, created when it does not exist yet."""
    asl = compile_asl(wf)
    return states.ensure_state_machine(asl_digest(asl), substitute(asl, queues.queue_url("workflow-tasks")))


def _start(message: WorkflowMessage) -> None:
    tenant_id, execution_id = message.tenant_id, message.execution_id
    with system_tx() as cur:
        row = db.load(cur, tenant_id, execution_id)
        if row is None or row["status"] not in ACTIVE_WORKFLOW or row["sfn_execution"] or row["workflow"] is None:
            outbox.ack(cur, message.outbox_id)
            return
    wf = context.definition(row["workflow"])
    try:
        try:
            arn = states.start_execution(state_machine_for(wf), tenant_id, execution_id)
        except states.MachineGone:  # an emulator restarted without it: create it again
            arn = states.start_execution(state_machine_for(wf), tenant_id, execution_id)
    except states.DefinitionRefused as exc:  # no redelivery can mend it: the workflow fails, saying why
        _refused(message, str(exc))
        return
    pending: list[Pending] = []
    with system_tx() as cur:
        db.set_sfn_execution(cur, tenant_id, execution_id, arn)
        current = db.load(cur, tenant_id, execution_id)
        stop = current is None or current["status"] in status.FINAL
        if wf.timeout and not stop:
            timeout = WorkflowMessage(kind="timeout", tenant_id=tenant_id, execution_id=execution_id)
            pending.append(enqueue(cur, "workflow-tasks", timeout.model_dump(exclude_none=True), delay_s=wf.timeout))
        outbox.ack(cur, message.outbox_id)
    if stop:  # canceled while it was being started
        states.stop_execution(arn, "the workflow ended before its state machine started")
    publish(pending)


def _refused(message: WorkflowMessage, error: str) -> None:
    pending: list[Pending] = []
    with system_tx() as cur:
        moved = lifecycle.complete(cur, message.tenant_id, message.execution_id, final=status.FAILED,
                                   result=result_doc(error=error), actor=_actor(message.execution_id),
                                   detail={"stage": "start"})
        if moved is not None:
            pending += moved.messages
        outbox.ack(cur, message.outbox_id)
    publish(pending)


# -- task and items -------------------------------------------------------------------
def _request_task(cur: Cursor, row: dict[str, Any], wf: Workflow, message: WorkflowMessage) -> list[Pending]:
    """The child execution of one task (or one item of it), carrying the token that waits on it."""
    tenant_id, execution_id = int(row["tenant_id"]), int(row["id"])
    task = wf.task(str(message.task))
    item: Any = None
    if message.index is not None:
        items = (row.get("workflow_items") or {}).get(task.name) or []
        item = items[message.index] if message.index < len(items) else None
    # The other tasks' results only when a template of this one could read them (most read none).
    children = db.children(cur, tenant_id, execution_id) if context.reads_results(wf, task) else []
    ctx = context.build(cur, row, wf, children, item=item, index=message.index)
    where = f"task '{task.name}'"
    failure: str | None = None
    parameters: Any = {}
    try:
        if task.inquiry is not None:
            spec = task.inquiry
            asked = {"prompt": spec.prompt, "schema": spec.schema_, "ttl": spec.ttl, "default": spec.default,
                     "roles": [str(r) for r in spec.roles]}
            parameters = render(asked, ctx, f"{where} inquiry")
            parameters = {k: v for k, v in parameters.items() if v is not None}
        else:
            parameters = render(task.input or {}, ctx, f"{where} input")
    except TemplateFailure as exc:
        failure = f"template error: {exc.message}"
    if not isinstance(parameters, dict):
        parameters = {}
    ref = ASK_ACTION if task.inquiry is not None else str(task.action)
    if wf.implicit:  # the action's own with_items: each item also gets the workflow's parameters
        parameters = {**ctx["parameters"], **parameters}
    action = find_for_run(cur, tenant_id, ref)
    if action is None or not action["enabled"]:
        raise _TaskRefused(f"{where}: action {ref!r} not found or disabled")
    requested = request_execution(
        cur, tenant_id=tenant_id, action=action, parameters=parameters, actor=_actor(execution_id),
        parent_execution_id=execution_id, task_token=message.task_token, failure=failure,
        task_name=task.name, item_index=message.index, item_of_self=wf.implicit,
    )
    return requested.messages


class _TaskRefused(Exception):
    """A task that cannot even be requested (its action is gone): its token fails with this message."""


def _task(message: WorkflowMessage) -> None:
    token = str(message.task_token)
    tenant_id, execution_id = message.tenant_id, message.execution_id
    refusal: tuple[str, str] | None = None
    pending: list[Pending] = []
    with system_tx() as cur:
        # Shared: a Map's items start side by side; the end (finish, fail, cancel) takes it whole. (Two
        # inquiry tasks pausing the workflow at once may deadlock on the upgrade: PostgreSQL aborts one,
        # whose message is redelivered and then goes through.)
        db.share(cur, tenant_id, execution_id)
        row = db.load(cur, tenant_id, execution_id)
        if row is None or row["status"] not in ACTIVE_WORKFLOW or row["workflow"] is None:
            refusal = ("Attune.Canceled", "the workflow is no longer running")
        else:
            try:
                pending = _request_task(cur, row, context.definition(row["workflow"]), message)
            except _TaskRefused as exc:
                refusal = ("Attune.TaskFailed", str(exc))
            except KeyError:
                refusal = ("Attune.TaskFailed", f"the workflow has no task {message.task!r}")
        outbox.ack(cur, message.outbox_id)
    publish(pending)
    if refusal is not None:
        states.send_task_failure(token, refusal[0], task_cause(message.task, refusal[1]))


def _render_items(cur: Cursor, row: dict[str, Any], wf: Workflow, task_name: str) -> list[Any]:
    """A with_items task's list, rendered now; a TemplateFailure says why it is not a usable list."""
    task = wf.task(task_name)
    where = f"task '{task.name}' with_items"
    ctx = context.build(cur, row, wf, db.children(cur, int(row["tenant_id"]), int(row["id"])))
    value = render(task.with_items, ctx, where)
    if not isinstance(value, list):
        raise TemplateFailure(f"{where}: must be a list, got {type(value).__name__}: {value!r:.80}")
    if len(value) > MAX_ITEMS:
        raise TemplateFailure(f"{where}: {len(value)} items; at most {MAX_ITEMS}")
    return value


def _items(message: WorkflowMessage) -> None:
    """Answer a with_items task's `items` state with its indices (the items stay in PostgreSQL).

    A list that cannot be rendered fails the task through a failed child
    execution that says why (Step Functions' emulator drops failure causes,
    and the user looks for the reason in the execution tree anyway).
    """
    token = str(message.task_token)
    tenant_id, execution_id = message.tenant_id, message.execution_id
    canceled = False
    items: list[Any] | None = None
    pending: list[Pending] = []
    with system_tx() as cur:
        db.lock(cur, tenant_id, execution_id)
        row = db.load(cur, tenant_id, execution_id)
        if row is None or row["status"] not in ACTIVE_WORKFLOW or row["workflow"] is None:
            canceled = True
        else:
            wf = context.definition(row["workflow"])
            task = wf.task(str(message.task))
            try:
                items = _render_items(cur, row, wf, task.name)
                db.set_items(cur, tenant_id, execution_id, task.name, items)
            except TemplateFailure as exc:
                pending = _failed_child(cur, row, wf, task.name, token=token,
                                        error=f"template error: {exc.message}")
        outbox.ack(cur, message.outbox_id)
    publish(pending)
    if canceled:
        states.send_task_failure(token, "Attune.Canceled", task_cause(message.task, "the workflow is not running"))
    elif items is not None:
        states.send_task_success(token, {"indices": list(range(len(items)))})


def _failed_child(cur: Cursor, row: dict[str, Any], wf: Workflow, task_name: str, *, token: str,
                  error: str) -> list[Pending]:
    """A child execution of the task, failed at once with `error`; its callback fails the token."""
    task = wf.task(task_name)
    ref = ASK_ACTION if task.inquiry is not None else str(task.action)
    action = find_for_run(cur, int(row["tenant_id"]), ref)
    if action is None:
        raise _TaskRefused(f"task '{task_name}': action {ref!r} not found")
    requested = request_execution(
        cur, tenant_id=int(row["tenant_id"]), action=action, parameters={}, actor=_actor(int(row["id"])),
        parent_execution_id=int(row["id"]), task_token=token, failure=error, task_name=task_name,
        item_of_self=wf.implicit,
    )
    return requested.messages


# -- the end: finish, fail, cancel, timeout -----------------------------------------------
def _finish(message: WorkflowMessage) -> None:
    tenant_id, execution_id = message.tenant_id, message.execution_id
    pending: list[Pending] = []
    with system_tx() as cur:
        db.lock(cur, tenant_id, execution_id)
        row = db.load(cur, tenant_id, execution_id)
        if row is not None and row["status"] in status.ACTIVE and row["workflow"] is not None:
            wf = context.definition(row["workflow"])
            children = db.children(cur, tenant_id, execution_id)
            swallowed = sorted({name for (name, _), child in context.latest(children).items()
                                if child["status"] not in (status.SUCCEEDED, status.SUCCEEDED_WITH_ERRORS)})
            try:
                if wf.output is not None:
                    output = render(wf.output, context.build(cur, row, wf, children), "output")
                else:
                    output = context.task_results(wf, children)
                final = status.SUCCEEDED_WITH_ERRORS if swallowed else status.SUCCEEDED
                result = result_doc(output=output)
                if swallowed:
                    result["error"] = f"failed tasks continued past: {', '.join(swallowed)}"
            except TemplateFailure as exc:
                final, result = status.FAILED, result_doc(error=f"template error: {exc.message}")
            if row["status"] == status.CANCELING:
                final, result = status.CANCELED, result_doc(error="canceled")
            moved = lifecycle.complete(cur, tenant_id, execution_id, final=final, result=result,
                                       actor=_actor(execution_id), detail={"tasks_with_errors": swallowed})
            if moved is not None:
                pending += moved.messages
        outbox.ack(cur, message.outbox_id)
    publish(pending)


def _failure_text(message: WorkflowMessage, children: list[dict[str, Any]], continued: frozenset[str]) -> str:
    """Why the workflow failed, in words: which task, and its error — read from the execution tree.

    Step Functions' error name says what kind of failure it was; the task and
    its reason come from the children (the emulator drops failure causes).
    """
    error = message.error or ""
    if error == "Attune.EngineLost":
        return message.cause or "the workflow engine lost its execution"
    if error in ("States.Timeout", "Attune.TaskTimedOut"):
        running = sorted({str(c["task_name"]) for c in children if c["status"] in status.ACTIVE and c.get("task_name")})
        return f"task {', '.join(repr(t) for t in running)} timed out" if running else "a task timed out"
    ended = [c for c in context.latest(children).values() if c["status"] in (status.FAILED, status.CANCELED)]
    ended = [c for c in ended if c["task_name"] not in continued] or ended  # the one that aborted, first
    if ended:
        last = max(ended, key=lambda c: int(c["id"]))
        if last["status"] == status.CANCELED:
            return f"task '{last['task_name']}' was canceled"
        reason = (last.get("result") or {}).get("error") or "failed"
        return f"task '{last['task_name']}' failed: {reason}"
    try:
        detail = json.loads(message.cause or "{}")
    except json.JSONDecodeError:
        detail = {}
    if isinstance(detail, dict) and detail.get("task"):
        return f"task '{detail['task']}' failed: {detail.get('error') or error}"
    return f"{error}: {message.cause}" if message.cause else (error or "the workflow failed")


def _wind_down(cur: Cursor, row: dict[str, Any], actor: str) -> tuple[list[Pending], list[str]]:
    """Cancel the workflow's active children, expire its inquiries; the messages and the tokens to fail."""
    tenant_id, execution_id = int(row["tenant_id"]), int(row["id"])
    pending: list[Pending] = []
    tokens: list[str] = []
    for child in db.children(cur, tenant_id, execution_id):
        if child["status"] not in status.ACTIVE:
            continue
        if child.get("task_token"):
            tokens.append(str(child["task_token"]))
        try:
            pending += lifecycle.cancel(cur, tenant_id, int(child["id"]), actor=actor).messages
        except (Conflict, NotFound):  # it finished meanwhile
            continue
    inquiry_rows.expire_of_workflow(cur, tenant_id, execution_id)
    return pending, tokens


def _end(message: WorkflowMessage, *, final: str, error: str, sources: tuple[str, ...]) -> None:
    """End the workflow as `final`: stop everything of it first, then complete it."""
    tenant_id, execution_id = message.tenant_id, message.execution_id
    actor = _actor(execution_id)
    with system_tx() as cur:
        db.lock(cur, tenant_id, execution_id)
        row = db.load(cur, tenant_id, execution_id)
        if row is None or row["status"] not in sources:
            outbox.ack(cur, message.outbox_id)
            return
        pending, tokens = _wind_down(cur, row, actor)
    publish(pending)
    for token in tokens:
        states.send_task_failure(token, "Attune.Canceled", task_cause(None, error))
    if row.get("sfn_execution"):
        states.stop_execution(str(row["sfn_execution"]), error)
    pending = []
    with system_tx() as cur:
        db.lock(cur, tenant_id, execution_id)
        current = db.load(cur, tenant_id, execution_id)
        if current is not None and current["status"] == status.CANCELING:
            final = status.CANCELED
        moved = lifecycle.complete(cur, tenant_id, execution_id, final=final, result=result_doc(error=error),
                                   actor=actor, detail={"stage": message.kind})
        if moved is not None:
            pending += moved.messages
        outbox.ack(cur, message.outbox_id)
    publish(pending)


def _fail(message: WorkflowMessage) -> None:
    with system_tx() as cur:
        row = db.load(cur, message.tenant_id, message.execution_id)
        children = db.children(cur, message.tenant_id, message.execution_id)
    wf = context.definition(row["workflow"]) if row and row["workflow"] else None
    continued = frozenset(t.name for t in wf.tasks if t.on_failure == "continue") if wf else frozenset()
    _end(message, final=status.FAILED, error=_failure_text(message, children, continued), sources=tuple(status.ACTIVE))


def _cancel(message: WorkflowMessage) -> None:
    _end(message, final=status.CANCELED, error="canceled", sources=(status.CANCELING,))


def _timeout(message: WorkflowMessage) -> None:
    with system_tx() as cur:
        row = db.load(cur, message.tenant_id, message.execution_id)
    seconds = context.definition(row["workflow"]).timeout if row and row["workflow"] else None
    _end(message, final=status.FAILED, error=f"workflow timed out after {seconds}s", sources=ACTIVE_WORKFLOW)


def _expire(message: WorkflowMessage) -> None:
    with system_tx() as cur:
        pending = inquiries.expire_due(cur, message.tenant_id, message.execution_id)
        outbox.ack(cur, message.outbox_id)
    publish(pending)


HANDLERS: dict[str, Callable[[WorkflowMessage], None]] = {
    "start": _start,
    "task": _task,
    "items": _items,
    "finish": _finish,
    "fail": _fail,
    "cancel": _cancel,
    "timeout": _timeout,
    "expire": _expire,
}


def handle(message: WorkflowMessage) -> None:
    """Do what one workflow-tasks message asks (each kind is idempotent under redelivery)."""
    HANDLERS[message.kind](message)
