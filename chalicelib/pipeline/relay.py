"""The `relay` role: the outbox sweeper, the reaper of lost executions, expired-data cleanup.

In AWS this loop is a scheduled Lambda (every minute, looping inside) or a
small always-on task; locally it is one supervised process. Each duty is
idempotent and safe to run from several processes at once (row locks with
SKIP LOCKED, compare-and-set status changes).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from chalicelib import datastore
from chalicelib.core.errors import AttuneError
from chalicelib.db import ratelimits
from chalicelib.db.pool import database_url, system_tx
from chalicelib.executions.reaper import reap_once
from chalicelib.pipeline.outbox import inline_publish, relay_once, resend_unacknowledged
from chalicelib.workflows.sweep import sweep_once as sweep_workflows

log = logging.getLogger(__name__)

SWEEP_EVERY_S = 0.25
REAP_EVERY_S = 5.0
PURGE_EVERY_S = 60.0
WORKFLOW_SWEEP_EVERY_S = 15.0


def _purge_expired() -> int:
    with system_tx() as cur:
        return datastore.purge_expired(cur)


def _listen() -> psycopg.Connection[Any] | None:
    """A connection LISTENing for new outbox rows; None when it cannot be had (the sweep still runs)."""
    try:
        conn = psycopg.connect(database_url(), autocommit=True)
        conn.execute("LISTEN attune_outbox")
        return conn
    except psycopg.Error as exc:
        log.warning("cannot LISTEN for outbox rows (%s); sweeping only", exc)
        return None


def _wait(conn: psycopg.Connection[Any] | None, timeout: float) -> bool:
    """Wait up to `timeout` for a new-row notification; whether one came."""
    if conn is None or timeout <= 0:
        return False
    try:
        return any(True for _ in conn.notifies(timeout=timeout, stop_after=1))
    except psycopg.Error:
        return False


def serve(stop: threading.Event, ready: threading.Event) -> None:
    """Run the duties on their periods until `stop` is set; send new outbox rows the moment they commit."""
    duties: list[tuple[str, float, Callable[[], int]]] = [
        ("outbox relay", SWEEP_EVERY_S, relay_once),
        ("reaper", REAP_EVERY_S, reap_once),
        ("workflow sweep", WORKFLOW_SWEEP_EVERY_S, sweep_workflows),
        ("datastore purge", PURGE_EVERY_S, _purge_expired),
        ("rate limit prune", PURGE_EVERY_S, ratelimits.prune),
    ]
    due = dict.fromkeys((name for name, _, _ in duties), 0.0)
    listener = _listen() if not inline_publish() else None
    try:
        resent = resend_unacknowledged()
        if resent:
            log.info("re-sent %d unacknowledged message(s) at start", resent)
    except AttuneError as exc:
        log.warning("start-up re-send failed: %s", exc.message)
    ready.set()
    while not stop.is_set():
        now = time.monotonic()
        for name, every, duty in duties:
            if now >= due[name]:
                due[name] = now + every
                _run(name, duty)
        if _wait(listener, min(due.values()) - time.monotonic()):
            # New rows committed: send everything unsent now, until nothing is left.
            while _run("outbox send", functools.partial(relay_once, limit=500, unsent_after=0.0)) >= 500:
                pass
        elif listener is None:
            stop.wait(max(0.0, min(due.values()) - time.monotonic()))
    if listener is not None:
        listener.close()


def _run(name: str, duty: Callable[[], int]) -> int:
    try:
        return duty()
    except AttuneError as exc:
        log.warning("%s failed: %s", name, exc.message)
    except Exception:  # one duty's bug must not stop the others; logged in full
        log.exception("%s failed", name)
    return 0
