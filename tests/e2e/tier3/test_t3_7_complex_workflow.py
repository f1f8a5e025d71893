"""T3.7 Complex orchestration: webhook -> rule -> workflow: threshold check, approval, multi-step, datastore, final.

    Webhook -> Check Threshold -> Inquiry -> Multi-Step Workflow -> Update Datastore -> (Notify)

The conditional: the rule's criteria compare the event with the threshold in
the datastore (the workflow language has no conditions; a rule is where
Attune decides whether to act), so an event under the threshold starts
nothing; the workflow's first task reads the same threshold through the
action helper and reports it. Then an inquiry pauses it; after the approval a
with-items step restarts each service, a step writes the outcome to the
datastore, and a final step summarises. Data flows end to end: the event's
fields, the threshold, the approver's ticket.

The seed's last stage, "Notification delivered": a WebSocket client of the
tenant, connected before the alert, receives the approval request
(`inquiry.created`) and its answer (`inquiry.responded`), in that order,
every status change of the workflow in order, and the final step's success.
"""

from __future__ import annotations

from typing import Any

from tests.e2e.client import Cloud
from tests.e2e.flow import create_rule, enforcements, execution_for, fire, poll, wait_evaluated, webhook_trigger
from tests.e2e.workflow_flow import (
    answer,
    at,
    children,
    create_workflow,
    new_pack,
    of_task,
    output,
    pack_action,
    untyped,
    wait_done,
    wait_inquiry,
    wait_status,
)

CHECK_PY = """\
import attune_action


def run(cpu):
    threshold = attune_action.datastore_get("cpu_threshold")
    return {"cpu": cpu, "threshold": threshold, "exceeded": threshold is not None and cpu > threshold}
"""
RESTART_PY = """\
def run(host, service, approved):
    return {"host": host, "service": service, "restarted": bool(approved)}
"""
RECORD_PY = """\
import attune_action


def run(host, ticket, threshold, restarted):
    services = [r["service"] for r in restarted if r["restarted"]]
    summary = {"ticket": ticket, "threshold": threshold, "services": services}
    attune_action.datastore_set(f"remediation.{host}", summary)
    return summary
"""
APPROVAL = {
    "type": "object",
    "properties": {"approved": {"type": "boolean"}, "ticket": {"type": "string", "pattern": "^OPS-[0-9]+$"}},
    "required": ["approved", "ticket"],
}
SERVICES = ["postgres", "pgbouncer"]
ALERT = {"host": "db-7", "cpu": 95, "services": SERVICES}


def test_webhook_to_approval_to_remediation(cloud: Cloud) -> None:
    user = cloud.register("t37")
    # GIVEN a threshold in the datastore
    assert user.post("/api/v1/datastore", {"key": "cpu_threshold", "value": 80}).status_code in (200, 201)
    pack = new_pack(user, "t37", {
        **pack_action("check", "python3", CHECK_PY, {"cpu": {"type": "number", "required": True}}),
        **pack_action("restart", "python3", RESTART_PY, untyped("host", "service", "approved")),
        **pack_action("record", "python3", RECORD_PY, untyped("host", "ticket", "threshold", "restarted")),
    })
    # AND the remediation workflow
    ref = create_workflow(user, pack, "remediate", [
        {"name": "check", "action": f"{pack}.check", "input": {"cpu": "{{ parameters.cpu }}"}},
        {"name": "approve", "depends_on": ["check"],
         "inquiry": {"prompt": "CPU over threshold: restart the services?", "schema": APPROVAL, "ttl": 600}},
        {"name": "restart", "action": f"{pack}.restart", "depends_on": ["approve"],
         "with_items": "{{ parameters.services }}",
         "input": {"host": "{{ parameters.host }}", "service": "{{ item }}",
                   "approved": "{{ approve.result.approved }}"}},
        {"name": "record", "action": f"{pack}.record", "depends_on": ["restart"],
         "input": {"host": "{{ parameters.host }}", "ticket": "{{ approve.result.ticket }}",
                   "threshold": "{{ check.result.threshold }}", "restarted": "{{ restart.result }}"}},
        {"name": "final", "action": "core.echo", "depends_on": ["record"],
         "input": {"message": "{{ parameters.host }} remediated under {{ approve.result.ticket }}"}},
    ], parameters={"host": {"type": "string", "required": True}, "cpu": {"type": "number", "required": True},
                   "services": {"type": "array", "required": True}},
       output={"summary": "{{ final.result.message }}", "stored": "{{ record.result }}"})
    # AND a rule that starts it only when the event's CPU is over the stored threshold, beside a sentinel
    trigger = webhook_trigger(user)
    rule = create_rule(user, trigger["id"], ref, criteria="{{ trigger.data.cpu > datastore.cpu_threshold }}",
                       parameters={k: f"{{{{ trigger.data.{k} }}}}" for k in ALERT})
    sentinel = create_rule(user, trigger["id"], "core.noop")

    # AND a WebSocket client of the tenant, listening from before the first alert
    with user.listen() as ws:
        # WHEN an event under the threshold arrives THEN nothing is started for it
        calm = fire(cloud, trigger["id"], {**ALERT, "cpu": 40})
        wait_evaluated(user, sentinel["id"], [calm])
        assert enforcements(user, rule_id=rule["id"]) == []

        # WHEN an event over the threshold arrives
        hot = fire(cloud, trigger["id"], ALERT)
        enforcement = poll(lambda: enforcements(user, rule_id=rule["id"]), "the remediation enforcement", cloud)
        assert [e["event_id"] for e in enforcement] == [hot], str(enforcement)
        workflow_id = execution_for(user, enforcement[0]["id"])["id"]

        # THEN the workflow checks the threshold, then pauses for approval
        wait_status(user, workflow_id, "paused")
        inquiry = wait_inquiry(user, workflow_execution_id=workflow_id)
        (check,) = of_task(children(user, workflow_id), "check")
        assert output(check) == {"cpu": 95, "threshold": 80, "exceeded": True}, str(check)
        assert at(inquiry["created"]) >= at(check["finished"])
        assert [k["task_name"] for k in children(user, workflow_id)] == ["check", "approve"], "nothing ran past it"

        # WHEN the on-call approves with a ticket
        answered = answer(user, inquiry["id"], {"approved": True, "ticket": "OPS-1234"})
        assert answered["status"] == "responded"

        # THEN the remaining stages run in order and the workflow succeeds
        workflow = wait_done(user, workflow_id)
        assert workflow["status"] == "succeeded", str(workflow)
        kids = children(user, workflow_id)
        restarts = sorted(of_task(kids, "restart"), key=lambda k: k["item_index"])
        (record,), (final,) = of_task(kids, "record"), of_task(kids, "final")
        assert [output(k) for k in restarts] == [
            {"host": "db-7", "service": s, "restarted": True} for s in SERVICES
        ], restarts
        for restart in restarts:
            assert at(restart["started"]) >= at(answered["responded_at"]), (restart, answered)
        assert at(record["started"]) >= max(at(k["finished"]) for k in restarts)
        assert at(final["started"]) >= at(record["finished"])
        # AND the data flowed through: the threshold, the services, the ticket
        stored = {"ticket": "OPS-1234", "threshold": 80, "services": ["postgres", "pgbouncer"]}
        assert output(record) == stored, str(record)
        assert output(workflow) == {"summary": "db-7 remediated under OPS-1234", "stored": stored}, str(workflow)
        # AND the datastore holds the outcome
        item = user.get("/api/v1/datastore/remediation.db-7")
        assert item.status_code == 200 and item.json()["value"] == stored, item.text
        # AND the one enforcement followed its workflow to `succeeded`
        poll(lambda: [e for e in enforcements(user, rule_id=rule["id"]) if e["status"] == "succeeded"],
             "the enforcement to succeed", cloud)
        # AND the notifications were delivered: the approval request and its answer, and the workflow's every change
        (created,) = ws.wait(_events("inquiry.created", inquiry["id"]), "inquiry.created")
        assert created["data"]["prompt"] == "CPU over threshold: restart the services?", created
        (responded,) = ws.wait(_events("inquiry.responded", inquiry["id"]), "inquiry.responded")
        assert responded["data"]["response"] == {"approved": True, "ticket": "OPS-1234"}, responded
        ws.wait(lambda ms: [m for m in _events("execution.status_changed", workflow_id)(ms)
                            if m["data"]["status"] == "succeeded"], "the workflow's success")
        statuses = [m["data"]["status"] for m in _events("execution.status_changed", workflow_id)(ws.notifications())]
        assert statuses == ["requested", "running", "paused", "running", "succeeded"], statuses
        (final_note,) = ws.wait(lambda ms: [m for m in _events("execution.status_changed", final["id"])(ms)
                                            if m["data"]["status"] == "succeeded"], "the final step's success")
        assert final_note["data"]["parent_execution_id"] == workflow_id, final_note
        assert final_note["data"]["action_ref"] == "core.echo", final_note
        assert ws.notifications().index(created) < ws.notifications().index(responded)


def _events(name: str, entity_id: int) -> Any:
    def probe(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [m for m in messages if m.get("event") == name and m["entity_id"] == entity_id]
    return probe
