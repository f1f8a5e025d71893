"""Helpers for the workflow and inquiry e2e tests (docs/workflows.md), over real HTTP.

A workflow is an action with `runner_type: workflow`; each of its tasks (and
each item of a `with_items` task) is a child execution whose
`parent_execution_id` is the workflow's. An inquiry pauses its execution (and
its workflow) until someone answers it or its `ttl` passes. Everything here
polls on a deadline and says what it last saw.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import httpx
import yaml

from tests.e2e.client import User
from tests.e2e.flow import FINAL, get_execution, items, poll, register_pack, unique_ref

WORKFLOW_TIMEOUT_S = 90.0

# A python3 action that returns its parameters; declare the names it takes (unknown parameters are refused).
RETURN_PARAMS_PY = """\
def run(**params):
    return params
"""
# Fails with exit code 3 and a line on stderr.
FAIL_SH = """\
#!/bin/sh
echo "task failed on purpose" >&2
exit 3
"""


def at(stamp: str) -> datetime:
    """An ISO-8601 timestamp of the API."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def now() -> datetime:
    """The wall clock, comparable with the API's timestamps (the cloud runs on this host)."""
    return datetime.now(UTC)


def pack_action(
    name: str,
    runner_type: str,
    code: str,
    parameters: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, str]:
    """The files of one pack action, `actions/<name>.yaml` and its entry point (written from the pack root)."""
    ext = {"python3": "py", "shell": "sh"}[runner_type]
    spec: dict[str, Any] = {"name": name, "runner_type": runner_type, "entry_point": f"actions/{name}.{ext}"}
    if parameters is not None:
        spec["parameters"] = parameters
    spec.update(extra)
    return {f"actions/{name}.yaml": yaml.safe_dump(spec, sort_keys=False), f"actions/{name}.{ext}": code}


def untyped(*names: str) -> dict[str, dict[str, Any]]:
    """Parameter specs accepting any JSON value (null too) under each name."""
    return {name: {} for name in names}


def new_pack(user: User, prefix: str, files: dict[str, str] | None = None) -> str:
    """Register a pack (with the given action files, or one placeholder file); its ref."""
    ref = unique_ref(prefix)
    register_pack(user, ref, files or {"README.md": f"{ref}: workflows of an e2e test\n"})
    return ref


def create_workflow(
    user: User,
    pack: str,
    name: str,
    tasks: list[dict[str, Any]],
    *,
    parameters: dict[str, Any] | None = None,
    output: dict[str, Any] | None = None,
    timeout: int | None = None,
) -> str:
    """`POST /api/v1/actions` a workflow action with its definition inline; its ref."""
    definition: dict[str, Any] = {"tasks": tasks}
    if output is not None:
        definition["output"] = output
    if timeout is not None:
        definition["timeout"] = timeout
    body = {
        "ref": f"{pack}.{name}",
        "pack": pack,
        "runner_type": "workflow",
        "parameters": parameters or {},
        "workflow": definition,
    }
    resp = user.post("/api/v1/actions", body)
    assert resp.status_code == 201, (resp.status_code, resp.text)
    assert resp.json()["runner_type"] == "workflow", resp.json()
    return f"{pack}.{name}"


def start(user: User, action_ref: str, parameters: dict[str, Any] | None = None) -> int:
    """`POST /api/v1/executions`; the new execution's id (it is not awaited)."""
    resp = user.post("/api/v1/executions", {"action_ref": action_ref, "parameters": parameters or {}})
    assert resp.status_code == 201, (resp.status_code, resp.text)
    execution_id = resp.json()["id"]
    assert isinstance(execution_id, int)
    return execution_id


class EndedElsewhere(AssertionError):
    """An awaited execution reached a final status other than the one awaited."""


def wait_status(
    user: User, execution_id: int, statuses: Iterable[str] | str, timeout: float = WORKFLOW_TIMEOUT_S
) -> dict[str, Any]:
    """The execution once its status is one of `statuses`; fails at once if it ends in another final status."""
    wanted = {statuses} if isinstance(statuses, str) else set(statuses)
    seen: list[dict[str, Any]] = []

    def probe() -> dict[str, Any] | None:
        execution = get_execution(user, execution_id)
        seen[:] = [execution]
        if execution["status"] in wanted:
            return execution
        if execution["status"] in FINAL:
            raise EndedElsewhere(
                f"execution {execution_id} ended {execution['status']!r}, not {sorted(wanted)}: {execution}"
            )
        return None

    try:
        return poll(probe, f"execution {execution_id} to be {sorted(wanted)}", user.cloud, timeout)
    except EndedElsewhere:
        raise
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nexecution: {seen[-1] if seen else None}") from None


def wait_done(user: User, execution_id: int, timeout: float = WORKFLOW_TIMEOUT_S) -> dict[str, Any]:
    """The execution once it is final (whatever the final status)."""
    return wait_status(user, execution_id, FINAL, timeout)


def run_workflow(
    user: User, action_ref: str, parameters: dict[str, Any] | None = None, timeout: float = WORKFLOW_TIMEOUT_S
) -> dict[str, Any]:
    """Run a workflow and wait for it to finish; the final execution."""
    return wait_done(user, start(user, action_ref, parameters), timeout)


def children(user: User, execution_id: int) -> list[dict[str, Any]]:
    """A workflow's child executions (its tasks' and items'), by id (creation order)."""
    got = items(user, "/api/v1/executions", parent_execution_id=execution_id)
    for child in got:
        assert child["parent_execution_id"] == execution_id, str(child)
    return sorted(got, key=lambda e: e["id"])


def of_task(kids: list[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    """The children that ran `task`, in creation order."""
    return [k for k in kids if k.get("task_name") == task]


def task_entries(execution: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A workflow execution's `tasks` by name (the list is in definition order)."""
    tasks = execution.get("tasks")
    assert isinstance(tasks, list), f"a workflow execution shows its tasks: {execution}"
    return {t["name"]: t for t in tasks}


def output(execution: dict[str, Any]) -> Any:
    """`result.output` of an execution."""
    result = execution.get("result") or {}
    return result.get("output")


def span(executions: list[dict[str, Any]]) -> float:
    """Seconds from the first start to the last finish."""
    starts = [at(e["started"]) for e in executions]
    ends = [at(e["finished"]) for e in executions]
    return (max(ends) - min(starts)).total_seconds()


def max_overlap(executions: list[dict[str, Any]]) -> int:
    """The most executions that were running at one instant (from `started`/`finished`)."""
    marks: list[tuple[datetime, int]] = []
    for e in executions:
        marks.append((at(e["started"]), 1))
        marks.append((at(e["finished"]), -1))
    # An end at the same instant as a start is not an overlap: ends sort first.
    marks.sort(key=lambda m: (m[0], m[1]))
    running = peak = 0
    for _, step in marks:
        running += step
        peak = max(peak, running)
    return peak


def assert_sequential(executions: list[dict[str, Any]]) -> None:
    """Each execution started no earlier than the previous one finished."""
    for before, after in pairwise(executions):
        assert at(after["started"]) >= at(before["finished"]), (
            f"{after.get('task_name')} (execution {after['id']}) started {after['started']}, "
            f"before {before.get('task_name')} (execution {before['id']}) finished {before['finished']}"
        )


# --- inquiries ---------------------------------------------------------------------------------------------


def inquiries(user: User, **filters: Any) -> list[dict[str, Any]]:
    """`GET /api/v1/inquiries` with filters (`status`, `execution_id`)."""
    return items(user, "/api/v1/inquiries", **filters)


def wait_inquiry(
    user: User,
    *,
    workflow_execution_id: int | None = None,
    execution_id: int | None = None,
    exclude: Iterable[int] = (),
    timeout: float = WORKFLOW_TIMEOUT_S,
) -> dict[str, Any]:
    """The one pending inquiry of a workflow (or of an execution), not one of `exclude`."""
    skip = set(exclude)

    def probe() -> dict[str, Any] | None:
        filters: dict[str, Any] = {"status": "pending"}
        if execution_id is not None:
            filters["execution_id"] = execution_id
        found = [
            i
            for i in inquiries(user, **filters)
            if i["id"] not in skip
            and (workflow_execution_id is None or i.get("workflow_execution_id") == workflow_execution_id)
        ]
        assert len(found) <= 1, f"more than one pending inquiry: {found}"
        return found[0] if found else None

    what = f"a pending inquiry of {'workflow' if workflow_execution_id else 'execution'} "
    return poll(probe, what + str(workflow_execution_id or execution_id), user.cloud, timeout)


def get_inquiry(user: User, inquiry_id: int) -> dict[str, Any]:
    """One inquiry."""
    resp = user.get(f"/api/v1/inquiries/{inquiry_id}")
    assert resp.status_code == 200, (resp.status_code, resp.text)
    return dict(resp.json())


def respond(user: User, inquiry_id: int, response: Any) -> httpx.Response:
    """`POST /api/v1/inquiries/{id}/respond {"response": ...}` (the answer is returned as is)."""
    return user.post(f"/api/v1/inquiries/{inquiry_id}/respond", {"response": response})


def answer(user: User, inquiry_id: int, response: Any) -> dict[str, Any]:
    """Respond and expect success; the answered inquiry as `GET` then shows it."""
    resp = respond(user, inquiry_id, response)
    assert resp.status_code == 200, (resp.status_code, resp.text)
    return get_inquiry(user, inquiry_id)


def error_of(resp: httpx.Response) -> str:
    """The error message of an error answer (which must follow the contract)."""
    body = resp.json()
    assert "error" in body and body["error"].get("code"), str(body)
    return str(body["error"].get("message", ""))
