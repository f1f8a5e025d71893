"""T2.4 Parameter templating and context in workflows.

The seed's template examples, in a workflow started by a rule on a webhook:
`{{ trigger.data.user.email }}`, `{{ datastore.config.api_url }}`,
`{{ task_1.result.status }}` (and the seed's `{{ task_1.result.api_key }}`),
`{{ item }}` in a with-items task; plus `execution.params`, bare parameter
names, types kept by a lone expression, a missing value rendering as null,
and a template that cannot be evaluated failing its task with a message
naming the task and the expression.
"""

from __future__ import annotations

from tests.e2e.client import Cloud
from tests.e2e.flow import create_rule, enforcements, execution_for, fire, poll, webhook_trigger
from tests.e2e.workflow_flow import (
    RETURN_PARAMS_PY,
    children,
    create_workflow,
    new_pack,
    of_task,
    output,
    pack_action,
    run_workflow,
    task_entries,
    untyped,
    wait_done,
)

STATUS_PY = """\
def run():
    return {"status": "healthy", "api_key": "key-from-task-1", "nested": {"depth": 2}}
"""
SEED_INPUT = {
    "user_email": "{{ trigger.data.user.email }}",
    "api_url": "{{ datastore.config.api_url }}",
    "previous_result": "{{ task_1.result.status }}",
    "api_key": "{{ task_1.result.api_key }}",
}
MORE_INPUT = {
    "env": "{{ execution.params.env }}",
    "bare_env": "{{ env }}",
    "hosts": "{{ parameters.hosts }}",
    "depth": "{{ task_1.result.nested.depth }}",
    "sentence": "{{ trigger.data.user.email }} on {{ env }}",
    "missing": "{{ task_1.result.no_such_field }}",
}
PAYLOAD = {"user": {"email": "ada@example.com", "name": "Ada"}, "env": "staging", "hosts": ["web-1", "web-2"]}


def test_templates_resolve_from_every_context(cloud: Cloud) -> None:
    user = cloud.register("t24")
    # GIVEN a datastore value, task_1 returning structured output, and an action that returns its parameters
    assert user.post("/api/v1/datastore", {"key": "config.api_url", "value": "https://api.example.com"}).status_code \
        in (200, 201)
    pack = new_pack(user, "t24", {
        **pack_action("status", "python3", STATUS_PY),
        **pack_action("show", "python3", RETURN_PARAMS_PY, untyped(*SEED_INPUT, *MORE_INPUT)),
        **pack_action("show_item", "python3", RETURN_PARAMS_PY, untyped("iteration_item", "n", "email")),
    })
    # AND a workflow whose later tasks use the seed's templates
    ref = create_workflow(user, pack, "templated", [
        {"name": "task_1", "action": f"{pack}.status"},
        {"name": "task_2", "action": f"{pack}.show", "depends_on": ["task_1"], "input": {**SEED_INPUT, **MORE_INPUT}},
        {"name": "each", "action": f"{pack}.show_item", "depends_on": ["task_1"],
         "with_items": "{{ parameters.hosts }}",
         "input": {"iteration_item": "{{ item }}", "n": "{{ index }}", "email": "{{ trigger.data.user.email }}"}},
    ], parameters={"env": {"type": "string", "required": True}, "hosts": {"type": "array", "required": True}},
       output={"email": "{{ task_2.result.user_email }}", "items": "{{ each.result }}"})
    # AND a rule that runs it for each webhook event
    trigger = webhook_trigger(user)
    rule = create_rule(user, trigger["id"], ref,
                       parameters={"env": "{{ trigger.data.env }}", "hosts": "{{ trigger.data.hosts }}"})

    # WHEN the webhook receives the event
    fire(cloud, trigger["id"], PAYLOAD)
    enforcement = poll(lambda: enforcements(user, rule_id=rule["id"]), "the enforcement", cloud)
    workflow = wait_done(user, execution_for(user, enforcement[0]["id"])["id"])

    # THEN the workflow succeeded
    assert workflow["status"] == "succeeded", str(workflow)
    kids = children(user, workflow["id"])
    (task_2,) = of_task(kids, "task_2")
    # AND task_2 received every seed template resolved: the trigger's nested field, the datastore
    # value, task_1's result fields
    assert task_2["parameters"] == {
        "user_email": "ada@example.com",
        "api_url": "https://api.example.com",
        "previous_result": "healthy",
        "api_key": "key-from-task-1",
        # AND the aliases of the workflow's parameters, a list and a number kept as such by a lone
        # expression, text around expressions rendered as a string, and a missing value as null
        "env": "staging",
        "bare_env": "staging",
        "hosts": ["web-1", "web-2"],
        "depth": 2,
        "sentence": "ada@example.com on staging",
        "missing": None,
    }, task_2
    assert output(task_2) == task_2["parameters"]
    # AND each item of the with-items task got its own item and index (an int), in item order
    items_out = [{"iteration_item": h, "n": i, "email": "ada@example.com"} for i, h in enumerate(PAYLOAD["hosts"])]
    each = sorted(of_task(kids, "each"), key=lambda k: k["item_index"])
    assert [output(k) for k in each] == items_out, str(each)
    # AND the output map carried the values up, a with-items task's result being the list of its outputs
    assert output(workflow) == {"email": "ada@example.com", "items": items_out}, str(workflow)


def test_a_template_that_cannot_be_evaluated_fails_its_task(cloud: Cloud) -> None:
    user = cloud.register("t24-err")
    pack = new_pack(user, "t24e", pack_action("show", "python3", RETURN_PARAMS_PY, untyped("value")))
    # GIVEN a task whose input is valid syntax but cannot be evaluated (a string divided by a number)
    expression = "parameters.word / 2"
    ref = create_workflow(user, pack, "broken", [
        {"name": "fine", "action": "core.echo", "input": {"message": "ok"}},
        {"name": "divide", "action": f"{pack}.show", "depends_on": ["fine"],
         "input": {"value": "{{ " + expression + " }}"}},
    ], parameters={"word": {"type": "string", "default": "text"}})
    # WHEN it runs
    workflow = run_workflow(user, ref)
    # THEN the task fails, and the workflow with it, with a message naming the task and the expression
    # (its text, or where it is: the input field that holds it)
    assert workflow["status"] == "failed", str(workflow)
    error = workflow["result"]["error"]
    assert "divide" in error and ("parameters.word" in error or "input.value" in error), str(error)
    assert task_entries(workflow)["divide"]["status"] == "failed", str(workflow["tasks"])
    assert task_entries(workflow)["fine"]["status"] == "succeeded"


def test_template_syntax_errors_are_refused_at_registration(cloud: Cloud) -> None:
    user = cloud.register("t24-syntax")
    pack = new_pack(user, "t24s")
    body = {
        "ref": f"{pack}.bad", "pack": pack, "runner_type": "workflow",
        "workflow": {"tasks": [{"name": "oops", "action": "core.echo", "input": {"message": "{{ unclosed "}}]},
    }
    resp = user.post("/api/v1/actions", body)
    # THEN 400 naming the task
    assert resp.status_code == 400, resp.text
    assert "oops" in resp.json()["error"]["message"], resp.json()
