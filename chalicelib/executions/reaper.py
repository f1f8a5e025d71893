"""The reaper: settle executions whose worker stopped beating (killed, crashed, host lost).

A live worker beats every few seconds for each execution it runs (see
worker/heartbeat.py), so a claimed execution whose beat is older than the
threshold has nobody left to finish it: without the reaper it would stay
`running` (or `canceling`) forever (T3.12). A running one is failed, not
re-run, because the action may already have had side effects; retrying is
a policy decision for whoever owns retries. A canceling one becomes
`canceled`: the cancel was asked for and nothing runs any more. A worker
that was only slow finds its result refused by the compare-and-set and
stops its action at the next beat.
"""

from __future__ import annotations

import logging

from chalicelib.config import settings
from chalicelib.core import status
from chalicelib.db import executions as db
from chalicelib.db.pool import system_tx
from chalicelib.executions import lifecycle
from chalicelib.pipeline.outbox import Pending, publish

log = logging.getLogger(__name__)

ACTOR = "service:reaper"
BATCH_LIMIT = 500


def reap_once(threshold_s: float | None = None, limit: int = BATCH_LIMIT) -> int:
    """One sweep: settle up to `limit` claimed executions without a recent heartbeat; how many were settled."""
    threshold = settings().reaper_stale_seconds if threshold_s is None else threshold_s
    sources = sorted(status.MOVES["reap"].sources)
    reaped: list[lifecycle.Moved] = []
    with system_tx() as cur:
        for row in db.stale(cur, sources=sources, stale_seconds=threshold, limit=limit):
            moved = lifecycle.reap(cur, row, actor=ACTOR)
            if moved is not None:
                reaped.append(moved)
    messages: list[Pending] = [m for moved in reaped for m in moved.messages]
    publish(messages)
    for moved in reaped:
        log.warning("execution %d %s: %s (worker %s)", moved.row["id"], moved.status,
                    (moved.row.get("result") or {}).get("error"), moved.row["worker_id"])
    return len(reaped)
