"""Relay Lambda: EventBridge Scheduler invokes it once a minute; it works through that minute.

A schedule cannot fire more often than once a minute, but the outbox must
not wait a minute for a row whose send after commit failed, and a dead
worker's execution should fail within seconds of its heartbeat going stale.
So one invocation keeps sweeping the outbox and reaping stale executions on
short periods until the minute is over (the next invocation takes the next
minute) or the Lambda's remaining time runs short, and purges expired
datastore items once. Every duty is idempotent and safe beside another
invocation (row locks with SKIP LOCKED, compare-and-set status changes), so
two invocations overlapping at the minute boundary do no harm.

Locally the `relay` role does the same duties continuously (see
chalicelib/pipeline/relay.py), so the local cloud does not provision this
function's schedule.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from chalicelib import datastore
from chalicelib.core.errors import AttuneError
from chalicelib.db import ratelimits
from chalicelib.db.pool import system_tx
from chalicelib.executions.reaper import reap_once
from chalicelib.observability import configure_logging
from chalicelib.pipeline.outbox import relay_once
from chalicelib.workflows.sweep import sweep_once as sweep_workflows

configure_logging()
log = logging.getLogger(__name__)

MINUTE_S = 60.0
SWEEP_EVERY_S = 1.0
REAP_EVERY_S = 5.0
# Stop this long before Lambda would kill the invocation: a sweep in progress must
# finish (rows it claimed are otherwise only re-sent after the outbox's timeout).
STOP_MARGIN_MS = 10_000


class LambdaContext(Protocol):
    """The part of Lambda's context object the loop reads."""

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds until Lambda stops the invocation."""
        ...


@dataclass(frozen=True)
class Duty:
    """One idempotent job of the minute, run every `every_s` seconds; `run` returns how many rows it handled."""

    name: str
    every_s: float
    run: Callable[[], int]


def purge_expired() -> int:
    """Reclaim expired datastore items of every tenant (they are already invisible to reads)."""
    with system_tx() as cur:
        return datastore.purge_expired(cur)


def duties() -> list[Duty]:
    """The minute's work: outbox sweeps, reaper sweeps, and one datastore purge."""
    return [
        Duty("sent", SWEEP_EVERY_S, relay_once),
        Duty("reaped", REAP_EVERY_S, reap_once),
        Duty("purged", MINUTE_S, purge_expired),
        Duty("workflows settled", MINUTE_S, sweep_workflows),
        Duty("pruned_limits", MINUTE_S, ratelimits.prune),
    ]


def run_duty(duty: Duty) -> int:
    """Run one duty; its failure is logged and costs only this round, never the other duties."""
    try:
        return duty.run()
    except AttuneError as exc:
        log.warning("%s failed: %s", duty.name, exc.message)
    except Exception:  # one duty's bug must not stop the others; logged in full
        log.exception("%s failed", duty.name)
    return 0


def run_minute(
    context: LambdaContext,
    work: Sequence[Duty],
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, int]:
    """Run each duty on its period until the minute is over or too little Lambda time is left.

    Every duty runs at least once. Returns per duty the rows it handled, plus
    `rounds` (how many times the loop ran something).
    """
    started = clock()
    end = started + MINUTE_S
    due = {duty.name: started for duty in work}
    totals = dict.fromkeys(due, 0)
    totals["rounds"] = 0
    while True:
        now = clock()
        for duty in work:
            if now >= due[duty.name]:
                due[duty.name] = now + duty.every_s
                totals[duty.name] += run_duty(duty)
        totals["rounds"] += 1
        wake = min(due.values())
        wait_s = max(0.0, wake - clock())
        if wake >= end or context.get_remaining_time_in_millis() - wait_s * 1000 < STOP_MARGIN_MS:
            return totals
        sleep(wait_s)


def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    """Lambda entry point; `event` is the schedule's input, unused: the clock decides the work."""
    totals = run_minute(context, duties())
    log.info("relay minute done: %s", totals)
    return totals
