"""Rate limiting, the pure part: token-bucket maths, the login back-off, and the errors they raise.

A bucket holds up to `burst` tokens and refills at `per_s` tokens a second;
a request takes one or is refused. The database keeps each bucket as the
moment it will be full again (`full_at`), which is the same bucket in one
number: `tokens = burst - (full_at - now) * per_s`, capped at `burst` once
`full_at` has passed. Refilling by elapsed time then needs no arithmetic on
a stored count, taking a token moves `full_at` one interval later, and a
bucket whose `full_at` has passed is exactly a missing row, so expired rows
can simply be deleted. `take` below is the reference the SQL in
`chalicelib/db/ratelimits.py` implements; `decide` turns what that
statement returns into a decision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from chalicelib.core.errors import ServiceUnavailable, TooManyRequests

# Float (and the database's microsecond) rounding must not refuse the last token of a burst.
EPSILON_S = 1e-6


@dataclass(frozen=True)
class Limit:
    """A bucket's size and refill rate."""

    per_s: float
    burst: int

    def __post_init__(self) -> None:
        if not self.per_s > 0:
            raise ValueError(f"a rate limit needs per_s > 0, got {self.per_s!r}")
        if self.burst < 1:
            raise ValueError(f"a rate limit needs burst >= 1, got {self.burst!r}")

    @property
    def interval_s(self) -> float:
        """Seconds one token takes to come back."""
        return 1.0 / self.per_s

    @property
    def window_s(self) -> float:
        """Seconds an empty bucket takes to fill: how far ahead of now `full_at` may be."""
        return self.burst * self.interval_s


@dataclass(frozen=True)
class Decision:
    """The answer to one request: let through (with `remaining` whole tokens) or refused for `retry_after_s`."""

    allowed: bool
    remaining: int
    retry_after_s: float

    @property
    def retry_after(self) -> int:
        """`Retry-After` in whole seconds, at least 1 (HTTP has no fractions, and 0 invites a busy loop)."""
        return retry_after_header(self.retry_after_s)


def retry_after_header(seconds: float) -> int:
    """Whole seconds to wait, rounded up, at least 1: a client that waits this long will be let through."""
    return max(1, math.ceil(seconds - EPSILON_S))


def take(ahead_s: float | None, limit: Limit) -> tuple[float, Decision]:
    """Take one token from a bucket that is full `ahead_s` seconds from now (None: no bucket yet).

    Returns the bucket's new `ahead_s` and the decision. A refused request
    leaves the bucket as it was: a client retrying too early is not
    punished beyond the wait it was told.
    """
    ahead = max(0.0, ahead_s or 0.0)
    after = ahead + limit.interval_s
    if after <= limit.window_s + EPSILON_S:
        return after, decide(after, refused=0, limit=limit)
    return ahead, decide(ahead, refused=1, limit=limit)


def decide(ahead_s: float, *, refused: int, limit: Limit) -> Decision:
    """The decision a bucket shows once the request was applied: full `ahead_s` from now, `refused` in a row.

    `refused == 0` means the request was let through; otherwise the bucket
    kept its state and the caller may retry when one token has come back.
    """
    tokens = limit.burst - max(0.0, ahead_s) * limit.per_s
    if refused == 0:
        return Decision(allowed=True, remaining=max(0, math.floor(tokens + EPSILON_S)), retry_after_s=0.0)
    return Decision(allowed=False, remaining=0, retry_after_s=max(0.0, (1.0 - tokens) * limit.interval_s))


@dataclass(frozen=True)
class Backoff:
    """How long a user name must wait after repeated failed logins.

    The first `after` failures cost nothing (typos happen); each further
    failure doubles the wait from `base_s`, capped at `max_s` so the real
    user is never locked out for long; a success, or `forget_s` without a
    failure, starts over.
    """

    after: int = 5
    base_s: float = 2.0
    max_s: float = 60.0
    forget_s: float = 900.0

    def delay_s(self, failures: int) -> float:
        """The wait that `failures` failures in a row earn, counted from the last one."""
        if failures < self.after:
            return 0.0
        doublings = min(failures - self.after, 32)  # 2**32 * base is far past any cap
        return float(min(self.max_s, self.base_s * 2.0**doublings))

    def wait_s(self, failures: int, since_last_s: float) -> float:
        """Seconds still to wait, `since_last_s` after the last of `failures` failures."""
        if since_last_s >= self.forget_s:
            return 0.0
        return max(0.0, self.delay_s(failures) - max(0.0, since_last_s))


class RateLimited(TooManyRequests):
    """Over a rate limit (429); `retry_after` is the `Retry-After` header, in whole seconds."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after_header(retry_after_s)


class Overloaded(ServiceUnavailable):
    """Too much expensive work at once (503), e.g. every password-hash slot busy; retry after `retry_after` s."""

    def __init__(self, message: str, *, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after_header(retry_after_s)
