"""What a workflow's templates see, loaded from PostgreSQL when a task needs it.

State machines carry ids only; parameters, results and items live in the
database, so every task renders its input from the workflow execution and
its children as they are now. Pure assembly over rows, plus the lazy
datastore view.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from chalicelib.core import status
from chalicelib.core.workflow import Task, Workflow, implicit_with_items, parse_workflow
from chalicelib.datastore import DatastoreView
from chalicelib.db.pool import Cursor
from chalicelib.executions.request import open_secrets

# Names a bare parameter never shadows.
RESERVED = frozenset({"parameters", "execution", "item", "index", "datastore", "trigger", "event", "workflow"})


@lru_cache(maxsize=256)
def _parse(text: str) -> Workflow:
    snapshot = json.loads(text)
    if "implicit" in snapshot:
        spec = snapshot["implicit"]
        return implicit_with_items(spec["action_ref"], spec["with_items"], spec.get("concurrency"))
    return parse_workflow(snapshot.get("definition") or {})


def definition(snapshot: Mapping[str, Any]) -> Workflow:
    """The workflow an execution runs, from the snapshot it was requested with (parsed once per process)."""
    return _parse(json.dumps(snapshot, sort_keys=True))


def latest(children: list[dict[str, Any]]) -> dict[tuple[str, int | None], dict[str, Any]]:
    """The child that counts for each (task, item): the newest (a retried task has several)."""
    found: dict[tuple[str, int | None], dict[str, Any]] = {}
    for child in children:
        if child.get("task_name") is not None:
            found[(str(child["task_name"]), child.get("item_index"))] = child
    return found


def output_of(child: Mapping[str, Any]) -> Any:
    """A task's result as templates read it: its action's output (JSON printed, `run()`'s value, a response)."""
    result = child.get("result") or {}
    if child.get("status") in (status.SUCCEEDED, status.SUCCEEDED_WITH_ERRORS):
        return result.get("output")
    if child.get("status") in status.FINAL:
        return {"error": result.get("error"), "status": child.get("status"), "output": result.get("output")}
    return None


@lru_cache(maxsize=1024)
def _mentions(text: str, names: frozenset[str]) -> bool:
    return any(re.search(rf"\b{re.escape(name)}\b", text) for name in names)


def reads_results(wf: Workflow, task: Task) -> bool:
    """Whether any template of `task` names another task (so its results must be loaded to render it)."""
    if wf.implicit:
        return False
    text = json.dumps([task.input, task.with_items, task.inquiry.model_dump() if task.inquiry else None])
    if "{{" not in text and "{%" not in text:
        return False
    return _mentions(text, frozenset(t.name for t in wf.tasks if t.name != task.name))


def task_results(wf: Workflow, children: list[dict[str, Any]]) -> dict[str, Any]:
    """Each task's result by name: one output, or for a with_items task the list of its items' outputs."""
    newest = latest(children)
    results: dict[str, Any] = {}
    for task in wf.tasks:
        if task.with_items is not None:
            items = sorted((index, child) for (name, index), child in newest.items()
                           if name == task.name and index is not None)
            if items:
                results[task.name] = [output_of(child) for _, child in items]
        elif (task.name, None) in newest:
            results[task.name] = output_of(newest[(task.name, None)])
    return results


def build(cur: Cursor, row: Mapping[str, Any], wf: Workflow, children: list[dict[str, Any]],
          *, item: Any = None, index: int | None = None) -> dict[str, Any]:
    """The template context of one of the workflow's tasks (or of its output)."""
    tenant_id, execution_id = int(row["tenant_id"]), int(row["id"])
    params = {**(row.get("parameters") or {}), **open_secrets(tenant_id, execution_id, row.get("secret_parameters"))}
    # An action's own with_items has one task no template names: its parameters keep their bare names.
    results = {} if wf.implicit else task_results(wf, children)
    task_names = set() if wf.implicit else {task.name for task in wf.tasks}
    context: dict[str, Any] = {
        name: value for name, value in params.items() if name not in RESERVED and name not in task_names
    }
    context.update(
        parameters=params,
        execution={"id": execution_id, "params": params, "parameters": params},
        workflow={"execution_id": execution_id, "action_ref": row.get("action_ref")},
        datastore=DatastoreView(cur, tenant_id),
    )
    if row.get("event_id") is not None:
        context["trigger"] = {"data": row.get("trigger_payload"), "id": row.get("trigger_id"),
                              "type": row.get("trigger_type"), "ref": row.get("trigger_ref")}
        context["event"] = {"id": row.get("event_id"), "payload": row.get("trigger_payload"),
                            "data": row.get("trigger_payload")}
    for name, value in results.items():
        context[name] = {"result": value}
    if index is not None:
        context["item"], context["index"] = item, index
    return context
