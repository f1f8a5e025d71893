"""T2.5 Rule criteria evaluation: events for every webhook, enforcements and executions only where criteria hold.

Criteria are Jinja2 over `trigger.data` and `datastore`. A criteria-less
sentinel rule on the same trigger tells when the engine has evaluated an event
(see `tests.e2e.flow.wait_evaluated`), so "no enforcement" is checked after
the fact, not after a sleep.
"""

from __future__ import annotations

from typing import Any

from tests.e2e.client import Cloud, User
from tests.e2e.flow import (
    create_rule,
    enforcements,
    execution_for,
    fire,
    items,
    matched_events,
    wait_evaluated,
    wait_final,
    webhook_trigger,
)


def _trigger_with_sentinel(user: User) -> tuple[int, int]:
    trigger = webhook_trigger(user)
    sentinel = create_rule(user, trigger["id"], "core.noop")
    return trigger["id"], sentinel["id"]


def _echo_rule(user: User, trigger_id: int, criteria: str, label: str) -> dict[str, Any]:
    return create_rule(
        user, trigger_id, "core.echo", criteria=criteria, parameters={"message": f"{label}:{{{{ trigger.data.n }}}}"}
    )


def test_only_the_critical_event_fires(cloud: Cloud) -> None:
    # GIVEN a rule that fires only on critical events
    user = cloud.register("t25")
    trigger_id, sentinel = _trigger_with_sentinel(user)
    rule = _echo_rule(user, trigger_id, '{{ trigger.data.status == "critical" }}', "crit")

    # WHEN an info and then a critical event arrive
    info = fire(cloud, trigger_id, {"status": "info", "n": 1})
    critical = fire(cloud, trigger_id, {"status": "critical", "n": 2})
    wait_evaluated(user, sentinel, [info, critical])

    # THEN both events exist
    assert {e["id"] for e in items(user, "/api/v1/events", trigger_id=trigger_id)} == {info, critical}
    # AND the rule made an enforcement for the critical one only
    found = enforcements(user, rule_id=rule["id"])
    assert [e["event_id"] for e in found] == [critical]
    # AND exactly one execution of its action, which ran with the critical event's data
    execution = wait_final(user, execution_for(user, found[0]["id"])["id"])
    assert execution["status"] == "succeeded" and execution["result"]["output"] == {"message": "crit:2"}
    assert [e["id"] for e in items(user, "/api/v1/executions", action_ref="core.echo")] == [execution["id"]]


def test_criteria_compare_with_a_datastore_value(cloud: Cloud) -> None:
    # GIVEN a threshold in the datastore and a rule comparing the event's value with it
    user = cloud.register("t25-ds")
    assert user.post("/api/v1/datastore", {"key": "threshold", "value": 50}).status_code in (200, 201)
    trigger_id, sentinel = _trigger_with_sentinel(user)
    rule = _echo_rule(user, trigger_id, "{{ trigger.data.value > datastore.threshold }}", "over")

    # WHEN values above, below and at the threshold arrive
    above = fire(cloud, trigger_id, {"value": 70, "n": 70})
    below = fire(cloud, trigger_id, {"value": 30, "n": 30})
    equal = fire(cloud, trigger_id, {"value": 50, "n": 50})
    wait_evaluated(user, sentinel, [above, below, equal])
    # THEN only the one above matched
    assert matched_events(user, rule["id"]) == {above}

    # WHEN the threshold is lowered THEN the next evaluation reads the new value
    assert user.post("/api/v1/datastore", {"key": "threshold", "value": 20}).status_code == 200
    now_above = fire(cloud, trigger_id, {"value": 30, "n": 31})
    wait_evaluated(user, sentinel, [now_above])
    assert matched_events(user, rule["id"]) == {above, now_above}
    outputs = {
        wait_final(user, execution_for(user, e["id"])["id"])["result"]["output"]["message"]
        for e in enforcements(user, rule_id=rule["id"])
    }
    assert outputs == {"over:70", "over:31"}


def test_the_seed_criteria_examples(cloud: Cloud) -> None:
    # GIVEN the seed's three criteria on one trigger
    user = cloud.register("t25-ex")
    trigger_id, sentinel = _trigger_with_sentinel(user)
    severity = _echo_rule(user, trigger_id, "{{ trigger.data.severity == 'high' }}", "sev")
    count = _echo_rule(user, trigger_id, "{{ trigger.data.count > 100 }}", "count")
    environment = _echo_rule(user, trigger_id, "{{ trigger.data.environment in ['prod', 'staging'] }}", "env")

    # WHEN events that match each, all and none of them arrive
    only_severity = fire(cloud, trigger_id, {"severity": "high", "count": 5, "environment": "dev", "n": 1})
    only_count = fire(cloud, trigger_id, {"severity": "low", "count": 101, "environment": "dev", "n": 2})
    only_env = fire(cloud, trigger_id, {"severity": "low", "count": 100, "environment": "staging", "n": 3})
    every = fire(cloud, trigger_id, {"severity": "high", "count": 500, "environment": "prod", "n": 4})
    nothing = fire(cloud, trigger_id, {"severity": "low", "count": 1, "environment": "qa", "n": 5})
    wait_evaluated(user, sentinel, [only_severity, only_count, only_env, every, nothing])

    # THEN each rule matched exactly its events (count > 100 is strict; 'qa' is not in the list)
    assert matched_events(user, severity["id"]) == {only_severity, every}
    assert matched_events(user, count["id"]) == {only_count, every}
    assert matched_events(user, environment["id"]) == {only_env, every}
    # AND the five events all exist, the unmatched one included
    assert len(items(user, "/api/v1/events", trigger_id=trigger_id)) == 5
    # AND one echo execution per matching (rule, event), none for the rest
    matched = [e for r in (severity, count, environment) for e in enforcements(user, rule_id=r["id"])]
    assert len(matched) == 6
    outputs = sorted(
        wait_final(user, execution_for(user, e["id"])["id"])["result"]["output"]["message"] for e in matched
    )
    assert outputs == sorted(["sev:1", "sev:4", "count:2", "count:4", "env:3", "env:4"])
    assert len(items(user, "/api/v1/executions", action_ref="core.echo")) == 6
