"""The token bucket's maths and the login back-off (chalicelib/core/ratelimit.py), without a database."""

from __future__ import annotations

import pytest

from chalicelib.core.ratelimit import (
    Backoff,
    Limit,
    Overloaded,
    RateLimited,
    decide,
    retry_after_header,
    take,
)


def _run(limit: Limit, times: list[float]) -> list[bool]:
    """Requests at absolute `times` against one bucket: which were let through."""
    full_at: float | None = None
    allowed = []
    for now in times:
        ahead, decision = take(None if full_at is None else full_at - now, limit)
        full_at = now + ahead
        allowed.append(decision.allowed)
    return allowed


def test_a_fresh_bucket_lets_a_burst_through_then_refuses() -> None:
    # GIVEN 10/s with a burst of 10 WHEN 15 requests arrive at the same instant
    got = _run(Limit(per_s=10, burst=10), [100.0] * 15)
    # THEN exactly the first 10 pass
    assert got == [True] * 10 + [False] * 5


def test_tokens_come_back_in_proportion_to_the_time_elapsed() -> None:
    limit = Limit(per_s=10, burst=10)
    # GIVEN an emptied bucket WHEN 0.35 s pass THEN three tokens are back, not four
    got = _run(limit, [0.0] * 10 + [0.35] * 4)
    assert got[10:] == [True, True, True, False]


def test_a_bucket_never_holds_more_than_its_burst() -> None:
    # GIVEN a bucket idle for an hour THEN it holds `burst` tokens, not 36,000
    got = _run(Limit(per_s=10, burst=3), [0.0, 3600.0, 3600.0, 3600.0, 3600.0])
    assert got == [True, True, True, True, False]


def test_a_refused_request_does_not_push_the_bucket_further_into_debt() -> None:
    limit = Limit(per_s=1, burst=1)
    # GIVEN an empty bucket hammered while empty WHEN one interval has passed since the last success
    got = _run(limit, [0.0, 0.1, 0.2, 0.5, 0.9, 1.0])
    # THEN the next request passes: the refusals cost the client nothing extra
    assert got == [True, False, False, False, False, True]


def test_a_sustained_rate_at_the_limit_is_always_let_through() -> None:
    # 10/s sent exactly every 0.1 s after the burst is gone: each finds its token back
    got = _run(Limit(per_s=10, burst=1), [i * 0.1 for i in range(50)])
    assert all(got)


def test_retry_after_is_the_time_until_one_token_is_back() -> None:
    limit = Limit(per_s=0.5, burst=2)  # one token every 2 s
    _, first = take(None, limit)
    ahead, second = take(2.0, limit)
    _, refused = take(ahead, limit)
    assert first.allowed and first.remaining == 1
    assert second.allowed and second.remaining == 0
    assert not refused.allowed and refused.retry_after_s == pytest.approx(2.0)
    # AND 0.5 s later the wait is 1.5 s, which the header rounds up to 2
    later = decide(ahead - 0.5, refused=1, limit=limit)
    assert later.retry_after_s == pytest.approx(1.5) and later.retry_after == 2


def test_retry_after_header_is_whole_seconds_and_at_least_one() -> None:
    assert retry_after_header(0.0) == 1
    assert retry_after_header(0.01) == 1
    assert retry_after_header(1.0) == 1
    assert retry_after_header(1.2) == 2
    assert retry_after_header(59.9) == 60


def test_remaining_counts_whole_tokens() -> None:
    limit = Limit(per_s=4, burst=8)
    assert decide(0.0, refused=0, limit=limit).remaining == 8
    assert decide(0.3, refused=0, limit=limit).remaining == 6  # 8 - 1.2 tokens
    assert decide(2.0, refused=0, limit=limit).remaining == 0


@pytest.mark.parametrize(("per_s", "burst"), [(0, 10), (-1, 10), (10, 0), (float("nan"), 1)])
def test_a_limit_that_could_never_let_anything_through_is_refused(per_s: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        Limit(per_s=per_s, burst=burst)


def test_limit_interval_and_window() -> None:
    limit = Limit(per_s=10, burst=10)
    assert limit.interval_s == pytest.approx(0.1) and limit.window_s == pytest.approx(1.0)


def test_backoff_starts_after_the_allowed_failures_doubles_and_is_capped() -> None:
    backoff = Backoff(after=5, base_s=2, max_s=60)
    assert [backoff.delay_s(n) for n in range(5)] == [0, 0, 0, 0, 0]
    assert [backoff.delay_s(n) for n in range(5, 12)] == [2, 4, 8, 16, 32, 60, 60]
    assert backoff.delay_s(10**9) == 60  # no overflow however long the attack


def test_backoff_wait_counts_down_from_the_last_failure_and_is_forgotten() -> None:
    backoff = Backoff(after=5, base_s=2, max_s=60, forget_s=900)
    assert backoff.wait_s(6, since_last_s=1.0) == pytest.approx(3.0)
    assert backoff.wait_s(6, since_last_s=4.0) == 0.0
    assert backoff.wait_s(4, since_last_s=0.0) == 0.0
    assert backoff.wait_s(50, since_last_s=900.0) == 0.0


def test_the_errors_carry_whole_second_retry_after_and_the_contract_codes() -> None:
    limited = RateLimited("slow down", retry_after_s=0.2)
    busy = Overloaded("busy")
    assert (limited.status, limited.code, limited.retry_after) == (429, "rate_limited", 1)
    assert (busy.status, busy.code, busy.retry_after) == (503, "unavailable", 1)
    assert limited.to_body() == {"error": {"code": "rate_limited", "message": "slow down"}}
