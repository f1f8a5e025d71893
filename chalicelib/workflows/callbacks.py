"""Completion callbacks: a finished child execution answers the Step Functions token that waits on it.

The lifecycle enqueues a `workflow-callbacks` message (through the outbox,
in the same transaction as the final status), so no completion is lost
between PostgreSQL and Step Functions; this handler turns it into
`SendTaskSuccess` (succeeded, or a nested workflow's succeeded_with_errors)
or `SendTaskFailure` — `Attune.Canceled` for a canceled child (never
retried nor caught), `Attune.TaskFailed` otherwise, with the task and error
as the cause. A token that is gone (answered, timed out, the workflow
stopped) is not an error: the message is acknowledged all the same.
"""

from __future__ import annotations

from chalicelib.aws import states
from chalicelib.core import status
from chalicelib.db import executions as executions_db
from chalicelib.db import outbox
from chalicelib.db.pool import system_tx
from chalicelib.models.messages import CallbackMessage
from chalicelib.workflows.service import task_cause

SUCCESS = frozenset({status.SUCCEEDED, status.SUCCEEDED_WITH_ERRORS})


def handle(message: CallbackMessage) -> None:
    """Answer the task token of one finished execution, then acknowledge the message."""
    if message.task_token:
        if message.status in SUCCESS:
            states.send_task_success(message.task_token, {"execution_id": message.execution_id})
        else:
            with system_tx() as cur:
                row = executions_db.outcome(cur, message.tenant_id, message.execution_id)
            result = (row or {}).get("result") or {}
            task = (row or {}).get("task_name")
            error = "Attune.Canceled" if message.status == status.CANCELED else "Attune.TaskFailed"
            reason = str(result.get("error") or f"execution {message.execution_id} {message.status}")
            states.send_task_failure(message.task_token, error, task_cause(task, reason, message.execution_id))
    with system_tx() as cur:
        outbox.ack(cur, message.outbox_id)
