"""The workflow language (core.workflow.model): what parses, and a 400 naming the task for what does not."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from chalicelib.core.errors import ValidationFailed
from chalicelib.core.workflow import (
    Workflow,
    implicit_with_items,
    levels,
    parse_workflow,
    referenced_actions,
)
from chalicelib.models.packs import RetryPolicy

# The brief's own example, as a pack author would write it.
EXAMPLE: dict[str, Any] = {
    "parameters": {"env": {"type": "string"}},
    "tasks": [
        {"name": "fetch", "action": "core.echo", "input": {"message": "{{ parameters.env }}"}},
        {"name": "each", "action": "pack.process", "depends_on": ["fetch"],
         "with_items": "{{ parameters.items }}", "concurrency": 3,
         "input": {"item": "{{ item }}", "n": "{{ index }}"},
         "retry": {"max_attempts": 3, "delay_seconds": 2, "backoff_multiplier": 2.0, "max_delay_seconds": 60},
         "on_failure": "continue", "timeout": 30},
        {"name": "approve", "depends_on": ["each"],
         "inquiry": {"prompt": "Ship it?",
                     "schema": {"type": "object", "properties": {"approved": {"type": "boolean"}}},
                     "ttl": 300, "default": {"approved": False}, "roles": ["admin"]}},
    ],
    "output": {"approved": "{{ approve.result.approved }}"},
    "timeout": 600,
}


def tasks(*defs: dict[str, Any]) -> dict[str, Any]:
    return {"tasks": list(defs)}


def action(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "action": "core.echo", **fields}


def refused(doc: Any, where: str = "workflow") -> str:
    with pytest.raises(ValidationFailed) as caught:
        parse_workflow(doc, where)
    assert caught.value.status == 400
    return caught.value.message


# --- What parses ---------------------------------------------------------------------------------

def test_the_example_parses_with_every_field_where_it_belongs() -> None:
    wf = parse_workflow(EXAMPLE)
    fetch, each, approve = wf.tasks
    assert (fetch.action, fetch.input, fetch.depends_on, fetch.with_items) == (
        "core.echo", {"message": "{{ parameters.env }}"}, [], None)
    assert each.with_items == "{{ parameters.items }}"
    assert each.concurrency_limit == 3
    assert each.retry == RetryPolicy(max_attempts=3, delay_seconds=2.0, backoff_multiplier=2.0, max_delay_seconds=60.0)
    assert (each.on_failure, each.timeout, each.depends_on) == ("continue", 30, ["fetch"])
    assert approve.is_inquiry and not each.is_inquiry
    assert approve.inquiry is not None
    assert (approve.inquiry.prompt, approve.inquiry.ttl, approve.inquiry.default, approve.inquiry.roles) == (
        "Ship it?", 300, {"approved": False}, ["admin"])
    assert wf.output == {"approved": "{{ approve.result.approved }}"}
    assert wf.timeout == 600
    assert wf.implicit is False


def test_defaults() -> None:
    wf = parse_workflow(tasks(action("a"), {"name": "ask", "inquiry": {}}))
    a, ask = wf.tasks
    assert (a.input, a.depends_on, a.on_failure, a.retry, a.retry_policy, a.timeout) == (
        {}, [], "abort", None, None, None)
    assert a.concurrency_limit == 0
    assert ask.inquiry is not None
    assert ask.inquiry.prompt == "Do you approve?"
    assert ask.inquiry.schema_ == {"type": "object", "properties": {"approved": {"type": "boolean"}},
                                   "required": ["approved"]}
    assert (ask.inquiry.ttl, ask.inquiry.default, ask.inquiry.roles) == (3600, None, [])
    assert wf.output is None and wf.timeout is None


def test_each_inquiry_gets_its_own_default_schema() -> None:
    wf = parse_workflow(tasks({"name": "a", "inquiry": {}}, {"name": "b", "inquiry": {}}))
    assert wf.tasks[0].inquiry is not None and wf.tasks[1].inquiry is not None
    assert wf.tasks[0].inquiry.schema_ is not wf.tasks[1].inquiry.schema_


@pytest.mark.parametrize(("concurrency", "limit"), [(None, 0), ("unlimited", 0), (1, 1), (7, 7)])
def test_concurrency_limit_reads_as_map_max_concurrency(concurrency: Any, limit: int) -> None:
    wf = parse_workflow(tasks(action("a", with_items=[1, 2], concurrency=concurrency)))
    assert wf.tasks[0].concurrency_limit == limit


def test_on_failure_retry_without_a_policy_retries_with_the_action_defaults() -> None:
    wf = parse_workflow(tasks(action("a", on_failure="retry"), action("b", retry={"max_attempts": 1})))
    assert wf.task("a").retry_policy == RetryPolicy()
    assert wf.task("a").retry_policy == RetryPolicy(max_attempts=3, delay_seconds=1, backoff_multiplier=2,
                                                    max_delay_seconds=300)
    assert wf.task("b").retry_policy == RetryPolicy(max_attempts=1)


def test_stackstorm_spellings_are_aliases() -> None:
    kebab = parse_workflow(tasks(action("a"), action("b", **{"depends-on": ["a"], "with-items": "{{ xs }}",
                                                           "on-failure": "continue"})))
    snake = parse_workflow(tasks(action("a"), action("b", depends_on=["a"], with_items="{{ xs }}",
                                                     on_failure="continue")))
    assert kebab == snake


def test_one_dependency_may_be_written_without_a_list() -> None:
    assert parse_workflow(tasks(action("a"), action("b", depends_on="a"))).task("b").depends_on == ["a"]


def test_with_items_may_be_a_literal_list_of_anything() -> None:
    wf = parse_workflow(tasks(action("a", with_items=[1, "two", {"three": "{{ parameters.x }}"}])))
    assert wf.tasks[0].with_items == [1, "two", {"three": "{{ parameters.x }}"}]


def test_task_looks_tasks_up_by_name() -> None:
    wf = parse_workflow(EXAMPLE)
    assert wf.task("each") is wf.tasks[1]
    with pytest.raises(KeyError, match="no task 'nope'"):
        wf.task("nope")


def test_a_workflow_is_frozen() -> None:
    wf = parse_workflow(EXAMPLE)
    with pytest.raises(ValidationError):
        wf.tasks[0].action = "core.other"


def test_referenced_actions_are_the_action_tasks_refs() -> None:
    wf = parse_workflow(tasks(action("a"), {"name": "b", "action": "pack.sub_workflow"}, {"name": "c", "inquiry": {}},
                              action("d")))
    assert referenced_actions(wf) == {"core.echo", "pack.sub_workflow"}


# --- Levels --------------------------------------------------------------------------------------

def names(groups: list[list[Any]]) -> list[list[str]]:
    return [[t.name for t in group] for group in groups]


def test_levels_group_by_longest_dependency_depth_in_definition_order() -> None:
    wf = parse_workflow(tasks(
        action("late", depends_on=["mid", "root2"]), action("root1"), action("mid", depends_on=["root1"]),
        action("root2"), action("also_mid", depends_on=["root2"]),
    ))
    assert names(levels(wf)) == [["root1", "root2"], ["mid", "also_mid"], ["late"]]


def test_levels_of_a_chain_and_of_independent_tasks() -> None:
    chain = parse_workflow(tasks(action("a"), action("b", depends_on=["a"]), action("c", depends_on=["b"])))
    assert names(levels(chain)) == [["a"], ["b"], ["c"]]
    flat = parse_workflow(tasks(action("x"), action("y"), action("z")))
    assert names(levels(flat)) == [["x", "y", "z"]]


# --- implicit_with_items -------------------------------------------------------------------------

def test_implicit_with_items_is_one_task_running_the_action_per_item() -> None:
    wf = implicit_with_items("pack.process_items", "{{ items }}")
    assert wf.implicit is True
    (only,) = wf.tasks
    assert (only.name, only.action, only.with_items, only.concurrency_limit) == (
        "items", "pack.process_items", "{{ items }}", 0)
    assert only.input == {"item": "{{ item }}", "index": "{{ index }}"}
    assert (only.on_failure, only.retry_policy, only.depends_on) == ("abort", None, [])


def test_implicit_with_items_takes_a_list_and_a_concurrency() -> None:
    wf = implicit_with_items("pack.process", ["a", "b"], concurrency=2)
    assert (wf.tasks[0].with_items, wf.tasks[0].concurrency_limit) == (["a", "b"], 2)
    assert implicit_with_items("pack.process", "{{ xs }}", "unlimited").tasks[0].concurrency_limit == 0


def test_implicit_with_items_refuses_like_the_action_field_reads() -> None:
    with pytest.raises(ValidationFailed, match=r"^with_items: template syntax error at line 1: "):
        implicit_with_items("pack.process", "{{ items ")
    with pytest.raises(ValidationFailed, match=r"^with_items: expected a template"):
        implicit_with_items("pack.process", "items")
    with pytest.raises(ValidationFailed, match=r"^concurrency: expected an integer >= 1 or 'unlimited'$"):
        implicit_with_items("pack.process", "{{ items }}", concurrency=0)
    with pytest.raises(ValidationFailed, match=r"^action Bad\.Ref: task 'items' action: String should match"):
        implicit_with_items("Bad.Ref", "{{ items }}")


def test_a_document_cannot_claim_to_be_implicit() -> None:
    assert refused({**tasks(action("a")), "implicit": True}) == "workflow: implicit: unknown key"
    assert parse_workflow(tasks(action("items", with_items="{{ xs }}"))).implicit is False


# --- Refusals: across tasks -----------------------------------------------------------------------

def test_an_unknown_dependency_names_both_tasks() -> None:
    assert refused(tasks(action("a"), action("b", depends_on=["a", "x"]))) == (
        "workflow: task 'b' depends on unknown task 'x'")


def test_a_cycle_is_named_in_data_flow_order() -> None:
    assert refused(tasks(action("a", depends_on=["b"]), action("b", depends_on=["a"]))) == (
        "workflow: tasks a -> b -> a form a cycle")
    # b depends on a, c on b, a on c; d hangs off the cycle and is not part of it.
    three = tasks(action("d", depends_on=["c"]), action("a", depends_on=["c"]), action("b", depends_on=["a"]),
                  action("c", depends_on=["b"]))
    assert refused(three) == "workflow: tasks c -> a -> b -> c form a cycle"


def test_a_task_depending_on_itself_is_a_cycle() -> None:
    assert refused(tasks(action("a"), action("b", depends_on=["a", "b"]))) == "workflow: tasks b -> b form a cycle"


def test_duplicate_names() -> None:
    assert refused(tasks(action("a"), action("b"), action("a"))) == "workflow: task name 'a' is used twice"


def test_where_prefixes_every_message() -> None:
    assert refused(tasks(action("a", depends_on=["x"])), where="actions/deploy.yaml").startswith(
        "actions/deploy.yaml: task 'a' depends on unknown task 'x'")
    assert refused({"tasks": []}, where="action pack.wf").startswith("action pack.wf: tasks: ")


# --- Refusals: one task ---------------------------------------------------------------------------

def test_a_task_needs_exactly_one_of_action_or_inquiry() -> None:
    assert refused(tasks({"name": "a"})) == (
        "workflow: task 'a': needs exactly one of 'action' or 'inquiry', has neither")
    assert refused(tasks({"name": "a", "action": "core.echo", "inquiry": {}})) == (
        "workflow: task 'a': needs exactly one of 'action' or 'inquiry', has both")


@pytest.mark.parametrize(("extra", "what"), [
    ({"with_items": "{{ xs }}"}, "with_items"),
    ({"retry": {"max_attempts": 1}}, "retry"),
    ({"on_failure": "retry"}, "retry"),
    ({"timeout": 30}, "timeout (use inquiry.ttl)"),
    ({"input": {"x": 1}}, "input"),
])
def test_an_inquiry_cannot_fan_out_retry_time_out_or_take_input(extra: dict[str, Any], what: str) -> None:
    assert refused(tasks({"name": "ask", "inquiry": {}, **extra})) == (
        f"workflow: task 'ask': an inquiry task cannot have {what}")


def test_an_inquiry_may_continue() -> None:
    assert parse_workflow(tasks({"name": "ask", "inquiry": {}, "on_failure": "continue"})).tasks[0].on_failure == (
        "continue")


def test_concurrency_needs_with_items() -> None:
    assert refused(tasks(action("a", concurrency=2))) == "workflow: task 'a': 'concurrency' needs 'with_items'"


@pytest.mark.parametrize("bad", [0, -1, "3", True, 1.5, "all"])
def test_concurrency_is_a_positive_integer_or_unlimited(bad: Any) -> None:
    assert refused(tasks(action("a", with_items=[1], concurrency=bad))) == (
        "workflow: task 'a' concurrency: expected an integer >= 1 or 'unlimited'")


@pytest.mark.parametrize("bad", ["items", "parameters.items", 3, {"a": 1}])
def test_with_items_is_a_template_or_a_list(bad: Any) -> None:
    assert refused(tasks(action("a", with_items=bad))).startswith(
        "workflow: task 'a' with_items: expected a template ('{{ parameters.items }}') or a list")


@pytest.mark.parametrize("name", ["parameters", "item", "index", "datastore", "trigger", "execution",
                                  "Workflow", "Finish", "Failed", "Fail"])
def test_reserved_names(name: str) -> None:
    assert refused(tasks(action(name))).startswith(f"workflow: task '{name}': the name is reserved (")


@pytest.mark.parametrize("name", ["1st", "has-dash", "has.dot", "has space", "x" * 65, ""])
def test_task_names_are_identifiers(name: str) -> None:
    assert refused(tasks(action(name))).startswith("workflow: task")
    assert "name: String should" in refused(tasks(action(name)))


def test_names_up_to_64_characters_are_fine() -> None:
    assert parse_workflow(tasks(action("_" + "x" * 63))).tasks[0].name == "_" + "x" * 63


# --- Refusals: templates -------------------------------------------------------------------------

def test_input_template_syntax_names_the_task_and_the_key() -> None:
    message = refused(tasks(action("a"), action("b", input={"message": "{{ a.result.x "})))
    assert re.fullmatch(r"workflow: task 'b' input\.message: template syntax error at line 1: .+", message), message


def test_nested_input_templates_are_checked_too() -> None:
    message = refused(tasks(action("b", input={"deep": {"list": ["ok", "{% if %}"]}})))
    assert message.startswith("workflow: task 'b' input.deep.list[1]: template syntax error at line 1: ")


def test_with_items_template_syntax() -> None:
    assert refused(tasks(action("b", with_items="{{ parameters.items | }}"))).startswith(
        "workflow: task 'b' with_items: template syntax error at line 1: ")
    assert refused(tasks(action("b", with_items=["{{ x"]))).startswith(
        "workflow: task 'b' with_items[0]: template syntax error at line 1: ")


def test_output_template_syntax() -> None:
    assert refused({**tasks(action("a")), "output": {"approved": "{{ a.result. }}"}}).startswith(
        "workflow: output.approved: template syntax error at line 1: ")


def test_inquiry_prompt_template_syntax() -> None:
    assert refused(tasks({"name": "ask", "inquiry": {"prompt": "Ship {{ parameters.env ?"}})).startswith(
        "workflow: task 'ask' inquiry.prompt: template syntax error at line 1: ")


def test_templates_that_parse_are_not_evaluated() -> None:
    parse_workflow(tasks(action("a", input={"x": "{{ nothing.defined.here }}"}, with_items="{{ undefined }}")))


# --- Refusals: shapes (pydantic, as one readable message) ------------------------------------------

def test_unknown_keys_are_typos() -> None:
    assert refused(tasks({"name": "a", "actoin": "core.echo"})) == "workflow: task 'a' actoin: unknown key"
    assert refused({**tasks(action("a")), "versoin": 2}) == "workflow: versoin: unknown key"
    assert refused(tasks(action("a", retry={"max_attempt": 3}))) == "workflow: task 'a' retry.max_attempt: unknown key"
    assert refused(tasks({"name": "a", "inquiry": {"ttl": 5, "role": ["admin"]}})) == (
        "workflow: task 'a' inquiry.role: unknown key")


def test_a_task_without_a_name_is_named_by_its_position() -> None:
    assert refused(tasks(action("a"), {"action": "core.echo"})) == "workflow: tasks[1] name: Field required"


def test_tasks_are_required_and_bounded() -> None:
    assert refused({}) == "workflow: tasks: Field required"
    assert refused({"tasks": []}).startswith("workflow: tasks: List should have at least 1 item")
    many = {"tasks": [action(f"t{i}") for i in range(1001)]}
    assert refused(many).startswith("workflow: tasks: List should have at most 1000 items")
    assert len(parse_workflow({"tasks": [action(f"t{i}") for i in range(1000)]}).tasks) == 1000


def test_not_a_mapping() -> None:
    assert refused(["tasks"]) == "workflow: expected a mapping with 'tasks', got list"
    assert refused({"tasks": "a, b"}).startswith("workflow: tasks: Input should be a valid list")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("retry", {"max_attempts": 101}, "task 'a' retry.max_attempts: Input should be less than or equal to 100"),
    ("retry", {"backoff_multiplier": 0.5},
     "task 'a' retry.backoff_multiplier: Input should be greater than or equal to 1"),
    ("retry", {"on": ["crash"]}, "task 'a' retry.on.0: Input should be 'failure' or 'timeout'"),
    ("timeout", 0, "task 'a' timeout: Input should be greater than 0"),
    ("timeout", "30", "task 'a' timeout: Input should be a valid integer"),
    ("on_failure", "ignore", "task 'a' on_failure: Input should be 'abort', 'continue' or 'retry'"),
    ("action", "echo", "task 'a' action: String should match pattern"),
    ("input", ["not", "a", "map"], "task 'a' input: Input should be a valid dictionary"),
    ("depends_on", ["bad-name"], "task 'a' depends_on.0: String should match pattern"),
])
def test_field_values(field: str, value: Any, message: str) -> None:
    assert refused(tasks(action("a", **{field: value}))).startswith(f"workflow: {message}")


def test_workflow_timeout_and_output_shapes() -> None:
    assert refused({**tasks(action("a")), "timeout": -5}).startswith(
        "workflow: timeout: Input should be greater than 0")
    assert refused({**tasks(action("a")), "output": "{{ a.result }}"}).startswith(
        "workflow: output: Input should be a valid dictionary")


def test_several_problems_are_listed_together() -> None:
    message = refused(tasks(action("a", timeout=0), action("b", on_failure="skip")))
    assert message.startswith("workflow: task 'a' timeout: ")
    assert "; task 'b' on_failure: " in message


# --- Refusals: inquiry details -------------------------------------------------------------------

@pytest.mark.parametrize(("inquiry", "message"), [
    ({"ttl": 0}, "task 'ask' inquiry.ttl: Input should be greater than or equal to 1"),
    ({"ttl": 604801}, "task 'ask' inquiry.ttl: Input should be less than or equal to 604800"),
    ({"roles": ["root"]}, "task 'ask' inquiry.roles.0: Input should be 'admin', 'editor', 'executor' or 'viewer'"),
    ({"prompt": ""}, "task 'ask' inquiry.prompt: String should have at least 1 character"),
    ({"schema": {"type": "objekt"}}, "task 'ask' inquiry.schema: not a valid JSON Schema: "),
    ({"default": {"approved": "yes"}},
     "task 'ask' inquiry.default: does not match inquiry.schema: 'yes' is not of type"),
])
def test_inquiry_fields(inquiry: dict[str, Any], message: str) -> None:
    assert refused(tasks({"name": "ask", "inquiry": inquiry})).startswith(f"workflow: {message}")


def test_an_inquiry_with_a_valid_default_and_roles() -> None:
    inquiry = {"default": {"approved": False}, "roles": ["admin", "executor"], "ttl": 604800}
    wf = parse_workflow(tasks({"name": "ask", "inquiry": inquiry}))
    assert wf.tasks[0].inquiry is not None
    assert wf.tasks[0].inquiry.roles == ["admin", "executor"]


def test_parse_returns_a_workflow() -> None:
    assert isinstance(parse_workflow(EXAMPLE), Workflow)
