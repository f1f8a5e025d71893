"""The `relay` role: the outbox sweeper, the reaper of lost executions, expired-data cleanup.

In AWS this loop is a scheduled Lambda (every minute, looping inside) or a
small always-on task; locally it is one supervised process. Each duty is
idempotent and safe to run from several processes at once (row locks with
SKIP LOCKED, compare-and-set status changes).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from chalicelib import datastore
from chalicelib.core.errors import AttuneError
from chalicelib.db.pool import system_tx
from chalicelib.pipeline.outbox import relay_once, resend_unacknowledged
from chalicelib.worker.reaper import reap_once

log = logging.getLogger(__name__)

SWEEP_EVERY_S = 0.25
REAP_EVERY_S = 5.0
PURGE_EVERY_S = 60.0


def _purge_expired() -> int:
    with system_tx() as cur:
        return datastore.purge_expired(cur)


def serve(stop: threading.Event, ready: threading.Event) -> None:
    """Run the duties on their periods until `stop` is set."""
    duties: list[tuple[str, float, Callable[[], int]]] = [
        ("outbox relay", SWEEP_EVERY_S, relay_once),
        ("reaper", REAP_EVERY_S, reap_once),
        ("datastore purge", PURGE_EVERY_S, _purge_expired),
    ]
    due = dict.fromkeys((name for name, _, _ in duties), 0.0)
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
                try:
                    duty()
                except AttuneError as exc:
                    log.warning("%s failed: %s", name, exc.message)
                except Exception:  # one duty's bug must not stop the others; logged in full
                    log.exception("%s failed", name)
        stop.wait(min(due.values()) - time.monotonic() if due else SWEEP_EVERY_S)
