"""Requesting an execution: the one way in for the API, the rules engine and (later) workflows.

The execution is created `requested` with its parameters checked against
the action's schema, then rejected at once (a missing required parameter, a
rule's template error: it never reaches a worker, and its `result.error`
says what to fix) or dispatched by runner kind — all in the caller's
transaction. Parameters declared `secret` are stored sealed, apart from the
readable ones, which hold only a mask.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from chalicelib import envelope
from chalicelib.core import params, status
from chalicelib.db import executions as db
from chalicelib.db.pipeline import execution_chain
from chalicelib.db.pool import Cursor
from chalicelib.executions import lifecycle
from chalicelib.pipeline.outbox import Pending


@dataclass
class Requested:
    """What a request produced: the execution row and the messages to publish after commit.

    `duplicate`: a workflow task's execution requested again for the same
    task token (a redelivered message) — nothing was created, `execution` is empty.
    """

    execution: dict[str, Any]
    messages: list[Pending] = field(default_factory=list)
    duplicate: bool = False

    @property
    def dispatched(self) -> bool:
        """Whether it went on towards a runner (False: it failed at once)."""
        return bool(self.execution["status"] != status.FAILED)


def secrets_name(execution_id: int) -> str:
    """What the sealed secret parameters are bound to: they open for this execution only."""
    return f"execution/{execution_id}/secret-parameters"


def open_secrets(tenant_id: int, execution_id: int, sealed: bytes | None) -> dict[str, Any]:
    """The secret parameter values of an execution (for the worker that runs it, and nobody else)."""
    if sealed is None:
        return {}
    opened: dict[str, Any] = json.loads(envelope.open_blob(tenant_id, secrets_name(execution_id), sealed))
    return opened


# What an item of an action's own `with_items` adds to its parameters.
ITEM_PARAMETERS = {"item": {"description": "this child's item"}, "index": {"type": "integer"}}


def workflow_snapshot(action: dict[str, Any], *, item_of_self: bool = False) -> dict[str, Any] | None:
    """The workflow an execution of `action` runs, kept on the execution (a reload never changes it); None: not one.

    A workflow action's definition, or the seed's action-level `with_items`
    (one implicit task running the action's own code per item), unless this
    execution is one of those items.
    """
    if action.get("runner_type") == "workflow":
        return {"definition": action.get("workflow") or {}}
    if action.get("with_items") is not None and not item_of_self:
        return {"implicit": {"action_ref": action["ref"], "with_items": action["with_items"],
                             "concurrency": action.get("concurrency")}}
    return None


def request_execution(
    cur: Cursor,
    *,
    tenant_id: int,
    action: dict[str, Any],
    parameters: dict[str, Any],
    actor: str,
    created_by: int | None = None,
    enforcement_id: int | None = None,
    parent_execution_id: int | None = None,
    task_token: str | None = None,
    failure: str | None = None,
    task_name: str | None = None,
    item_index: int | None = None,
    item_of_self: bool = False,
    trace: str | None = None,
    depth: int | None = None,
) -> Requested:
    """Create, check and dispatch an execution of `action` (a row from `db.actions.find_for_run`).

    `failure` is an error found before the request (a rule's template that
    did not render): the execution is created and failed with it, so the
    user sees it where they look for what their rule did. A workflow's task
    passes its `task_token` (one execution per token: a second request for it
    is a `duplicate`), `task_name` and `item_index`; `item_of_self` marks an
    item of the action's own `with_items`, which gets `item` and `index`.
    `trace` and `depth` are the chain of the event a rule requests it for
    (none: the parent's, or a new trace).
    """
    if trace is None and parent_execution_id is not None:  # a workflow's task: its workflow's chain
        parent = execution_chain(cur, tenant_id, parent_execution_id)
        if parent is not None:
            trace, depth = str(parent["trace"]), int(parent["depth"])
    declared = action["parameters"] or {}
    if item_of_self:
        declared = {**declared, **ITEM_PARAMETERS}
    final_params, problems = (parameters, [failure]) if failure else params.check(declared, parameters)
    shown, hidden = params.split_secrets(declared, final_params)
    row = db.insert_execution(
        cur,
        tenant_id=tenant_id,
        action=action,
        parameters=shown,
        created_by=created_by,
        parent_execution_id=parent_execution_id,
        enforcement_id=enforcement_id,
        pack_storage_key=action.get("pack_storage_key"),
        task_token=task_token,
        workflow=workflow_snapshot(action, item_of_self=item_of_self),
        task_name=task_name,
        item_index=item_index,
        trace=trace,
        depth=depth,
    )
    if row is None:
        return Requested({}, [], duplicate=True)
    messages = lifecycle.created(cur, row, actor=actor).messages
    if problems:
        stage = "template" if failure else "validation"
        moved = lifecycle.reject(cur, row, "; ".join(problems), stage=stage)
    else:
        if hidden:
            sealed = envelope.seal(tenant_id, secrets_name(row["id"]), json.dumps(hidden).encode())
            db.set_secret_parameters(cur, tenant_id, row["id"], sealed)
        moved = lifecycle.dispatch(cur, row, str(action["runner_type"]))
    if moved is None:  # cannot happen for a row this transaction just inserted
        raise RuntimeError(f"execution {row['id']} moved before it was dispatched")
    messages += moved.messages
    return Requested(moved.row, messages)
