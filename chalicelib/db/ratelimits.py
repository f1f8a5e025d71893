"""SQL of the rate limiter (`attune.rate_limit`) and of the login back-off (`attune.login_failure`).

One statement per bucket and request: an upsert that refills the bucket by
the time elapsed and takes a token, or records a refusal (the maths is
`chalicelib.core.ratelimit.take`; the row keeps `full_at`, the moment the
bucket is full again). It runs in autocommit on a pooled connection, before
and apart from the request's own transaction, for two reasons: a request
that then fails and rolls back (a 404, a 400) must still have spent its
token, or a flood of bad requests is never limited; and the bucket's row
lock must last one statement, not the whole request, or a user's
concurrent requests would queue behind each other. The clock is the
database's, shared by every API instance.

Both tables are system tables (no tenant column, no row-level security):
their keys are user, execution and trigger ids, user names and client
addresses, never served by the API, and a webhook or a login is limited
before any tenant is known.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg

from chalicelib.config import settings
from chalicelib.core.ratelimit import Backoff, Decision, Limit, RateLimited, decide
from chalicelib.db.pool import Cursor, pool, system_tx, translate

# A token is left when the bucket is full no later than `burst - 1` intervals from now;
# a refusal leaves `full_at` as it was and counts itself in `refused`.
TAKE_FROM_BUCKET = """
INSERT INTO attune.rate_limit AS b (key, full_at, refused)
VALUES (%(key)s, statement_timestamp() + make_interval(secs => %(interval_s)s), 0)
ON CONFLICT (key) DO UPDATE SET
    full_at = CASE
        WHEN b.full_at <= statement_timestamp() + make_interval(secs => %(interval_s)s) * (%(burst)s::integer - 1)
        THEN greatest(b.full_at, statement_timestamp()) + make_interval(secs => %(interval_s)s)
        ELSE b.full_at END,
    refused = CASE
        WHEN b.full_at <= statement_timestamp() + make_interval(secs => %(interval_s)s) * (%(burst)s::integer - 1)
        THEN 0
        ELSE least(b.refused, 2147483646) + 1 END
RETURNING refused, extract(epoch FROM full_at - statement_timestamp())::double precision AS ahead_s
"""
# A bucket full again is the same as no bucket; SKIP LOCKED leaves rows a request is updating.
PRUNE_BUCKETS = """
DELETE FROM attune.rate_limit
WHERE key IN (SELECT key FROM attune.rate_limit WHERE full_at < statement_timestamp()
              LIMIT %(batch)s FOR UPDATE SKIP LOCKED)
"""
LOGIN_FAILURES = """
SELECT failures, extract(epoch FROM statement_timestamp() - last_failed)::double precision AS since_s
FROM attune.login_failure
WHERE username = %(username)s
"""
# Failures older than `forget_s` are forgotten: the count starts again at one.
RECORD_LOGIN_FAILURE = """
INSERT INTO attune.login_failure AS f (username, failures, last_failed)
VALUES (%(username)s, 1, statement_timestamp())
ON CONFLICT (username) DO UPDATE SET
    failures = CASE WHEN f.last_failed < statement_timestamp() - make_interval(secs => %(forget_s)s) THEN 1
                    ELSE least(f.failures, 2147483646) + 1 END,
    last_failed = statement_timestamp()
"""
CLEAR_LOGIN_FAILURES = "DELETE FROM attune.login_failure WHERE username = %(username)s"
PRUNE_LOGIN_FAILURES = """
DELETE FROM attune.login_failure
WHERE username IN (SELECT username FROM attune.login_failure
                   WHERE last_failed < statement_timestamp() - make_interval(secs => %(forget_s)s)
                   LIMIT %(batch)s FOR UPDATE SKIP LOCKED)
"""

PRUNE_BATCH = 5000
PRUNE_MAX_BATCHES = 20  # one relay round reclaims at most this many batches; the next round goes on


@dataclass(frozen=True)
class Bucket:
    """One bucket a request must get a token from, and what its refusal tells the client."""

    key: str
    limit: Limit
    refusal: str


@contextmanager
def _autocommit() -> Iterator[Cursor]:
    """A pooled connection in autocommit: each statement commits alone, with no BEGIN/COMMIT round trips."""
    try:
        with pool().connection() as conn:
            conn.autocommit = True
            try:
                with conn.cursor() as cur:
                    yield cur
            finally:
                if not conn.closed:
                    conn.autocommit = False
    except psycopg.Error as exc:
        raise translate(exc) from exc


def _take(cur: Cursor, bucket: Bucket) -> Decision:
    params = {"key": bucket.key, "interval_s": bucket.limit.interval_s, "burst": bucket.limit.burst}
    cur.execute(TAKE_FROM_BUCKET, params)
    row = cur.fetchone()
    if row is None:  # an upsert always returns its row
        raise RuntimeError("rate limit upsert returned no row")
    return decide(float(row["ahead_s"]), refused=int(row["refused"]), limit=bucket.limit)


def take(bucket: Bucket, cur: Cursor | None = None) -> Decision:
    """Take one token from `bucket` (in `cur`'s transaction if given, else in its own autocommit statement)."""
    if cur is not None:
        return _take(cur, bucket)
    with _autocommit() as own:
        return _take(own, bucket)


def admit(buckets: Sequence[Bucket], cur: Cursor | None = None) -> None:
    """Take a token from each bucket in order, or raise `RateLimited` (429) with the first refusal.

    The order matters: a request refused by an earlier bucket (a client's
    address) spends nothing from the later ones (the user name it tried), so
    one noisy client cannot drain a bucket others share.
    """
    if not buckets:
        return
    if cur is not None:
        _admit(cur, buckets)
        return
    with _autocommit() as own:
        _admit(own, buckets)


def _admit(cur: Cursor, buckets: Sequence[Bucket]) -> None:
    for bucket in buckets:
        decision = _take(cur, bucket)
        if not decision.allowed:
            raise RateLimited(f"{bucket.refusal}; retry in {decision.retry_after} s",
                              retry_after_s=decision.retry_after_s)


def login_wait_s(username: str, backoff: Backoff) -> float:
    """Seconds `username` must still wait after its failed logins (0: it may try now)."""
    with _autocommit() as cur:
        cur.execute(LOGIN_FAILURES, {"username": username})
        row = cur.fetchone()
    if row is None:
        return 0.0
    return backoff.wait_s(int(row["failures"]), float(row["since_s"]))


def record_login_failure(username: str, backoff: Backoff) -> None:
    """Count one more failed login for `username` (known or not: the answer must not tell)."""
    with _autocommit() as cur:
        cur.execute(RECORD_LOGIN_FAILURE, {"username": username, "forget_s": backoff.forget_s})


def clear_login_failures(username: str) -> None:
    """A successful login: the back-off starts over."""
    with _autocommit() as cur:
        cur.execute(CLEAR_LOGIN_FAILURES, {"username": username})


def prune() -> int:
    """Delete full buckets and forgotten login failures (the relay's periodic job); how many rows."""
    forget_s = settings().limits.login_backoff.forget_s
    removed = 0
    for statement, params in ((PRUNE_BUCKETS, {"batch": PRUNE_BATCH}),
                              (PRUNE_LOGIN_FAILURES, {"batch": PRUNE_BATCH, "forget_s": forget_s})):
        for _ in range(PRUNE_MAX_BATCHES):
            with system_tx() as cur:
                cur.execute(statement, params)
                count = cur.rowcount
            removed += count
            if count < PRUNE_BATCH:
                break
    return removed
