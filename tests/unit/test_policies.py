"""Retry decisions (core.policies): Step Functions' reading of max_attempts, backoff and its cap, `on`."""

from __future__ import annotations

import pytest

from chalicelib.core.policies import retry_delay
from chalicelib.models.packs import RetryPolicy

SEED = RetryPolicy(max_attempts=3, delay_seconds=2, backoff_multiplier=2.0, max_delay_seconds=60).model_dump()


@pytest.mark.parametrize(("retries", "delay"), [(0, 2.0), (1, 4.0), (2, 8.0), (3, None), (10, None)])
def test_the_seed_policy_backs_off_2_4_8_then_stops(retries: int, delay: float | None) -> None:
    assert retry_delay(SEED, retries, "failure") == delay


def test_the_delay_is_capped() -> None:
    policy = {**SEED, "max_attempts": 10, "max_delay_seconds": 5}
    assert [retry_delay(policy, n, "failure") for n in range(4)] == [2.0, 4.0, 5.0, 5.0]


def test_on_chooses_which_outcomes_are_retried() -> None:
    only_timeouts = {**SEED, "on": ["timeout"]}
    assert retry_delay(only_timeouts, 0, "failure") is None
    assert retry_delay(only_timeouts, 0, "timeout") == 2.0
    assert retry_delay(SEED, 0, "timeout") == 2.0  # both by default


def test_no_policy_or_zero_attempts_never_retries() -> None:
    assert retry_delay(None, 0, "failure") is None
    assert retry_delay({**SEED, "max_attempts": 0}, 0, "failure") is None
