"""Inquiries: a human's answer (or its absence) ends the paused execution that asked.

An inquiry is the `inquiry` of an execution of `core.ask` (on its own, or a
workflow's inquiry task). Answering it, or its `ttl` running out, completes
that execution through the lifecycle — with the response (or the default)
as its output — whose callback then answers the workflow's task token; a
workflow none of whose inquiries waits any more resumes. Response and expiry
race on a compare-and-set: exactly one wins, the other sees a 409 / nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from chalicelib.core import status
from chalicelib.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from chalicelib.db import audit
from chalicelib.db import inquiries as db
from chalicelib.db.pool import Cursor
from chalicelib.executions import lifecycle
from chalicelib.models.messages import WorkflowMessage
from chalicelib.pipeline.outbox import Pending, enqueue, publish
from chalicelib.worker.results import result_doc

SERVICE_ACTOR = "service:inquiries"
EXPIRED_ERROR = "inquiry expired"
MAX_ERRORS_SHOWN = 5
AfterCommit = list[Callable[[], None]]


def _problems(schema: dict[str, Any], response: Any) -> list[str]:
    try:
        validator = Draft202012Validator(schema)
    except SchemaError:  # checked when asked; an unusable schema accepts nothing but an object
        validator = Draft202012Validator({"type": "object"})
    found = []
    for error in sorted(validator.iter_errors(response), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "required":
            field = error.message.split("'")[1] if "'" in error.message else error.message
            found.append(f"response.{f'{path}.' if path else ''}{field}: required")
        else:
            found.append(f"response{'.' + path if path else ''}: {error.message}")
    return found


def _finish(cur: Cursor, tenant_id: int, execution_id: int, workflow_id: int | None, *, final: str,
            result: dict[str, Any], actor: str, detail: dict[str, Any]) -> tuple[list[Pending], bool]:
    """Complete the inquiry's execution (its callback answers the workflow's token); resume the workflow.

    Also says whether a WebSocket client of the tenant listens (so an inquiry notification is worth sending).
    """
    messages: list[Pending] = []
    listened = False
    moved = lifecycle.complete(cur, tenant_id, execution_id, final=final, result=result, actor=actor, detail=detail)
    if moved is not None:
        messages += moved.messages
        listened = bool(moved.row.get("listened"))
    if workflow_id is not None:
        resumed = lifecycle.resume(cur, tenant_id, workflow_id, actor=actor)
        if resumed is not None:
            messages += resumed.messages
    return messages, listened


def respond(
    cur: Cursor, *, tenant_id: int, inquiry_id: int, response: Any, user_id: int, role: str, actor: str,
    after_commit: AfterCommit,
) -> dict[str, Any]:
    """Answer a pending inquiry; the inquiry as it is now.

    404 for another tenant's, 403 for a role not in its `roles`, 400 naming
    each field the schema refuses, 409 when it was answered or expired.
    """
    found = db.lock(cur, tenant_id, inquiry_id=inquiry_id)
    if found is None or int(found["id"]) != inquiry_id:
        raise NotFound(f"inquiry {inquiry_id} not found")
    roles = list(found["roles"] or [])
    if roles and role not in roles:
        raise Forbidden(f"this inquiry may be answered by {', '.join(roles)}; you are {role}")
    if found["status"] != "pending":
        raise Conflict(f"inquiry {inquiry_id} is {found['status']}; it can be answered only once, while pending")
    problems = _problems(found["schema"] or {}, response)
    if problems:
        more = f" (and {len(problems) - MAX_ERRORS_SHOWN} more)" if len(problems) > MAX_ERRORS_SHOWN else ""
        raise ValidationFailed("; ".join(problems[:MAX_ERRORS_SHOWN]) + more)
    answered = db.respond(cur, tenant_id, inquiry_id, response, user_id)
    if answered is None:  # held by the lock above; cannot happen
        raise Conflict(f"inquiry {inquiry_id} is no longer pending")
    audit.record(cur, tenant_id=tenant_id, actor=actor, action="inquiry.responded", entity_type="inquiry",
                 entity_id=inquiry_id, detail={"execution_id": found["execution_id"]})
    messages, listened = _finish(cur, tenant_id, int(found["execution_id"]), found["workflow_execution_id"],
                                 final=status.SUCCEEDED, result=result_doc(output=response), actor=actor,
                                 detail={"inquiry_id": inquiry_id, "responded": True})
    current = db.get(cur, tenant_id, inquiry_id)
    assert current is not None
    if listened:
        messages.append(enqueue(cur, "notifications", lifecycle.notification(
            tenant_id, "inquiry.responded", "inquiry", inquiry_id, dict(current))))
    after_commit.append(functools.partial(publish, messages))
    return current


def expire_due(cur: Cursor, tenant_id: int, execution_id: int) -> list[Pending]:
    """The inquiry of `execution_id` at its ttl: expired, and its execution ends with the default (or fails).

    Early (a message that came before its time) it is sent again for the
    rest; not pending any more (answered, canceled) it is left alone.
    """
    found = db.lock(cur, tenant_id, execution_id=execution_id)
    if found is None or found["status"] != "pending" or int(found["execution_id"]) != execution_id:
        return []
    if not found["due"]:
        again = WorkflowMessage(kind="expire", tenant_id=tenant_id, execution_id=execution_id)
        return [enqueue(cur, "workflow-tasks", again.model_dump(exclude_none=True), delay_s=1)]
    expired = db.expire(cur, tenant_id, execution_id)
    if expired is None:
        return []
    default = expired["default_response"]
    audit.record(cur, tenant_id=tenant_id, actor=SERVICE_ACTOR, action="inquiry.expired", entity_type="inquiry",
                 entity_id=expired["id"], detail={"execution_id": execution_id, "default_used": default is not None})
    if default is not None:
        final, result = status.SUCCEEDED, result_doc(output=default)
    else:
        final, result = status.FAILED, result_doc(error=EXPIRED_ERROR)
    messages, _ = _finish(cur, tenant_id, execution_id, found["workflow_execution_id"], final=final, result=result,
                          actor=SERVICE_ACTOR, detail={"inquiry_id": expired["id"], "expired": True})
    return messages
