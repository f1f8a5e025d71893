"""T1.5 Workflow with array iteration (with-items): one child execution per item, in parallel.

The seed's action verbatim (python3, `entry_point: actions/process.py`,
parameter `items` an array, `with_items: "{{ items }}"`), registered through a
pack and triggered by a rule on a webhook with `["apple", "banana", "cherry"]`:
the parent runs as a workflow whose one task runs the action's code once per
item (docs/workflows.md). Exactly three children, each with
`parent_execution_id`, each given one item (and its index); the parent is
`running` while they run, they overlap in time, then the parent `succeeded`.
"""

from __future__ import annotations

from typing import Any

from tests.e2e.client import Cloud
from tests.e2e.flow import FINAL, create_rule, enforcements, execution_for, fire, get_execution, poll, webhook_trigger
from tests.e2e.workflow_flow import at, children, new_pack, output, wait_done

FRUITS = ["apple", "banana", "cherry"]
# The seed's definition, with its indentation restored.
PROCESS_ITEMS_YAML = """\
name: process_items
runner_type: python3
entry_point: actions/process.py
parameters:
  items:
    type: array
    required: true
with_items: "{{ items }}"
"""
# Each child sleeps a little so that "parent running while children run" and their overlap are observable.
PROCESS_PY = """\
import time


def run(item, index, **_):
    time.sleep(1.5)
    return {"processed": item, "index": index}
"""


def test_with_items_fans_out_one_child_per_item(cloud: Cloud) -> None:
    user = cloud.register("t15")
    # GIVEN the seed's with-items action in a pack
    ref = new_pack(user, "t15", {"actions/process_items.yaml": PROCESS_ITEMS_YAML, "actions/process.py": PROCESS_PY})
    action_ref = f"{ref}.process_items"
    shown = user.get(f"/api/v1/actions/{action_ref}")
    assert shown.status_code == 200, shown.text
    # AND a rule that runs it for each webhook event, with the event's array
    trigger = webhook_trigger(user)
    rule = create_rule(user, trigger["id"], action_ref, parameters={"items": "{{ trigger.data.items }}"})

    # WHEN the array is posted to the webhook
    event_id = fire(cloud, trigger["id"], {"items": FRUITS})

    # THEN the rule made one (parent) execution with the array as its parameter
    enforcement = poll(lambda: enforcements(user, rule_id=rule["id"]), "the enforcement", cloud)
    assert len(enforcement) == 1 and enforcement[0]["event_id"] == event_id, str(enforcement)
    parent = execution_for(user, enforcement[0]["id"])
    assert parent["action_ref"] == action_ref
    assert parent["parameters"]["items"] == FRUITS, str(parent)
    assert parent["parent_execution_id"] is None

    # AND while its children run, the parent is `running`: seen between two looks that both found a
    # child not yet finished (so children existed and were outstanding when the parent was read)
    observed: list[str] = []

    def parent_seen_while_children_run() -> str | None:
        before = children(user, parent["id"])
        if not any(c["status"] == "running" for c in before):
            return None
        status = str(get_execution(user, parent["id"])["status"])
        after = children(user, parent["id"])
        if any(c["status"] not in FINAL for c in after):
            observed.append(status)
            return status
        return None

    status = poll(parent_seen_while_children_run, "a child running", cloud, timeout=60)
    assert status == "running", (status, observed)

    # AND the parent succeeds once every child has
    final = wait_done(user, parent["id"])
    assert final["status"] == "succeeded", str(final)
    kids = children(user, parent["id"])

    # AND there are exactly three children, one per item, each with the parent's id
    assert len(kids) == len(FRUITS), str(kids)
    for kid in kids:
        assert kid["parent_execution_id"] == parent["id"], str(kid)
        assert kid["status"] == "succeeded", str(kid)
    # AND each child received a single item (and its index) and processed that one
    by_index: dict[int, dict[str, Any]] = {}
    for kid in kids:
        assert kid["item_index"] is not None, str(kid)
        by_index[kid["item_index"]] = kid
    assert sorted(by_index) == [0, 1, 2], str(kids)
    for index, fruit in enumerate(FRUITS):
        kid = by_index[index]
        assert kid["parameters"]["item"] == fruit and kid["parameters"]["index"] == index, str(kid)
        assert output(kid) == {"processed": fruit, "index": index}, str(kid)
    # AND the children ran in parallel: all three were running at one moment
    starts = [at(k["started"]) for k in kids]
    ends = [at(k["finished"]) for k in kids]
    assert max(starts) < min(ends), [(k["started"], k["finished"]) for k in kids]
    # AND the parent finished after the last child
    assert at(final["finished"]) >= max(ends), (final["finished"], [k["finished"] for k in kids])
    # AND its result holds the items' outputs, in item order
    outs = [{"processed": fruit, "index": i} for i, fruit in enumerate(FRUITS)]
    parent_out = output(final)
    assert parent_out == outs or (isinstance(parent_out, dict) and outs in parent_out.values()), str(parent_out)
