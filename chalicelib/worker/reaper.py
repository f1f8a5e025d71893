"""The reaper: fail executions whose worker stopped beating (killed, crashed, host lost).

A live worker beats every few seconds for each execution it runs (see
heartbeat.py), so a `running` execution whose beat is older than the
threshold has nobody left to finish it: without the reaper it would stay
`running` forever (T3.12). It is failed, not re-run, because the action may
already have had side effects; retrying is a policy decision for whoever
owns retries. A worker that was only slow finds its result refused by the
compare-and-set and stops its action at the next beat.
"""

from __future__ import annotations

import logging
import os

from chalicelib.core import status
from chalicelib.db import audit
from chalicelib.db import worker as worker_db
from chalicelib.db.pool import system_tx

log = logging.getLogger(__name__)

ACTOR = "service:reaper"
DEFAULT_STALE_SECONDS = 30.0
BATCH_LIMIT = 500


def stale_seconds() -> float:
    """The threshold: ATTUNE_REAPER_STALE_SECONDS (default 30), several heartbeat periods."""
    raw = os.environ.get("ATTUNE_REAPER_STALE_SECONDS")
    if raw is None or raw.strip() == "":
        return DEFAULT_STALE_SECONDS
    value = float(raw)
    if value <= 0:
        raise ValueError(f"ATTUNE_REAPER_STALE_SECONDS must be positive, got {raw!r}")
    return value


def reap_once(threshold_s: float | None = None, limit: int = BATCH_LIMIT) -> int:
    """One sweep: fail up to `limit` running executions without a recent heartbeat; how many were failed."""
    threshold = stale_seconds() if threshold_s is None else threshold_s
    with system_tx() as cur:
        reaped = worker_db.reap_stale(cur, threshold, limit)
        for row in reaped:
            audit.record(
                cur,
                tenant_id=row["tenant_id"],
                actor=ACTOR,
                action="execution.failed",
                entity_type="execution",
                entity_id=row["id"],
                detail={
                    "status": status.FAILED,
                    "error": row["result"]["error"],
                    "worker_id": row["worker_id"],
                    "last_heartbeat": row["heartbeat_at"].isoformat() if row["heartbeat_at"] else None,
                    "stage": "reaper",
                },
            )
    for row in reaped:
        log.warning("execution %d failed: %s (worker %s)", row["id"], row["result"]["error"], row["worker_id"])
    return len(reaped)
