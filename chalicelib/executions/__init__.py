"""The execution lifecycle: the only writer of `attune.execution.status` (ARCHITECTURE §5).

    requested = request_execution(cur, tenant_id=..., action=..., parameters=..., actor=...)
    moved = lifecycle.claim(cur, tenant_id, execution_id, worker_id=..., runner_type=...)
    moved = lifecycle.complete(cur, tenant_id, execution_id, final=..., result=..., actor=...)
    publish(requested.messages + moved.messages)   # after commit
"""

from __future__ import annotations

from chalicelib.executions.lifecycle import Moved
from chalicelib.executions.request import Requested, open_secrets, request_execution

__all__ = ["Moved", "Requested", "open_secrets", "request_execution"]
