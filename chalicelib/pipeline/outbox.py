"""Sending what the outbox holds: at once after commit, and again by the relay if need be.

A writer enqueues in its own transaction, commits, then calls `publish` with
what it enqueued; a crash or an SQS error between commit and send only delays
the message until the relay's next sweep. Consumers acknowledge (delete the
row) in the transaction that acts on the message, so the relay also re-sends
messages that were sent but lost (moto's queues do not survive a restart).
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import psycopg

from chalicelib.aws import queues
from chalicelib.config import settings
from chalicelib.core.errors import AttuneError
from chalicelib.db import outbox
from chalicelib.db.pool import Cursor, system_tx, translate

log = logging.getLogger(__name__)

UNSENT_AFTER_S = 1.0
# Relay mode: the queues whose messages a writer sends itself while the queue is quiet (fewer than
# ATTUNE_OUTBOX_SEND_BELOW rows), the two hops every execution takes (event -> rules, execution ->
# worker). A sequential webhook then skips the relay's wake-up and claim on both (measured in
# bench/peers.py); under a burst the queue is busy, rows are born unclaimed and the relay batches
# them under its in-flight cap as before. The rest (notifications, workflow steps) always go through
# the relay, so a writer killed between its commit and its send delays nothing there; here it delays
# the message until the relay re-sends it as unacknowledged (ATTUNE_OUTBOX_RESEND_AFTER_SECONDS).
WRITER_SENT_QUEUES = frozenset({"events", "work"})


@dataclass(frozen=True)
class Pending:
    """A message enqueued in a transaction that has not been sent yet."""

    id: int
    queue: str
    body: dict[str, Any]
    delay_s: int = 0  # SQS DelaySeconds: the message becomes visible this much later
    owned: bool = False  # relay mode: claimed at birth; `publish` sends it, not the relay


def enqueue(cur: Cursor, queue: str, body: dict[str, Any], delay_s: float = 0) -> Pending:
    """Write a message in the caller's transaction; `publish` it after commit.

    With `delay_s` (a retry's backoff) the message waits: in the queue (SQS
    DelaySeconds) when it is due within 15 minutes, else in the outbox until it is.
    """
    below = settings().outbox_send_below
    if delay_s <= 0 and below > 0 and queue in WRITER_SENT_QUEUES and not inline_publish():
        outbox_id, owned = outbox.enqueue_owned(cur, queue, body, below)
    else:
        outbox_id, owned = outbox.enqueue(cur, queue, body, delay_s), False
    full = {**body, "outbox_id": outbox_id}
    return Pending(outbox_id, queue, full, delay_s=math.ceil(delay_s), owned=owned)


def _send(messages: list[Pending]) -> list[int]:
    by_queue: dict[str, list[Pending]] = defaultdict(list)
    for msg in messages:
        by_queue[msg.queue].append(msg)
    sent: list[int] = []
    for queue, batch in by_queue.items():
        accepted = queues.send_batch(queue, [(str(m.id), m.body, m.delay_s) for m in batch])
        sent += [int(ident) for ident in accepted]
    return sent


def max_in_flight() -> int:
    """Unacknowledged messages per queue before the relay holds new ones back (`ATTUNE_OUTBOX_MAX_IN_FLIGHT`)."""
    return settings().outbox_max_in_flight


def inline_publish() -> bool:
    """Whether writers send their own messages after commit.

    `ATTUNE_OUTBOX_PUBLISH=relay` (what the local cloud sets) leaves sends to the
    relay, which LISTENs for new outbox rows and sends them in batches (fewer SQS
    calls per message under load), but for the messages a writer claimed at birth
    (WRITER_SENT_QUEUES, while quiet). `inline` (the default,
    for deployments without an always-on relay) sends at once and lets the relay's
    sweep catch what fails.
    """
    return settings().outbox_publish == "inline"


def publish(messages: list[Pending]) -> None:
    """Send committed messages now (inline mode; in relay mode, those claimed at birth); on failure the relay does."""
    messages = [m for m in messages if m.delay_s <= outbox.MAX_SQS_DELAY_S]  # later ones: the relay, when due
    if not inline_publish():
        _send_claimed([m for m in messages if m.owned], "send after commit")
        return
    if not messages:
        return
    try:
        sent = _send(messages)
        if sent:
            with system_tx() as cur:
                outbox.mark_sent(cur, sent)
    except AttuneError as exc:
        log.warning("send after commit failed (%s); the relay will retry", exc)


def _send_claimed(messages: list[Pending], who: str) -> int:
    """Send rows already claimed (sent_at stamped) by the relay or, at birth, by their writer; how many went out.

    What SQS did not take is made due again at once, for the relay's next
    sweep; should even that fail, the rows stay stamped and the relay re-sends
    them as unacknowledged.
    """
    if not messages:
        return 0
    try:
        sent = _send(messages)
    except AttuneError as exc:
        log.warning("%s: send failed (%s); will retry", who, exc)
        sent = []
    accepted = set(sent)
    failed = [m.id for m in messages if m.id not in accepted]
    if failed:
        try:
            with system_tx() as cur:
                outbox.unmark_sent(cur, failed)
        except AttuneError as exc:
            log.warning("%s: could not make %d unsent message(s) due again (%s); they are re-sent as "
                        "unacknowledged", who, len(failed), exc)
    return len(sent)


def relay_once(
    limit: int = 200, unacked_after: float | None = None, unsent_after: float | None = None, *,
    claim_on: Cursor | None = None,
) -> int:
    """One sweep: send rows never sent or never acknowledged; how many were sent.

    Rows are claimed (sent_at stamped) and committed first, then sent outside any
    transaction; rows whose send failed are made due again. The claim is one
    statement: on `claim_on` (an autocommit cursor, the relay's own connection) it
    costs one round trip, in a `system_tx` four (begin, set-up, claim, commit).
    """
    def claim(cur: Cursor) -> list[dict[str, Any]]:
        return outbox.claim_due(
            cur,
            unsent_after=UNSENT_AFTER_S if unsent_after is None else unsent_after,
            # A sent message nobody acknowledged within ATTUNE_OUTBOX_RESEND_AFTER_SECONDS (30) was
            # lost with its consumer (or its queue): re-sent. Duplicates are harmless, every
            # consumer is idempotent, and the per-queue in-flight cap bounds how many there can be.
            unacked_after=settings().outbox_resend_after_seconds if unacked_after is None else unacked_after,
            limit=limit,
            max_in_flight=max_in_flight(),
        )

    if claim_on is not None:
        try:
            rows = claim(claim_on)
        except psycopg.Error as exc:
            raise translate(exc) from exc
    else:
        with system_tx() as cur:
            rows = claim(cur)
    return _send_claimed([Pending(r["id"], r["queue"], {**r["body"], "outbox_id": r["id"]},
                                  delay_s=int(r["delay_s"])) for r in rows], "relay")


def resend_unacknowledged() -> int:
    """At relay start: re-send every unacknowledged message at once.

    A restarted local cloud has a fresh moto whose queues lost everything in
    flight; waiting out the re-send delay would stall those executions.
    Duplicates are harmless: every consumer is idempotent.
    """
    # One pass: a re-sent row is stamped again, so looping would re-send it forever.
    return relay_once(limit=100_000, unacked_after=0.0)
