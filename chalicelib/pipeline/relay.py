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
from psycopg.rows import DictRow, dict_row

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


LISTEN_RETRY_S = 1.0
LISTEN_SQL = "LISTEN attune_outbox"
SET_APP_ROLE = "SET ROLE attune_app"  # the pool's role (chalicelib.db.pool): no more than the app may do
# A claim lost to a database crash before its WAL flush only leaves its rows unsent: they are sent
# again (consumers are idempotent). So the relay's claims never wait for the flush.
ASYNC_COMMIT = "SET synchronous_commit = off"


class Listener:
    """The relay's own autocommit connection: it LISTENs for new outbox rows and claims them.

    Claiming on it costs one round trip (the claim is one statement) instead of
    a pooled transaction's four, on the path of every message. Notifications
    that arrive while a claim runs are kept by psycopg and returned by the next
    wait, so none is missed. A broken connection is closed and reopened at most
    every `LISTEN_RETRY_S`; meanwhile the relay sweeps on its period only.
    """

    def __init__(self) -> None:
        self._conn: psycopg.Connection[DictRow] | None = None
        self._retry_at = 0.0

    def _connection(self) -> psycopg.Connection[DictRow] | None:
        if self._conn is None and time.monotonic() >= self._retry_at:
            try:
                conn = psycopg.connect(database_url(), autocommit=True, row_factory=dict_row)
                conn.execute(SET_APP_ROLE)
                conn.execute(ASYNC_COMMIT)
                conn.execute(LISTEN_SQL)
                self._conn = conn
            except psycopg.Error as exc:
                log.warning("cannot LISTEN for outbox rows (%s); sweeping only", exc)
                self._retry_at = time.monotonic() + LISTEN_RETRY_S
        return self._conn

    def _broken(self, exc: BaseException) -> None:
        log.warning("the outbox listener's connection failed (%s); reconnecting", exc)
        self.close()
        self._retry_at = time.monotonic() + LISTEN_RETRY_S

    def cursor(self) -> psycopg.Cursor[DictRow] | None:
        """An autocommit cursor to claim with; None while there is no connection."""
        conn = self._connection()
        return None if conn is None else conn.cursor()

    def wait(self, stop: threading.Event, timeout: float) -> bool:
        """Wait up to `timeout` for a new-row notification (or `stop`); whether one came."""
        if timeout <= 0:
            return False
        conn = self._connection()
        if conn is None:
            stop.wait(min(timeout, LISTEN_RETRY_S))
            return False
        try:
            return any(True for _ in conn.notifies(timeout=timeout, stop_after=1))
        except psycopg.Error as exc:
            self._broken(exc)
            return False

    def claim_failed(self) -> None:
        """A claim on the connection failed: if the connection is why, reopen it."""
        if self._conn is not None and self._conn.broken:
            self._broken(RuntimeError("connection lost during a claim"))

    def close(self) -> None:
        """Close the connection (if open)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def serve(stop: threading.Event, ready: threading.Event) -> None:
    """Run the duties on their periods until `stop` is set; send new outbox rows the moment they commit."""
    listener = Listener() if not inline_publish() else None

    def relay(**kwargs: Any) -> int:
        # The sweep and the wake-up claim on the listener's connection when there is one (one round trip).
        cur = listener.cursor() if listener is not None else None
        try:
            return relay_once(**kwargs, claim_on=cur)
        except AttuneError:
            if listener is not None:
                listener.claim_failed()
            raise

    duties: list[tuple[str, float, Callable[[], int]]] = [
        ("outbox relay", SWEEP_EVERY_S, relay),
        ("reaper", REAP_EVERY_S, reap_once),
        ("workflow sweep", WORKFLOW_SWEEP_EVERY_S, sweep_workflows),
        ("datastore purge", PURGE_EVERY_S, _purge_expired),
        ("rate limit prune", PURGE_EVERY_S, ratelimits.prune),
    ]
    due = dict.fromkeys((name for name, _, _ in duties), 0.0)
    if listener is not None:
        listener.cursor()  # LISTEN before the start-up re-send, so no row committed meanwhile waits a sweep
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
        timeout = min(due.values()) - time.monotonic()
        if listener is None:
            stop.wait(max(0.0, timeout))
        elif listener.wait(stop, timeout):
            # New rows committed: send everything unsent now, until nothing is left.
            while _run("outbox send", functools.partial(relay, limit=500, unsent_after=0.0)) >= 500:
                pass
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
