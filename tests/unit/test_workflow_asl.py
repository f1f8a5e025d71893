"""The ASL compiler (core.workflow.asl): one golden test per construct, and properties of every output.

The goldens are written from the contract the runtime is built against
(message bodies, state names, ResultPath null, the Catch/Retry shapes), not
from the compiler's output, so a change of shape fails here first.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from chalicelib.core.errors import ValidationFailed
from chalicelib.core.workflow import (
    QUEUE_PLACEHOLDER,
    asl_digest,
    compile_asl,
    implicit_with_items,
    parse_workflow,
    state_names,
    substitute,
)

Q = "${WorkflowTasksQueueUrl}"
WAIT = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
IDS = {"tenant_id.$": "$.tenant_id", "execution_id.$": "$.execution_id"}
CONTINUED = ["Attune.TaskFailed", "Attune.InquiryExpired", "States.Timeout"]


def task_state(name: str, **rest: Any) -> dict[str, Any]:
    """The contract's state for a task run once (action or inquiry)."""
    body = {"kind": "task", **IDS, "task": name, "task_token.$": "$$.Task.Token"}
    return {"Type": "Task", "Resource": WAIT, "Parameters": {"QueueUrl": Q, "MessageBody": body},
            "ResultPath": None, **rest}


def items_state(name: str, **rest: Any) -> dict[str, Any]:
    body = {"kind": "items", **IDS, "task": name, "task_token.$": "$$.Task.Token"}
    return {"Type": "Task", "Resource": WAIT, "Parameters": {"QueueUrl": Q, "MessageBody": body},
            "ResultPath": f"$.items_{name}", "Next": name, **rest}


def item_state(name: str, **rest: Any) -> dict[str, Any]:
    body = {"kind": "task", **IDS, "task": name, "index.$": "$.index", "task_token.$": "$$.Task.Token"}
    return {"Type": "Task", "Resource": WAIT, "Parameters": {"QueueUrl": Q, "MessageBody": body},
            "ResultPath": None, **rest}


def map_state(name: str, concurrency: int, item_states: dict[str, Any], **rest: Any) -> dict[str, Any]:
    return {"Type": "Map", "ItemsPath": f"$.items_{name}.indices", "MaxConcurrency": concurrency,
            "ItemSelector": {**IDS, "index.$": "$$.Map.Item.Value"},
            "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": f"{name}.item", "States": item_states},
            "ResultPath": None, **rest}


def compiled(*tasks: dict[str, Any]) -> dict[str, Any]:
    return compile_asl(parse_workflow({"tasks": list(tasks)}))


def body(asl: dict[str, Any]) -> dict[str, Any]:
    """The one branch of the top-level `Workflow` Parallel."""
    (branch,) = asl["States"]["Workflow"]["Branches"]
    result: dict[str, Any] = branch
    return result


def action(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "action": "core.echo", **fields}


# --- Goldens -------------------------------------------------------------------------------------

def test_single_task_golden() -> None:
    assert compiled(action("only")) == {
        "StartAt": "Workflow",
        "States": {
            "Workflow": {
                "Type": "Parallel",
                "Branches": [{"StartAt": "only", "States": {"only": task_state("only", End=True)}}],
                "ResultPath": None,
                "Next": "Finish",
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed"}],
            },
            "Finish": {
                "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage",
                "Parameters": {"QueueUrl": Q, "MessageBody": {"kind": "finish", **IDS}},
                "End": True,
            },
            "Failed": {
                "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage",
                "Parameters": {"QueueUrl": Q, "MessageBody": {"kind": "fail", **IDS, "error.$": "$.error.Error",
                                                              "cause.$": "$.error.Cause"}},
                "Next": "Fail",
            },
            "Fail": {"Type": "Fail", "Error": "Attune.WorkflowFailed"},
        },
    }


def test_chain_golden() -> None:
    asl = compiled(action("a"), action("b", depends_on=["a"]), action("c", depends_on=["b"]))
    assert body(asl) == {"StartAt": "a", "States": {
        "a": task_state("a", Next="b"),
        "b": task_state("b", Next="c"),
        "c": task_state("c", End=True),
    }}


def test_chain_follows_dependencies_not_definition_order() -> None:
    asl = compiled(action("c", depends_on=["b"]), action("a"), action("b", depends_on=["a"]))
    assert body(asl)["StartAt"] == "a"
    assert body(asl)["States"]["a"]["Next"] == "b" and body(asl)["States"]["b"]["Next"] == "c"


def test_parallel_level_golden() -> None:
    asl = compiled(action("a"), action("b"), action("c", depends_on=["a", "b"]))
    assert body(asl) == {"StartAt": "parallel.1", "States": {
        "parallel.1": {"Type": "Parallel", "Branches": [
            {"StartAt": "a", "States": {"a": task_state("a", End=True)}},
            {"StartAt": "b", "States": {"b": task_state("b", End=True)}},
        ], "ResultPath": None, "Next": "c"},
        "c": task_state("c", End=True),
    }}


def test_independent_tasks_alone_are_one_parallel() -> None:
    asl = compiled(action("a"), action("b"), action("c"))
    (only,) = body(asl)["States"].values()
    assert only["Type"] == "Parallel"
    assert [b["StartAt"] for b in only["Branches"]] == ["a", "b", "c"]
    assert only["End"] is True


def test_with_items_and_concurrency_golden() -> None:
    asl = compiled(action("each", with_items="{{ parameters.items }}", concurrency=3))
    assert body(asl) == {"StartAt": "each.items", "States": {
        "each.items": items_state("each"),
        "each": map_state("each", 3, {"each.item": item_state("each", End=True)}, End=True),
    }}


def test_with_items_unlimited_is_max_concurrency_zero() -> None:
    for concurrency in ({}, {"concurrency": "unlimited"}):
        asl = compiled(action("each", with_items=[1, 2], **concurrency))
        assert body(asl)["States"]["each"]["MaxConcurrency"] == 0


def test_retry_golden() -> None:
    retry = {"max_attempts": 3, "delay_seconds": 2, "backoff_multiplier": 2.0, "max_delay_seconds": 60}
    asl = compiled(action("a", retry=retry))
    assert body(asl)["States"]["a"] == task_state("a", End=True, Retry=[{
        "ErrorEquals": ["Attune.TaskFailed", "States.Timeout"], "IntervalSeconds": 2, "BackoffRate": 2.0,
        "MaxAttempts": 3, "MaxDelaySeconds": 60}])


def test_retry_rounds_up_and_never_waits_less_than_a_second() -> None:
    asl = compiled(action("a", retry={"delay_seconds": 0.2, "max_delay_seconds": 0, "backoff_multiplier": 1}),
                   action("b", retry={"delay_seconds": 2.5, "max_delay_seconds": 7.1, "backoff_multiplier": 3}))
    (a_retry,) = body(asl)["States"]["parallel.1"]["Branches"][0]["States"]["a"]["Retry"]
    (b_retry,) = body(asl)["States"]["parallel.1"]["Branches"][1]["States"]["b"]["Retry"]
    assert (a_retry["IntervalSeconds"], a_retry["MaxDelaySeconds"], a_retry["BackoffRate"]) == (1, 1, 1.0)
    assert (b_retry["IntervalSeconds"], b_retry["MaxDelaySeconds"], b_retry["BackoffRate"]) == (3, 8, 3.0)
    assert isinstance(a_retry["BackoffRate"], float)


def test_on_failure_retry_without_a_policy_uses_the_defaults_then_aborts() -> None:
    state = body(compiled(action("a", on_failure="retry")))["States"]["a"]
    assert state["Retry"] == [{"ErrorEquals": ["Attune.TaskFailed", "States.Timeout"], "IntervalSeconds": 1,
                               "BackoffRate": 2.0, "MaxAttempts": 3, "MaxDelaySeconds": 300}]
    assert "Catch" not in state


def test_retry_on_chooses_the_errors() -> None:
    only_timeouts = body(compiled(action("a", retry={"on": ["timeout"]}, timeout=5)))["States"]["a"]
    assert only_timeouts["Retry"][0]["ErrorEquals"] == ["States.Timeout"]
    only_failures = body(compiled(action("a", retry={"on": ["failure"]})))["States"]["a"]
    assert only_failures["Retry"][0]["ErrorEquals"] == ["Attune.TaskFailed"]


def test_zero_retries_compile_to_no_retry() -> None:
    assert "Retry" not in body(compiled(action("a", retry={"max_attempts": 0})))["States"]["a"]


def test_with_items_retry_is_on_the_item() -> None:
    asl = compiled(action("each", with_items="{{ xs }}", retry={"max_attempts": 2}))
    states = body(asl)["States"]
    assert "Retry" not in states["each.items"] and "Retry" not in states["each"]
    assert states["each"]["ItemProcessor"]["States"]["each.item"]["Retry"][0]["MaxAttempts"] == 2


def test_continue_mid_chain_catches_to_the_next_task() -> None:
    asl = compiled(action("a"), action("b", depends_on=["a"], on_failure="continue"), action("c", depends_on=["b"]))
    assert body(asl)["States"] == {
        "a": task_state("a", Next="b"),
        "b": task_state("b", Next="c", Catch=[{"ErrorEquals": CONTINUED, "ResultPath": None, "Next": "c"}]),
        "c": task_state("c", End=True),
    }


def test_continue_last_in_its_branch_catches_to_a_pass_that_ends_it() -> None:
    asl = compiled(action("a", on_failure="continue"), action("b"), action("c", depends_on=["a", "b"]))
    first = body(asl)["States"]["parallel.1"]["Branches"][0]
    assert first == {"StartAt": "a", "States": {
        "a": task_state("a", End=True, Catch=[{"ErrorEquals": CONTINUED, "ResultPath": None, "Next": "a.continue"}]),
        "a.continue": {"Type": "Pass", "End": True},
    }}


def test_continue_on_the_last_task_of_the_workflow() -> None:
    states = body(compiled(action("a"), action("z", depends_on=["a"], on_failure="continue")))["States"]
    assert states["z"]["Catch"][0]["Next"] == "z.continue"
    assert states["z.continue"] == {"Type": "Pass", "End": True}


def test_continue_on_with_items_catches_each_item_inside_the_map() -> None:
    asl = compiled(action("each", with_items="{{ xs }}", on_failure="continue"), action("after", depends_on=["each"]))
    assert body(asl) == {"StartAt": "each.items", "States": {
        # items that cannot be listed skip the task
        "each.items": items_state("each", Catch=[{"ErrorEquals": ["Attune.TaskFailed"], "ResultPath": None,
                                                  "Next": "after"}]),
        "each": map_state("each", 0, {
            "each.item": item_state("each", End=True, Catch=[{"ErrorEquals": CONTINUED, "ResultPath": None,
                                                              "Next": "each.item.continue"}]),
            "each.item.continue": {"Type": "Pass", "End": True},
        }, Next="after"),
        "after": task_state("after", End=True),
    }}


def test_continue_on_with_items_last_in_branch() -> None:
    states = body(compiled(action("each", with_items="{{ xs }}", on_failure="continue")))["States"]
    assert states["each.items"]["Catch"][0]["Next"] == "each.continue"
    assert states["each.continue"] == {"Type": "Pass", "End": True}
    assert states["each"]["End"] is True


def test_abort_has_no_catch() -> None:
    states = body(compiled(action("a"), action("b", depends_on=["a"], on_failure="abort")))["States"]
    assert "Catch" not in states["a"] and "Catch" not in states["b"]


def test_timeout_golden() -> None:
    states = body(compiled(action("slow", timeout=30)))["States"]
    assert states == {
        "slow": task_state("slow", End=True, TimeoutSeconds=30, Catch=[
            {"ErrorEquals": ["States.Timeout"], "ResultPath": None, "Next": "slow.timeout"}]),
        # emulators crash on a States.* error leaving a branch; AWS and they agree on this one
        "slow.timeout": {"Type": "Fail", "Error": "Attune.TaskTimedOut",
                         "Cause": '{"task": "slow", "error": "timed out after 30 s"}'},
    }


def test_timeout_with_retry_retries_before_it_fails() -> None:
    state = body(compiled(action("slow", timeout=5, retry={"max_attempts": 1})))["States"]["slow"]
    assert state["Retry"][0]["ErrorEquals"] == ["Attune.TaskFailed", "States.Timeout"]
    assert state["Catch"] == [{"ErrorEquals": ["States.Timeout"], "ResultPath": None, "Next": "slow.timeout"}]


def test_timeout_with_continue_is_caught_by_the_continue() -> None:
    states = body(compiled(action("slow", timeout=5, on_failure="continue")))["States"]
    assert states["slow"]["TimeoutSeconds"] == 5
    assert states["slow"]["Catch"] == [{"ErrorEquals": CONTINUED, "ResultPath": None, "Next": "slow.continue"}]
    assert "slow.timeout" not in states


def test_timeout_of_with_items_is_on_the_item() -> None:
    states = body(compiled(action("each", with_items="{{ xs }}", timeout=9)))["States"]
    assert "TimeoutSeconds" not in states["each.items"] and "TimeoutSeconds" not in states["each"]
    inner = states["each"]["ItemProcessor"]["States"]
    assert inner["each.item"]["TimeoutSeconds"] == 9
    assert inner["each.item"]["Catch"][0]["Next"] == "each.item.timeout"
    assert inner["each.item.timeout"] == {"Type": "Fail", "Error": "Attune.TaskTimedOut",
                                          "Cause": '{"task": "each", "error": "timed out after 9 s"}'}


def test_inquiry_golden() -> None:
    asl = compiled(action("build"), {"name": "approve", "depends_on": ["build"], "inquiry": {"ttl": 300}})
    assert body(asl)["States"] == {"build": task_state("build", Next="approve"),
                                   "approve": task_state("approve", End=True)}


def test_inquiry_continue_catches_expiry() -> None:
    asl = compiled({"name": "approve", "inquiry": {}, "on_failure": "continue"}, action("go", depends_on=["approve"]))
    assert body(asl)["States"]["approve"] == task_state("approve", Next="go", Catch=[
        {"ErrorEquals": CONTINUED, "ResultPath": None, "Next": "go"}])


def test_nested_depends_diamond_golden() -> None:
    asl = compiled(action("a"), action("b", depends_on=["a"]), action("c", depends_on=["a"]),
                   action("d", depends_on=["b", "c"]))
    assert body(asl) == {"StartAt": "a", "States": {
        "a": task_state("a", Next="parallel.1"),
        "parallel.1": {"Type": "Parallel", "Branches": [
            {"StartAt": "b", "States": {"b": task_state("b", End=True)}},
            {"StartAt": "c", "States": {"c": task_state("c", End=True)}},
        ], "ResultPath": None, "Next": "d"},
        "d": task_state("d", End=True),
    }}


def test_nested_depends_independent_chains_do_not_wait_for_each_other() -> None:
    # a -> c and b -> d: levels would make c wait for b; here each chain is its own branch.
    asl = compiled(action("a"), action("b"), action("c", depends_on=["a"]), action("d", depends_on=["b"]))
    assert body(asl) == {"StartAt": "parallel.1", "States": {
        "parallel.1": {"Type": "Parallel", "Branches": [
            {"StartAt": "a", "States": {"a": task_state("a", Next="c"), "c": task_state("c", End=True)}},
            {"StartAt": "b", "States": {"b": task_state("b", Next="d"), "d": task_state("d", End=True)}},
        ], "ResultPath": None, "End": True},
    }}


def test_nested_depends_a_join_after_a_branch_nests_parallels() -> None:
    # a -> b, then d needs b and c (c alone): Parallel([a -> b], [c]) then d.
    asl = compiled(action("a"), action("b", depends_on=["a"]), action("c"), action("d", depends_on=["b", "c"]))
    states = body(asl)["States"]
    assert body(asl)["StartAt"] == "parallel.1"
    assert [sorted(b["States"]) for b in states["parallel.1"]["Branches"]] == [["a", "b"], ["c"]]
    assert states["parallel.1"]["Next"] == "d"


def test_nested_depends_that_are_not_series_parallel_fall_back_to_levels() -> None:
    # An N: x needs a and b, y needs only b. No nesting can avoid some waiting; levels are correct.
    asl = compiled(action("a"), action("b"), action("x", depends_on=["a", "b"]), action("y", depends_on=["b"]))
    states = body(asl)["States"]
    assert [b["StartAt"] for b in states["parallel.1"]["Branches"]] == ["a", "b"]
    assert states["parallel.1"]["Next"] == "parallel.2"
    assert [b["StartAt"] for b in states["parallel.2"]["Branches"]] == ["x", "y"]


def test_implicit_with_items_compiles_to_one_map() -> None:
    asl = compile_asl(implicit_with_items("pack.process", "{{ items }}", concurrency=2))
    assert body(asl) == {"StartAt": "items.items", "States": {
        "items.items": items_state("items"),
        "items": map_state("items", 2, {"items.item": item_state("items", End=True)}, End=True),
    }}


# --- Properties of every output ------------------------------------------------------------------

def everything() -> dict[str, Any]:
    """A workflow using every construct at once."""
    return {"tasks": [
        action("a"), action("b", retry={"max_attempts": 2}, timeout=5),
        action("c", depends_on=["a"], with_items="{{ xs }}", concurrency=2, on_failure="continue", timeout=3,
               retry={"max_attempts": 1}),
        {"name": "ask", "depends_on": ["b", "c"], "inquiry": {}, "on_failure": "continue"},
        action("z", depends_on=["ask"], on_failure="retry"),
    ], "output": {"x": "{{ z.result }}"}, "timeout": 600}


def walk_states(states: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, state in states.items():
        found.append((name, state))
        for branch in state.get("Branches", []):
            found.extend(walk_states(branch["States"]))
        if "ItemProcessor" in state:
            found.extend(walk_states(state["ItemProcessor"]["States"]))
    return found


def test_canceled_is_never_caught_or_retried() -> None:
    asl = compile_asl(parse_workflow(everything()))
    for name, state in walk_states(asl["States"]):
        if name == "Workflow":
            continue  # the top level reports every failure, cancellation included
        for rule in state.get("Retry", []) + state.get("Catch", []):
            assert "Attune.Canceled" not in rule["ErrorEquals"] and "States.ALL" not in rule["ErrorEquals"], name


def test_state_carries_ids_only() -> None:
    asl = compile_asl(parse_workflow(everything()))
    for name, state in walk_states(asl["States"]):
        if state["Type"] in ("Task", "Parallel", "Map") and name not in ("Finish", "Failed"):
            expected = f"$.items_{name.removesuffix('.items')}" if name.endswith(".items") else None
            assert state["ResultPath"] == expected, name
        assert not {"Assign", "QueryLanguage", "Arguments", "Output", "Variables"} & set(state), name
    assert "TimeoutSeconds" not in asl and "QueryLanguage" not in asl


def test_inquiries_get_no_timeout() -> None:
    asl = compile_asl(parse_workflow(everything()))
    assert "TimeoutSeconds" not in dict(walk_states(asl["States"]))["ask"]


def test_every_message_names_a_task_of_the_workflow() -> None:
    wf = parse_workflow(everything())
    for _, state in walk_states(compile_asl(wf)["States"]):
        message = state.get("Parameters", {}).get("MessageBody")
        if message and message["kind"] in ("task", "items"):
            assert wf.task(message["task"])
            assert message["task_token.$"] == "$$.Task.Token"


def test_the_queue_is_only_the_placeholder() -> None:
    text = json.dumps(compile_asl(parse_workflow(everything())))
    assert QUEUE_PLACEHOLDER == Q
    assert text.count('"QueueUrl"') == text.count(json.dumps(Q)) > 0


def test_output_is_deterministic_and_the_digest_follows_content() -> None:
    doc = everything()
    first, second = compile_asl(parse_workflow(doc)), compile_asl(parse_workflow(json.loads(json.dumps(doc))))
    assert first == second
    assert json.dumps(first) == json.dumps(second)  # same key order too
    assert asl_digest(first) == asl_digest(second)
    assert len(asl_digest(first)) == 64 and int(asl_digest(first), 16) >= 0
    reordered = json.loads(json.dumps(first, sort_keys=True))
    assert asl_digest(reordered) == asl_digest(first)
    doc["tasks"][0]["timeout"] = 7
    assert asl_digest(compile_asl(parse_workflow(doc))) != asl_digest(first)


def test_the_digest_ignores_what_is_not_compiled() -> None:
    plain = parse_workflow({"tasks": [action("a", input={"x": 1})]})
    other = parse_workflow({"tasks": [action("a", input={"x": 2})], "output": {"y": "{{ a.result }}"}, "timeout": 9})
    assert asl_digest(compile_asl(plain)) == asl_digest(compile_asl(other))


def test_substitute_puts_the_queue_url_everywhere_and_nowhere_else() -> None:
    asl = compile_asl(parse_workflow(everything()))
    url = 'https://sqs.us-east-1.amazonaws.com/123456789012/attune-workflow-tasks"\\'
    text = substitute(asl, url)
    assert "${" not in text
    parsed = json.loads(text)
    urls = [s["Parameters"]["QueueUrl"] for _, s in walk_states(parsed["States"]) if "Parameters" in s]
    assert urls and all(u == url for u in urls)
    assert asl["States"]["Finish"]["Parameters"]["QueueUrl"] == Q  # the compiled dict is left alone
    without = json.loads(text.replace(json.dumps(url), json.dumps(Q)))
    assert without == asl


def test_state_names_are_unique_machine_wide_and_short_enough() -> None:
    long = "t" * 64
    asl = compiled(action(long, with_items="{{ xs }}", on_failure="continue", timeout=3),
                   action(long[:-1] + "u", with_items="{{ xs }}", timeout=3),
                   action("x", depends_on=[long], on_failure="continue"))
    names = state_names(asl)
    assert len(names) == len(set(names))
    assert max(len(n) for n in names) <= 80  # AWS's limit on a state name


def test_a_definition_over_the_size_limit_is_refused() -> None:
    name = "t" * 60
    big = [action(f"{name}{i:03d}", with_items="{{ x }}", timeout=5, retry={}, on_failure="continue",
                  **({"depends_on": [f"{name}{i - 1:03d}"]} if i else {})) for i in range(1000)]
    with pytest.raises(ValidationFailed, match=r"^workflow: compiles to ~\d+ bytes of ASL, over Step Functions'"):
        compile_asl(parse_workflow({"tasks": big}))


def test_a_thousand_task_chain_compiles() -> None:
    chain = [action(f"t{i}", **({"depends_on": [f"t{i - 1}"]} if i else {})) for i in range(1000)]
    asl = compile_asl(parse_workflow({"tasks": chain}))
    assert len(body(asl)["States"]) == 1000
    assert body(asl)["States"]["t999"]["End"] is True


# --- Ordering, for any DAG -----------------------------------------------------------------------

def finished_before(asl: dict[str, Any]) -> dict[str, set[str]]:
    """For each task, the tasks the state machine guarantees have finished when its (first) message is sent."""
    before: dict[str, set[str]] = {}

    def run(branch: dict[str, Any], done: set[str]) -> set[str]:
        done = set(done)
        name: str | None = branch["StartAt"]
        while name is not None:
            state = branch["States"][name]
            if state["Type"] == "Parallel":
                results = [run(b, done) for b in state["Branches"]]
                done = done.union(*results)
            elif state["Type"] == "Map":
                run(state["ItemProcessor"], done)
                done.add(name)
            elif state["Type"] == "Task" and state["Parameters"]["MessageBody"]["kind"] == "task":
                before.setdefault(state["Parameters"]["MessageBody"]["task"], set(done))
                done.add(state["Parameters"]["MessageBody"]["task"])
            elif state["Type"] == "Fail":
                break
            name = state.get("Next")
        return done

    run(body(asl), set())
    return before


def ancestors(doc: dict[str, Any]) -> dict[str, set[str]]:
    deps = {t["name"]: set(t.get("depends_on", [])) for t in doc["tasks"]}
    found: dict[str, set[str]] = {}

    def of(name: str) -> set[str]:
        if name not in found:
            found[name] = set().union(*({d} | of(d) for d in deps[name])) if deps[name] else set()
        return found[name]

    return {name: of(name) for name in deps}


def random_dag(seed: int, size: int) -> dict[str, Any]:
    rng = random.Random(seed)
    tasks = []
    for i in range(size):
        earlier = [f"t{j}" for j in range(i)]
        deps = rng.sample(earlier, k=min(i, rng.choice([0, 0, 1, 1, 1, 2, 3])))
        fields: dict[str, Any] = {"with_items": "{{ xs }}"} if rng.random() < 0.2 else {}
        tasks.append(action(f"t{i}", depends_on=deps, **fields))
    rng.shuffle(tasks)  # definition order is not dependency order
    return {"tasks": tasks}


@pytest.mark.parametrize("seed", range(40))
def test_no_task_runs_before_its_dependencies(seed: int) -> None:
    doc = random_dag(seed, size=3 + seed % 25)
    asl = compile_asl(parse_workflow(doc))
    before, needed = finished_before(asl), ancestors(doc)
    assert set(before) == set(needed)  # every task runs, each once in the flow
    for name, deps in needed.items():
        assert deps <= before[name], (name, deps - before[name])
    names = state_names(asl)
    assert len(names) == len(set(names))


@pytest.mark.parametrize("doc", [
    {"tasks": [action("a"), action("b", depends_on=["a"]), action("c", depends_on=["a"]), action("d", depends_on=["b"]),
               action("e", depends_on=["c"]), action("f", depends_on=["d", "e"]), action("g")]},
    {"tasks": [action("a"), action("b"), action("c", depends_on=["a"]), action("d", depends_on=["c"]),
               action("e", depends_on=["b"]), action("f", depends_on=["d", "e"]), action("h", depends_on=["f"])]},
], ids=["nested-diamond", "two-chains-join"])
def test_a_series_parallel_dag_waits_for_exactly_its_ancestors(doc: dict[str, Any]) -> None:
    before, needed = finished_before(compile_asl(parse_workflow(doc))), ancestors(doc)
    assert before == needed


def test_deep_or_tangled_dags_still_compile_in_levels() -> None:
    # A ladder (y_i needs x_{i-1} and y_{i-1}) is not series-parallel at any depth; nested diamonds nest deep.
    ladder = [action("x0"), action("y0")]
    for i in range(1, 400):
        ladder += [action(f"x{i}", depends_on=[f"x{i - 1}"]), action(f"y{i}", depends_on=[f"y{i - 1}", f"x{i - 1}"])]
    diamonds = [action("s0")]
    for i in range(1, 300):
        diamonds += [action(f"l{i}", depends_on=[f"l{i - 1}" if i > 1 else "s0"]),
                     action(f"r{i}", depends_on=[f"l{i - 1}" if i > 1 else "s0"])]
    for tasks in (ladder, diamonds):
        doc = {"tasks": tasks}
        asl = compile_asl(parse_workflow(doc))
        before, needed = finished_before(asl), ancestors(doc)
        assert all(needed[n] <= before[n] for n in needed)
        json.dumps(asl)  # no recursion trouble
        names = state_names(asl)
        assert len(names) == len(set(names))
