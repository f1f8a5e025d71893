"""Execution policies as pure decisions: whether a failed attempt is retried, and after how long.

The action's `retry` (`{max_attempts, delay_seconds, backoff_multiplier,
max_delay_seconds, on}`) reads as Step Functions' `Retry` does:
`max_attempts` retries after the first attempt, the n-th waiting
`delay_seconds * backoff_multiplier ** (n - 1)`, capped at
`max_delay_seconds` — so 2 s, 4 s, 8 s for the seed's T2.8. `on` says which
outcomes are retried: `failure` (a non-zero exit, an error, a lost worker)
and `timeout`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CAUSES = ("failure", "timeout")


def retry_delay(policy: Mapping[str, Any] | None, retries_so_far: int, cause: str) -> float | None:
    """Seconds to wait before the next attempt, or None when the failure is final."""
    if not policy:
        return None
    if cause not in policy.get("on", CAUSES):
        return None
    if retries_so_far >= int(policy.get("max_attempts", 3)):
        return None
    delay = float(policy.get("delay_seconds", 1.0)) * float(policy.get("backoff_multiplier", 2.0)) ** retries_so_far
    return min(delay, float(policy.get("max_delay_seconds", 300.0)))
