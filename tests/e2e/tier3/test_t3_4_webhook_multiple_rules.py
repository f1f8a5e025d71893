"""T3.4 Webhook with multiple rules: one event, one enforcement and one execution per rule, all on the same payload.

Rules are evaluated independently: a disabled rule makes nothing, and a rule
whose parameter template fails at render time gets a `failed` enforcement with
the message while the others run.
"""

from __future__ import annotations

from tests.e2e.client import Cloud
from tests.e2e.flow import (
    create_rule,
    enforcements,
    execution_for,
    fire,
    items,
    poll,
    wait_final,
    wait_many,
    webhook_trigger,
)

PAYLOAD = {"msg": "deploy finished", "build": {"id": 77, "branch": "main"}}


def test_one_event_fires_every_rule(cloud: Cloud) -> None:
    # GIVEN one webhook trigger with three rules, and a fourth that is disabled
    user = cloud.register("t34")
    trigger = webhook_trigger(user)
    rules = [
        create_rule(
            user,
            trigger["id"],
            "core.echo",
            parameters={"message": f"rule{i}:{{{{ trigger.data.msg }}}}#{{{{ trigger.data.build.id }}}}"},
        )
        for i in range(3)
    ]
    disabled = create_rule(user, trigger["id"], "core.noop")
    assert user.patch(f"/api/v1/rules/{disabled['id']}", {"enabled": False}).status_code == 200

    # WHEN one POST arrives
    event_id = fire(cloud, trigger["id"], PAYLOAD)

    # THEN exactly one event
    assert [e["id"] for e in items(user, "/api/v1/events", trigger_id=trigger["id"])] == [event_id]
    # AND one enforcement per enabled rule, all for that event
    found = wait_many(lambda: enforcements(user, event_id=event_id), 3, "three enforcements", cloud)
    assert sorted(e["rule_id"] for e in found) == sorted(r["id"] for r in rules)
    assert {e["trigger_id"] for e in found} == {trigger["id"]}
    # AND one execution per enforcement, every one succeeded, every one saw the same payload
    executions = [wait_final(user, execution_for(user, e["id"])["id"]) for e in found]
    assert len({x["id"] for x in executions}) == 3
    assert all(x["status"] == "succeeded" for x in executions), executions
    assert sorted(x["result"]["output"]["message"] for x in executions) == [
        f"rule{i}:deploy finished#77" for i in range(3)
    ]
    # AND the disabled rule made nothing (its siblings' enforcements exist, so it has been evaluated)
    assert enforcements(user, rule_id=disabled["id"]) == []
    assert items(user, "/api/v1/executions", action_ref="core.noop") == []
    assert len(enforcements(user, trigger_id=trigger["id"])) == 3


def test_a_broken_rule_does_not_stop_the_others(cloud: Cloud) -> None:
    # GIVEN two good rules and one whose parameter template fails when rendered (a missing field renders
    # as null, so the failure is a real evaluation error: text plus a number)
    user = cloud.register("t34-err")
    trigger = webhook_trigger(user)
    good = [
        create_rule(user, trigger["id"], "core.echo", parameters={"message": f"ok{i}:{{{{ trigger.data.msg }}}}"})
        for i in range(2)
    ]
    broken = create_rule(user, trigger["id"], "core.echo", parameters={"message": "{{ trigger.data.msg + 1 }}"})

    # WHEN the webhook fires
    event_id = fire(cloud, trigger["id"], PAYLOAD)

    # THEN the broken rule's enforcement is failed, with the template error, and its one execution
    # failed at once with that same error (ARCHITECTURE §5: a template error fails the execution)
    failed = poll(lambda: enforcements(user, rule_id=broken["id"]), "the broken rule's enforcement", cloud)
    assert len(failed) == 1 and failed[0]["event_id"] == event_id
    failed = poll(
        lambda: [e for e in enforcements(user, rule_id=broken["id"]) if e["status"] == "failed"],
        "the broken rule's enforcement to be failed",
        cloud,
    )
    assert failed[0]["error"] and "parameters.message" in failed[0]["error"], failed[0]
    assert "TypeError" in failed[0]["error"], failed[0]
    broken_runs = items(user, "/api/v1/executions", enforcement_id=failed[0]["id"])
    assert [e["status"] for e in broken_runs] == ["failed"], broken_runs
    detail = user.get(f"/api/v1/executions/{broken_runs[0]['id']}").json()
    assert detail["result"]["error"] == failed[0]["error"] and detail["started"] is None
    # AND the good rules ran to success
    found = wait_many(lambda: [e for r in good for e in enforcements(user, rule_id=r["id"])], 2, "good ones", cloud)
    assert {e["rule_id"] for e in found} == {r["id"] for r in good}
    for enforcement in found:
        execution = wait_final(user, execution_for(user, enforcement["id"])["id"])
        assert execution["status"] == "succeeded", execution
        assert execution["result"]["output"]["message"].endswith(":deploy finished")
    assert len(items(user, "/api/v1/executions", action_ref="core.echo", status="succeeded")) == 2
    assert len(items(user, "/api/v1/executions", action_ref="core.echo")) == 3
