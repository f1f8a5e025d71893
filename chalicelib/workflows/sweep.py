"""The workflow sweep: a workflow whose state machine execution ended (or vanished) unheard is settled.

Step Functions tells us a workflow ended by its last state's message
(`finish` / `fail`), delivered at least once. Two things can still leave a
workflow `running` with nothing left to move it: an emulator restarted
without its executions (moto keeps none across a restart), or an execution
that Step Functions itself ended (aborted, timed out) without reaching
those states. The sweep looks at workflows quiet for a while (no change to
them or their children), asks Step Functions how their execution is, and
settles those that are over: succeeded -> finished from the database
(idempotent: the same handler as the `finish` message), anything else ->
failed with the reason. A workflow whose execution still runs is left alone.
"""

from __future__ import annotations

import logging

from chalicelib.aws import states
from chalicelib.db import workflows as db
from chalicelib.db.pool import system_tx
from chalicelib.models.messages import WorkflowMessage
from chalicelib.workflows import service

log = logging.getLogger(__name__)

QUIET_S = 60.0  # no change for this long before Step Functions is asked
BATCH = 50


def sweep_once(quiet_s: float = QUIET_S, limit: int = BATCH) -> int:
    """One sweep; how many workflows it settled."""
    with system_tx() as cur:
        quiet = db.quiet(cur, quiet_s=quiet_s, limit=limit)
    settled = 0
    for row in quiet:
        found = states.execution_status(str(row["sfn_execution"]))
        if found == "RUNNING":
            continue
        tenant_id, execution_id = int(row["tenant_id"]), int(row["id"])
        if found == "SUCCEEDED":
            service.handle(WorkflowMessage(kind="finish", tenant_id=tenant_id, execution_id=execution_id))
        else:
            reason = f"the workflow engine lost its execution ({found or 'no such execution'})"
            service.handle(WorkflowMessage(kind="fail", tenant_id=tenant_id, execution_id=execution_id,
                                           error="Attune.EngineLost", cause=reason))
        log.warning("workflow execution %d settled by the sweep: state machine execution %s", execution_id,
                    found or "gone")
        settled += 1
    return settled
