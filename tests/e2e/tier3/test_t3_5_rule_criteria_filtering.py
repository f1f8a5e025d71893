"""T3.5 Webhook with rule criteria filtering: several rules on one trigger, each fires only on its level.

Rule A: level == 'info'; rule B: level == 'error'; rule C combines two
criteria with a nested path. A criteria-less sentinel rule marks when each
event has been evaluated (it is test scaffolding, not one of the rules under test).
"""

from __future__ import annotations

from tests.e2e.client import Cloud
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


def test_each_rule_fires_only_on_its_level(cloud: Cloud) -> None:
    # GIVEN one webhook trigger and rules A, B, C with different criteria
    user = cloud.register("t35")
    trigger = webhook_trigger(user)
    sentinel = create_rule(user, trigger["id"], "core.noop")
    message = {"message": "{{ rule.ref }}|{{ trigger.data.level }}|{{ trigger.data.service.name }}"}
    rule_a = create_rule(
        user, trigger["id"], "core.echo", criteria="{{ trigger.data.level == 'info' }}", parameters=message
    )
    rule_b = create_rule(
        user, trigger["id"], "core.echo", criteria="{{ trigger.data.level == 'error' }}", parameters=message
    )
    rule_c = create_rule(
        user,
        trigger["id"],
        "core.echo",
        criteria="{{ trigger.data.level == 'error' and trigger.data.service.name in ['db', 'api'] }}",
        parameters=message,
    )

    # WHEN info, error (two services) and debug events arrive
    info = fire(cloud, trigger["id"], {"level": "info", "service": {"name": "web"}})
    error_db = fire(cloud, trigger["id"], {"level": "error", "service": {"name": "db"}})
    error_web = fire(cloud, trigger["id"], {"level": "error", "service": {"name": "web"}})
    debug = fire(cloud, trigger["id"], {"level": "debug", "service": {"name": "db"}})
    wait_evaluated(user, sentinel["id"], [info, error_db, error_web, debug])

    # THEN every webhook made an event
    assert {e["id"] for e in items(user, "/api/v1/events", trigger_id=trigger["id"])} == {
        info,
        error_db,
        error_web,
        debug,
    }
    # AND only matching rules made enforcements: info → A; error → B (and C for db); debug → none
    assert matched_events(user, rule_a["id"]) == {info}
    assert matched_events(user, rule_b["id"]) == {error_db, error_web}
    assert matched_events(user, rule_c["id"]) == {error_db}
    rules_for_debug = {e["rule_id"] for e in enforcements(user, event_id=debug)}
    assert rules_for_debug == {sentinel["id"]}

    # AND each enforcement ran its rule's action once, with that event's data
    outputs = []
    for rule in (rule_a, rule_b, rule_c):
        for enforcement in enforcements(user, rule_id=rule["id"]):
            execution = wait_final(user, execution_for(user, enforcement["id"])["id"])
            assert execution["status"] == "succeeded", execution
            outputs.append(execution["result"]["output"]["message"])
    assert sorted(outputs) == sorted(
        [
            f"{rule_a['ref']}|info|web",
            f"{rule_b['ref']}|error|db",
            f"{rule_b['ref']}|error|web",
            f"{rule_c['ref']}|error|db",
        ]
    )
    # AND non-matching rules executed nothing: four echo executions in all
    assert len(items(user, "/api/v1/executions", action_ref="core.echo")) == 4
