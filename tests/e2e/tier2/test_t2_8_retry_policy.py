"""T2.8 Retry policy: a failing action is retried with exponential backoff until it succeeds.

The seed's policy `{max_attempts: 3, delay_seconds: 2, backoff_multiplier: 2.0,
max_delay_seconds: 60}` (verbatim) on an action that fails its first two
attempts: retried 2 s, then 4 s later (±20 %), succeeds on the third; every
attempt is recorded (`attempts`, audit `execution.retried`), `retry_count` is
2. And an action that never succeeds stops after 1 + 3 attempts, `failed`.
"""

from __future__ import annotations

from datetime import datetime

import pytest
import yaml

from tests.e2e.client import Cloud, User
from tests.e2e.flow import actions_of, audit_trail, register_pack, unique_ref, wait_final

# Runs alone on the cloud (tests/e2e/run.py): its criterion is a timing tolerance (the retry delays).
pytestmark = pytest.mark.serial

SEED_RETRY = """\
retry:
  max_attempts: 3
  delay_seconds: 2
  backoff_multiplier: 2.0
  max_delay_seconds: 60
"""
# Counts its attempts in the datastore (its only state that outlives an attempt) and fails
# until it has failed `fail_times` times.
FLAKY_PY = """\
import sys
import attune_action


def run(key, fail_times):
    seen = (attune_action.datastore_get(key) or 0) + 1
    attune_action.datastore_set(key, seen)
    if seen <= fail_times:
        print(f"attempt {seen} fails", file=sys.stderr)
        sys.exit(1)
    return {"attempt": seen}
"""


def _flaky(user: User) -> str:
    ref = unique_ref("retry")
    action = {"name": "flaky", "runner_type": "python3", "entry_point": "actions/flaky.py",
              "parameters": {"key": {"type": "string", "required": True},
                             "fail_times": {"type": "integer", "required": True}},
              **yaml.safe_load(SEED_RETRY)}
    register_pack(user, ref, {"actions/flaky.yaml": yaml.safe_dump(action), "actions/flaky.py": FLAKY_PY})
    return f"{ref}.flaky"


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_retried_with_backoff_until_it_succeeds(cloud: Cloud) -> None:
    user = cloud.register("t28")
    action_ref = _flaky(user)
    # WHEN an action that fails twice runs under the seed's retry policy
    created = user.post("/api/v1/executions", {"action_ref": action_ref,
                                               "parameters": {"key": "t28_count", "fail_times": 2}})
    assert created.status_code == 201, created.text
    execution = wait_final(user, created.json()["id"], timeout=60)
    # THEN it succeeds on its third attempt, two retries counted
    assert execution["status"] == "succeeded", execution
    assert execution["result"]["output"] == {"attempt": 3}
    assert execution["retry_count"] == 2
    # AND each attempt is recorded: the two failures with their exit code and error, and the success
    attempts = execution["attempts"]
    assert [a["exit_code"] for a in attempts] == [1, 1, 0], attempts
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    # AND the backoff between a failure and the next start was ~2 s, then ~4 s (±20 %)
    gaps = [(_at(attempts[i + 1]["started"]) - _at(attempts[i]["finished"])).total_seconds() for i in range(2)]
    assert 1.6 <= gaps[0] <= 2.4 and 3.2 <= gaps[1] <= 4.8, gaps
    # AND each retry is logged separately in the audit trail
    trail = actions_of(audit_trail(user, execution["id"]))
    assert trail.count("execution.retried") == 2 and trail.count("execution.started") == 3, trail


def test_max_attempts_is_honoured(cloud: Cloud) -> None:
    user = cloud.register("t28max")
    action_ref = _flaky(user)
    # WHEN the action never succeeds
    created = user.post("/api/v1/executions", {"action_ref": action_ref,
                                               "parameters": {"key": "t28_never", "fail_times": 99}})
    execution = wait_final(user, created.json()["id"], timeout=60)
    # THEN it stops after the first attempt and 3 retries (2 + 4 + 8 s of backoff), failed
    assert execution["status"] == "failed" and execution["retry_count"] == 3, execution
    assert len(execution["attempts"]) == 4
    assert user.get("/api/v1/datastore/t28_never").json()["value"] == 4
