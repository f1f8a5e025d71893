"""Every construct `compile_asl` emits really runs on moto's Step Functions, answered like the runtime would.

GIVEN a workflow compiled and created as a state machine on moto's server
(execution on), WHEN an execution starts and a poller answers its queue's
task messages the way the runtime does (`send_task_success` / `_failure`),
THEN the messages that arrive (which tasks, in what order, how many items,
how many attempts, the `finish` or `fail` message) and the execution's
final status are the workflow's semantics.

moto 5.2.5 gets two things wrong that these semantics need, which the
project's moto child mends (`chalicelib/local/moto_patches.py
fix_step_functions_callbacks`, applied in `moto_server._serve`); this module
runs that same child, so it proves the mend:
- a `Retry` of a `waitForTaskToken` task re-sends the message with the SAME
  token, and the token's first outcome stays recorded, so every retry fails
  at once with the first failure (or timeout) without waiting for an answer;
- `send_task_failure` drops `cause` in server mode (the `fail` message's
  `cause` would always be "").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.aws.clients import client, reset_clients
from chalicelib.config import settings
from chalicelib.core.workflow import (
    CANCELED,
    INQUIRY_EXPIRED,
    TASK_FAILED,
    TASK_TIMED_OUT,
    WORKFLOW_FAILED,
    Workflow,
    compile_asl,
    implicit_with_items,
    parse_workflow,
    substitute,
)
from chalicelib.local import moto_server as moto
from tests.integration.conftest_aws import eventually

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ROLE_ARN = "arn:aws:iam::123456789012:role/attune-workflows"
IDS = {"tenant_id": 7, "execution_id": 4242}
# What a policy tells the poller to do with one message: ("ok", output) or ("fail", error, cause);
# None defers the message until the next arrival (or forever: a task that never answers).
Answer = tuple[Any, ...] | None
Policy = Callable[[dict[str, Any], "Runtime"], Answer]


def ok(body: dict[str, Any], runtime: Runtime) -> Answer:
    """The default: three items for a with_items task, success for everything else."""
    return ("ok", {"indices": [0, 1, 2]}) if body["kind"] == "items" else ("ok", {})


class Runtime:
    """A stand-in for the workflow runtime: receives the task messages and answers their tokens."""

    def __init__(self, queue_url: str, policies: dict[str, Policy] | None = None) -> None:
        self.queue_url = queue_url
        self.sqs, self.sfn = client("sqs"), client("stepfunctions")
        self.policies = policies or {}
        self.messages: list[dict[str, Any]] = []  # every body, token removed, in arrival order
        self.answered: list[dict[str, Any]] = []  # bodies in the order their tokens were answered
        self.events: list[tuple[str, str]] = []  # ("received" | "answered", task) in the order they happened
        self.deferred: list[tuple[str, dict[str, Any]]] = []
        self.max_in_flight: dict[str, int] = {}
        self.refused: list[tuple[dict[str, Any], str]] = []  # answers Step Functions no longer wanted
        self.execution_error: str | None = None  # the execution's own error, once it ended
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Runtime:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()  # not joined: the thread ends after its current long poll

    def _loop(self) -> None:
        sqs = self.sqs
        while not self.stopping.is_set():
            try:
                got = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            except (BotoCoreError, ClientError):
                if self.stopping.is_set():
                    return  # the server went away after this runtime's last run
                raise
            for message in got.get("Messages", []):
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
                body = json.loads(message["Body"])
                token = body.pop("task_token", None)
                with self.lock:
                    self.messages.append(body)
                    self.events.append(("received", body.get("task", body["kind"])))
                    if token is not None:
                        self.deferred.append((token, body))
                        task = body["task"]
                        self.max_in_flight[task] = max(self.max_in_flight.get(task, 0), self.in_flight(task))
            self._settle()

    def _settle(self) -> None:
        """Answer every deferred message its policy now has an answer for, until none has."""
        progress = True
        while progress:
            progress = False
            for token, body in list(self.deferred):
                policy = self.policies.get(body["task"], ok)
                answer = policy(body, self)
                if answer is None:
                    continue
                with self.lock:
                    self.deferred.remove((token, body))
                    self.answered.append(body)
                    self.events.append(("answered", body["task"]))
                try:
                    if answer[0] == "ok":
                        self.sfn.send_task_success(taskToken=token, output=json.dumps(answer[1]))
                    else:
                        self.sfn.send_task_failure(taskToken=token, error=answer[1], cause=answer[2])
                except ClientError as exc:  # the token's branch was stopped meanwhile (a sibling failed)
                    self.refused.append((body, exc.response["Error"]["Code"]))
                progress = True

    def in_flight(self, task: str) -> int:
        """Messages of `task`'s work (not its items request) received and not answered yet."""
        return sum(1 for _, body in self.deferred if body["task"] == task and body["kind"] == "task")

    def work(self, task: str | None = None) -> list[dict[str, Any]]:
        """The `task` messages received (of one task, or all), in arrival order."""
        with self.lock:
            return [m for m in self.messages if m["kind"] == "task" and (task is None or m["task"] == task)]

    def tasks(self) -> list[str]:
        """The task names of the work messages, in arrival order."""
        return [m["task"] for m in self.work()]

    def when(self, event: str, task: str) -> int:
        """Where the first `event` of `task` happened in the sequence of all events."""
        with self.lock:
            return self.events.index((event, task))

    def ending(self) -> dict[str, Any] | None:
        """The `finish` or `fail` message, once it has arrived."""
        with self.lock:
            return next((m for m in self.messages if m["kind"] in ("finish", "fail")), None)


@pytest.fixture(scope="module")
def fixed_moto() -> Iterator[str]:
    """moto's server exactly as `chalicelib.local.moto_server` runs it (its Step Functions mends included); its URL."""
    port = moto.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["MOTO_PORT"] = str(port)
    process = subprocess.Popen([sys.executable, "-m", "chalicelib.local.moto_server", "--port", str(port),
                                "--parent", str(os.getpid())],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    server = moto.MotoServer(port=port, process=process)

    def answers() -> bool:
        assert process.poll() is None, f"moto exited with {process.returncode}"
        try:
            with urllib.request.urlopen(f"{server.url}/moto-api/config", timeout=2):  # noqa: S310
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    try:
        eventually(answers, timeout=30, message="moto to answer")
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def aws(fixed_moto: str) -> Iterator[None]:
    """`chalicelib.aws.clients` pointed at the fixed moto, for the whole module."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", fixed_moto)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        settings.cache_clear()
        reset_clients()
        yield
    settings.cache_clear()
    reset_clients()


class Execution:
    """One workflow started on moto (its own queue and state machine) with a Runtime answering it."""

    def __init__(self, workflow: dict[str, Any] | Workflow, policies: dict[str, Policy], timeout: float = 10.0) -> None:
        wf = workflow if isinstance(workflow, Workflow) else parse_workflow(workflow)
        queue: str = client("sqs").create_queue(QueueName=f"workflow-tasks-{uuid.uuid4().hex}")["QueueUrl"]
        self.sfn = client("stepfunctions")
        arn = self.sfn.create_state_machine(name=f"wf-{uuid.uuid4().hex}", roleArn=ROLE_ARN,
                                            definition=substitute(compile_asl(wf), queue))["stateMachineArn"]
        self.runtime = Runtime(queue, policies).__enter__()
        self.arn = self.sfn.start_execution(stateMachineArn=arn, name=uuid.uuid4().hex,
                                            input=json.dumps(IDS))["executionArn"]
        self.timeout = timeout
        self.status: str | None = None

    def result(self) -> tuple[str, Runtime]:
        """Wait (with a deadline) for the end and for its finish/fail message; the status and the runtime."""
        if self.status is None:
            def finished() -> dict[str, Any] | None:
                described: dict[str, Any] = self.sfn.describe_execution(executionArn=self.arn)
                return None if described["status"] == "RUNNING" else described

            described = eventually(finished, timeout=self.timeout, message="the execution to end")
            self.runtime.execution_error = described.get("error")
            eventually(self.runtime.ending, timeout=5, message="the finish or fail message")
            self.runtime.__exit__()
            self.status = described["status"]
        return self.status, self.runtime


Run = Callable[..., tuple[str, Runtime]]


@pytest.fixture
def run(aws: None) -> Iterator[Run]:
    """Run a workflow to its end: `run(doc, timeout=..., task_name=policy, ...)` -> (status, runtime)."""
    started: list[Execution] = []

    def run_workflow(workflow: dict[str, Any] | Workflow, timeout: float = 10.0,
                     **policies: Policy) -> tuple[str, Runtime]:
        started.append(Execution(workflow, policies, timeout))
        return started[-1].result()

    yield run_workflow
    for execution in started:
        execution.runtime.__exit__()


def task(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "action": "core.echo", **fields}


def fail(error: str = TASK_FAILED, cause: str = "boom") -> Policy:
    return lambda body, runtime: ("fail", error, cause)


def fail_first(n: int) -> Policy:
    """Fail the first `n` attempts of a task (or of each item), then succeed."""
    def policy(body: dict[str, Any], runtime: Runtime) -> Answer:
        attempts = [m for m in runtime.work(body["task"]) if m.get("index") == body.get("index")]
        return ("fail", TASK_FAILED, f"attempt {len(attempts)}") if len(attempts) <= n else ("ok", {})
    return policy


def never(body: dict[str, Any], runtime: Runtime) -> Answer:
    return None


def assert_succeeded(status: str, runtime: Runtime) -> None:
    assert status == "SUCCEEDED"
    assert runtime.ending() == {"kind": "finish", **IDS}


def assert_failed(status: str, runtime: Runtime, error: str, cause: str) -> None:
    assert status == "FAILED"
    assert runtime.ending() == {"kind": "fail", **IDS, "error": error, "cause": cause}
    assert runtime.execution_error == WORKFLOW_FAILED


# --- Order ---------------------------------------------------------------------------------------

def test_a_single_task_sends_one_message_then_finish(run: Run) -> None:
    status, runtime = run({"tasks": [task("only")]})
    assert_succeeded(status, runtime)
    assert runtime.messages == [{"kind": "task", **IDS, "task": "only"}, {"kind": "finish", **IDS}]


def test_a_chain_runs_each_task_after_the_previous_answered(run: Run) -> None:
    status, runtime = run({"tasks": [task("a"), task("b", depends_on=["a"]), task("c", depends_on=["b"])]})
    assert_succeeded(status, runtime)
    assert runtime.tasks() == ["a", "b", "c"]
    assert runtime.when("answered", "a") < runtime.when("received", "b") < runtime.when("answered", "b")
    assert runtime.when("answered", "b") < runtime.when("received", "c")


def test_independent_tasks_are_in_flight_together_and_a_join_waits_for_both(run: Run) -> None:
    def both_sent(body: dict[str, Any], runtime: Runtime) -> Answer:
        return ("ok", {}) if {"a", "b"} <= set(runtime.tasks()) else None

    status, runtime = run({"tasks": [task("a"), task("b"), task("c", depends_on=["a", "b"])]}, a=both_sent, b=both_sent)
    assert_succeeded(status, runtime)
    assert max(runtime.when("received", "a"), runtime.when("received", "b")) < min(
        runtime.when("answered", "a"), runtime.when("answered", "b"))
    assert max(runtime.when("answered", "a"), runtime.when("answered", "b")) < runtime.when("received", "c")


def test_a_task_waits_only_for_its_own_dependencies(run: Run) -> None:
    # a -> c and b -> d: c must start while b is still running (levels would hold c back until b is done).
    def after_c(body: dict[str, Any], runtime: Runtime) -> Answer:
        return ("ok", {}) if "c" in runtime.tasks() else None

    # (Were c held back until b is answered, b and c would wait on each other until the deadline.)
    status, runtime = run({"tasks": [task("a"), task("b"), task("c", depends_on=["a"]), task("d", depends_on=["b"])]},
                          timeout=5, b=after_c)
    assert_succeeded(status, runtime)
    assert runtime.when("received", "c") < runtime.when("answered", "b")
    assert runtime.when("answered", "b") < runtime.when("received", "d")


def test_nested_dependencies_keep_every_edge(run: Run) -> None:
    # a diamond with a tail, and an N (a->x, b->x, b->y) that is not series-parallel.
    status, runtime = run({"tasks": [
        task("a"), task("b", depends_on=["a"]), task("c", depends_on=["a"]), task("d", depends_on=["b", "c"]),
        task("e", depends_on=["d"]), task("x", depends_on=["a", "b"]), task("y", depends_on=["b"]),
    ]})
    assert_succeeded(status, runtime)
    assert sorted(runtime.tasks()) == ["a", "b", "c", "d", "e", "x", "y"]
    for later, earlier in [("b", "a"), ("c", "a"), ("d", "b"), ("d", "c"), ("e", "d"), ("x", "a"), ("x", "b"),
                           ("y", "b")]:
        assert runtime.when("answered", earlier) < runtime.when("received", later), (earlier, later)


# --- with_items ----------------------------------------------------------------------------------

def test_with_items_asks_for_indices_then_runs_one_message_per_index(run: Run) -> None:
    def five(body: dict[str, Any], runtime: Runtime) -> Answer:
        if body["kind"] == "items":
            return ("ok", {"indices": [0, 1, 2, 3, 4]})
        return ("ok", {}) if runtime.max_in_flight.get("each") == 5 else None  # all five at once: unlimited

    status, runtime = run({"tasks": [task("each", with_items="{{ parameters.xs }}"),
                                     task("after", depends_on=["each"])]}, each=five)
    assert_succeeded(status, runtime)
    assert runtime.messages[0] == {"kind": "items", **IDS, "task": "each"}
    assert sorted(m["index"] for m in runtime.work("each")) == [0, 1, 2, 3, 4]
    assert all(m == {"kind": "task", **IDS, "task": "each", "index": m["index"]} for m in runtime.work("each"))
    assert runtime.max_in_flight["each"] == 5
    assert runtime.tasks()[-1] == "after"


@pytest.mark.parametrize("limit", [1, 2])
def test_with_items_concurrency_bounds_the_items_in_flight(run: Run, limit: int) -> None:
    def hold(body: dict[str, Any], runtime: Runtime) -> Answer:
        if body["kind"] == "items":
            return ("ok", {"indices": [0, 1, 2, 3, 4]})
        remaining = 5 - sum(1 for m in runtime.answered if m["task"] == "each" and m["kind"] == "task")
        return ("ok", {}) if runtime.in_flight("each") >= min(limit, remaining) else None

    status, runtime = run({"tasks": [task("each", with_items=[1, 2, 3, 4, 5], concurrency=limit)]}, each=hold)
    assert_succeeded(status, runtime)
    assert sorted(m["index"] for m in runtime.work("each")) == [0, 1, 2, 3, 4]
    assert runtime.max_in_flight["each"] == limit
    if limit == 1:
        assert [m["index"] for m in runtime.work("each")] == [0, 1, 2, 3, 4]


def test_an_empty_item_list_runs_nothing_and_goes_on(run: Run) -> None:
    def none(body: dict[str, Any], runtime: Runtime) -> Answer:
        return ("ok", {"indices": []})

    status, runtime = run({"tasks": [task("each", with_items="{{ xs }}"), task("after", depends_on=["each"])]},
                          each=none)
    assert_succeeded(status, runtime)
    assert runtime.tasks() == ["after"]


def test_the_implicit_with_items_workflow_runs_the_action_per_item(run: Run) -> None:
    status, runtime = run(implicit_with_items("pack.process", "{{ items }}", concurrency=2))
    assert_succeeded(status, runtime)
    assert sorted(m["index"] for m in runtime.work("items")) == [0, 1, 2]


# --- Retry ---------------------------------------------------------------------------------------

def item_one_fails_once(body: dict[str, Any], runtime: Runtime) -> Answer:
    if body["kind"] == "items":
        return ("ok", {"indices": [0, 1, 2]})
    attempts = [m for m in runtime.work("each") if m["index"] == body["index"]]
    return ("fail", TASK_FAILED, "once") if body["index"] == 1 and len(attempts) == 1 else ("ok", {})


def item_zero_hangs(body: dict[str, Any], runtime: Runtime) -> Answer:
    if body["kind"] == "items":
        return ("ok", {"indices": [0, 1]})
    return None if body["index"] == 0 else ("ok", {})


def hang_first(body: dict[str, Any], runtime: Runtime) -> Answer:
    return None if len(runtime.work("slow")) == 1 else ("ok", {})


# The scenarios that wait on the clock (Retry's IntervalSeconds and TimeoutSeconds are at least 1 s):
# all started together when the module starts, each checked by its own test below.
SLOW: dict[str, tuple[dict[str, Any], dict[str, Policy]]] = {
    "retry": ({"tasks": [task("flaky", retry={"max_attempts": 3, "delay_seconds": 0.1}),
                         task("after", depends_on=["flaky"])]}, {"flaky": fail_first(1)}),
    "retry_exhausted": ({"tasks": [task("flaky", on_failure="retry", retry={"max_attempts": 1, "delay_seconds": 1}),
                                   task("after", depends_on=["flaky"])]}, {"flaky": fail_first(5)}),
    "retry_item": ({"tasks": [task("each", with_items="{{ xs }}", retry={"max_attempts": 1})]},
                   {"each": item_one_fails_once}),
    "timeout": ({"tasks": [task("slow", timeout=1), task("after", depends_on=["slow"])]}, {"slow": never}),
    "timeout_item": ({"tasks": [task("each", with_items="{{ xs }}", timeout=1)]}, {"each": item_zero_hangs}),
    "timeout_continue": ({"tasks": [task("slow", timeout=1, on_failure="continue"),
                                    task("after", depends_on=["slow"])]}, {"slow": never}),
    "timeout_retried": ({"tasks": [task("slow", timeout=1, retry={"max_attempts": 1, "on": ["timeout"]})]},
                        {"slow": hang_first}),
}


@pytest.fixture(scope="module", autouse=True)
def slow(aws: None) -> Iterator[dict[str, Execution]]:
    """The SLOW scenarios, running concurrently from the module's start."""
    started = {name: Execution(doc, policies) for name, (doc, policies) in SLOW.items()}
    yield started
    for execution in started.values():
        execution.runtime.__exit__()


def test_retry_resends_the_task_until_it_succeeds(slow: dict[str, Execution]) -> None:
    status, runtime = slow["retry"].result()  # IntervalSeconds 1 (Step Functions' least) for a 0.1 s delay
    assert_succeeded(status, runtime)
    assert runtime.tasks() == ["flaky", "flaky", "after"]


def test_retry_exhausted_aborts_with_the_last_failure(slow: dict[str, Execution]) -> None:
    status, runtime = slow["retry_exhausted"].result()
    assert_failed(status, runtime, TASK_FAILED, "attempt 2")
    assert runtime.tasks() == ["flaky", "flaky"]


def test_retry_of_with_items_retries_only_the_failed_item(slow: dict[str, Execution]) -> None:
    status, runtime = slow["retry_item"].result()
    assert_succeeded(status, runtime)
    assert sorted(m["index"] for m in runtime.work("each")) == [0, 1, 1, 2]


def test_canceled_is_never_retried_nor_continued(run: Run) -> None:
    status, runtime = run({"tasks": [task("a", on_failure="continue", retry={"max_attempts": 3}),
                                     task("b", depends_on=["a"])]}, a=fail(CANCELED, "canceled by alice"))
    assert_failed(status, runtime, CANCELED, "canceled by alice")
    assert runtime.tasks() == ["a"]


# --- Abort and continue --------------------------------------------------------------------------

def test_abort_stops_the_workflow_and_sends_fail_with_error_and_cause(run: Run) -> None:
    status, runtime = run({"tasks": [task("a"), task("b", depends_on=["a"]), task("c", depends_on=["b"])]},
                          b=fail(cause="exit code 3"))
    assert_failed(status, runtime, TASK_FAILED, "exit code 3")
    assert runtime.tasks() == ["a", "b"]


def test_abort_in_a_parallel_branch_fails_the_workflow(run: Run) -> None:
    status, runtime = run({"tasks": [task("a"), task("b"), task("c", depends_on=["a", "b"])]}, b=fail())
    assert_failed(status, runtime, TASK_FAILED, "boom")
    assert "c" not in runtime.tasks()


def test_continue_swallows_the_failure_and_runs_what_follows(run: Run) -> None:
    status, runtime = run({"tasks": [task("a"), task("b", depends_on=["a"], on_failure="continue"),
                                     task("c", depends_on=["b"])]}, b=fail())
    assert_succeeded(status, runtime)
    assert runtime.tasks() == ["a", "b", "c"]


def test_continue_on_the_last_task_of_a_branch_and_of_the_workflow(run: Run) -> None:
    status, runtime = run({"tasks": [task("a", on_failure="continue"), task("b"), task("c", depends_on=["a", "b"]),
                                     task("z", depends_on=["c"], on_failure="continue")]}, a=fail(), z=fail())
    assert_succeeded(status, runtime)
    assert runtime.tasks()[2:] == ["c", "z"]


def test_continue_on_with_items_lets_the_other_items_finish(run: Run) -> None:
    def item_one_fails(body: dict[str, Any], runtime: Runtime) -> Answer:
        if body["kind"] == "items":
            return ("ok", {"indices": [0, 1, 2]})
        return ("fail", TASK_FAILED, "bad item") if body["index"] == 1 else ("ok", {})

    status, runtime = run({"tasks": [task("each", with_items="{{ xs }}", on_failure="continue", concurrency=1),
                                     task("after", depends_on=["each"])]}, each=item_one_fails)
    assert_succeeded(status, runtime)
    assert [m.get("index") for m in runtime.work()] == [0, 1, 2, None]


def test_continue_on_with_items_skips_the_task_when_its_items_cannot_be_listed(run: Run) -> None:
    status, runtime = run({"tasks": [task("each", with_items="{{ xs }}", on_failure="continue"),
                                     task("after", depends_on=["each"])]}, each=fail(cause="xs is not a list"))
    assert_succeeded(status, runtime)
    assert runtime.tasks() == ["after"]


def test_abort_on_with_items_fails_the_workflow_on_one_item(run: Run) -> None:
    def item_two_fails(body: dict[str, Any], runtime: Runtime) -> Answer:
        if body["kind"] == "items":
            return ("ok", {"indices": [0, 1, 2]})
        return ("fail", TASK_FAILED, "item 2") if body["index"] == 2 else ("ok", {})

    status, runtime = run({"tasks": [task("each", with_items="{{ xs }}"), task("after", depends_on=["each"])]},
                          each=item_two_fails)
    assert_failed(status, runtime, TASK_FAILED, "item 2")
    assert "after" not in runtime.tasks()


# --- Timeouts ------------------------------------------------------------------------------------

def test_a_timeout_aborts_with_a_task_timed_out_error_naming_the_task(slow: dict[str, Execution]) -> None:
    status, runtime = slow["timeout"].result()
    assert_failed(status, runtime, TASK_TIMED_OUT, '{"task": "slow", "error": "timed out after 1 s"}')
    assert runtime.tasks() == ["slow"]


def test_a_timeout_of_an_item_aborts_the_same_way(slow: dict[str, Execution]) -> None:
    status, runtime = slow["timeout_item"].result()
    assert_failed(status, runtime, TASK_TIMED_OUT, '{"task": "each", "error": "timed out after 1 s"}')
    assert sorted(m["index"] for m in runtime.work("each")) == [0, 1]


def test_a_timeout_with_continue_goes_on(slow: dict[str, Execution]) -> None:
    status, runtime = slow["timeout_continue"].result()
    assert_succeeded(status, runtime)
    assert runtime.tasks() == ["slow", "after"]


def test_a_timeout_is_retried(slow: dict[str, Execution]) -> None:
    status, runtime = slow["timeout_retried"].result()
    assert_succeeded(status, runtime)
    assert runtime.tasks() == ["slow", "slow"]


# --- Inquiries -----------------------------------------------------------------------------------

def inquiry(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "inquiry": {"prompt": "Ship it?", "ttl": 300}, **fields}


def test_an_inquiry_waits_for_its_answer(run: Run) -> None:
    def after_build(body: dict[str, Any], runtime: Runtime) -> Answer:
        return ("ok", {"approved": True}) if runtime.answered[-1]["task"] == "build" else None

    status, runtime = run({"tasks": [task("build"), inquiry("approve", depends_on=["build"]),
                                     task("ship", depends_on=["approve"])]}, approve=after_build)
    assert_succeeded(status, runtime)
    assert runtime.tasks() == ["build", "approve", "ship"]
    assert runtime.work("approve") == [{"kind": "task", **IDS, "task": "approve"}]


def test_an_expired_inquiry_aborts_or_continues(run: Run) -> None:
    expired = fail(INQUIRY_EXPIRED, "no answer within 300 s")
    status, runtime = run({"tasks": [inquiry("approve"), task("ship", depends_on=["approve"])]}, approve=expired)
    assert_failed(status, runtime, INQUIRY_EXPIRED, "no answer within 300 s")
    status, runtime = run({"tasks": [inquiry("approve", on_failure="continue"), task("ship", depends_on=["approve"])]},
                          approve=expired)
    assert_succeeded(status, runtime)
    assert runtime.tasks() == ["approve", "ship"]





