"""The remote runner and its Lambda edge: payload building, result mapping, error translation, registry choice.

In-process fakes stand in for the function (the `invoke_runner` edge) and the
signer; the Lambda client itself is botocore's, with a Stubber, so no request
leaves the process.
"""

from __future__ import annotations

import io
import json
import threading
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from botocore.response import StreamingBody
from botocore.stub import Stubber
from pydantic import ValidationError

from chalicelib.aws import lambdas, storage
from chalicelib.core.errors import ServiceUnavailable, ValidationFailed
from chalicelib.core.runners import ActionSpec
from chalicelib.runners import RunRequest, RunResult, remote, runner_for
from chalicelib.runners.http import HttpRunner
from chalicelib.runners.remote import RemoteRunner, RunnerInvocation, build_payload, dependency_refusal, to_result
from chalicelib.runners.shell import ShellRunner
from functions.runner import app as runner_app

FUNCTION = "attune-action-runner"
KEY = "tenants/7/packs/ops/1.0.0/pack.tar.gz"
PAYLOAD_KEYS = {"execution_id", "runner_type", "parameters", "code", "entry_point", "pack_url", "timeout_s",
                "max_output_bytes", "grace_s", "context"}
CONTEXT = {"api_url": "https://api.example.com", "token": "header.claims.sig", "execution_id": 42, "tenant_id": 7,
           "secret_names": ["password"]}
SUCCESS = {"status": "succeeded", "exit_code": 0, "stdout": '{"ok": true}\n', "stderr": "note\n",
           "output": {"ok": True}, "error": None, "timed_out": False, "pid": 4242, "duration_s": 0.25}


def pack(tmp_path: Path, files: dict[str, str] | None = None) -> Path:
    """A pack dir with `actions/hello.sh` and the given top-level files."""
    (tmp_path / "actions").mkdir(parents=True, exist_ok=True)
    (tmp_path / "actions" / "hello.sh").write_text("echo hi\n")
    for name, text in (files or {}).items():
        (tmp_path / name).write_text(text)
    return tmp_path


def pack_request(pack_dir: Path, **changes: Any) -> RunRequest:
    fields: dict[str, Any] = {
        "execution_id": 42, "runner_type": "shell", "parameters": {"name": "ada", "password": "hunter22"},
        "entry_point": "actions/hello.sh", "pack_dir": pack_dir, "python": "/deps/venv/bin/python",
        "node_modules": pack_dir / "node_modules", "timeout_s": 30, "max_output_bytes": 4096, "context": CONTEXT,
        "spec": ActionSpec(ref="ops.hello", runner_type="shell", entry_point="hello.sh"),
    }
    fields.update(changes)
    return RunRequest(**fields)


class FakeEdge:
    """`lambdas.invoke_runner` as the function would answer, recording each payload."""

    def __init__(self, reply: Any = None, during: threading.Event | None = None) -> None:
        self.reply = SUCCESS if reply is None else reply
        self.during = during
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, function_name: str, payload: dict[str, Any]) -> Any:
        self.calls.append((function_name, json.loads(json.dumps(payload))))
        if self.during is not None:
            self.during.set()  # a cancel arriving while the function runs
        return self.reply


@pytest.fixture
def signed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Replace the presigner: records (key, expiry) and returns a recognisable URL."""
    calls: list[tuple[str, int]] = []

    def presign(key: str, expires_s: int = 600) -> str:
        calls.append((key, expires_s))
        return f"https://bucket.s3.amazonaws.com/{key}?X-Amz-Signature=abc"

    monkeypatch.setattr(storage, "presigned_pack_url", presign)
    return calls


def edge(monkeypatch: pytest.MonkeyPatch, fake: FakeEdge) -> FakeEdge:
    monkeypatch.setattr(lambdas, "invoke_runner", fake)
    return fake


# -- the payload -----------------------------------------------------------------------------------------


def test_payload_carries_the_action_and_nothing_of_the_worker(tmp_path: Path) -> None:
    # GIVEN a pack action's request as the worker builds it (venv, node_modules, spec and all)
    request = pack_request(pack(tmp_path))
    # WHEN its payload is built
    payload = build_payload(request, pack_url="https://signed", grace_s=2)
    # THEN it has exactly the documented fields, the worker's paths and spec left behind
    assert set(payload) == PAYLOAD_KEYS
    assert payload == {
        "execution_id": 42, "runner_type": "shell", "parameters": {"name": "ada", "password": "hunter22"},
        "code": None, "entry_point": "actions/hello.sh", "pack_url": "https://signed", "timeout_s": 30.0,
        "max_output_bytes": 4096, "grace_s": 2.0, "context": CONTEXT,
    }
    assert str(tmp_path) not in json.dumps(payload)


def test_inline_code_travels_without_a_pack() -> None:
    request = RunRequest(execution_id=1, runner_type="python3", parameters={}, code="def run():\n    return 1\n",
                         context={"token": "t"})
    payload = build_payload(request, pack_url=None, grace_s=5)
    assert (payload["code"], payload["entry_point"], payload["pack_url"]) == (request.code, None, None)


def test_the_invocation_contract_refuses_other_runners_and_unknown_fields() -> None:
    base = build_payload(RunRequest(execution_id=1, runner_type="shell", parameters={}, code="true"),
                         pack_url=None, grace_s=5)
    with pytest.raises(ValidationError):
        RunnerInvocation.model_validate({**base, "runner_type": "http"})
    with pytest.raises(ValidationError):
        RunnerInvocation.model_validate({**base, "database_url": "postgresql://x"})
    assert RunnerInvocation.model_validate(base).model_dump(mode="json") == base


def test_the_contracts_runner_types_are_the_remote_ones() -> None:
    literal = typing.get_args(RunnerInvocation.model_fields["runner_type"].annotation)
    assert set(literal) == set(remote.REMOTE_RUNNER_TYPES) == {"python3", "shell", "node"}


# -- the result ------------------------------------------------------------------------------------------


def test_a_reply_becomes_the_run_result_without_the_remote_pid() -> None:
    result = to_result(SUCCESS, elapsed_s=1.5)
    assert result == RunResult(status="succeeded", exit_code=0, stdout='{"ok": true}\n', stderr="note\n",
                               output={"ok": True}, error=None, timed_out=False, pid=None, duration_s=0.25)


def test_a_function_error_is_a_failed_result_with_the_invocations_time() -> None:
    reply = lambdas.failed_reply("the action runner function failed: Sandbox.Timedout: Task timed out")
    result = to_result(reply, elapsed_s=900.1234)
    assert (result.status, result.error, result.exit_code) == (
        "failed", "the action runner function failed: Sandbox.Timedout: Task timed out", None)
    assert result.duration_s == 900.123


@pytest.mark.parametrize("reply, where", [
    (None, "the result"),
    ({**SUCCESS, "status": "canceled"}, "status"),
    ({k: v for k, v in SUCCESS.items() if k != "stdout"}, "stdout"),
    ({**SUCCESS, "exit_code": "0"}, "exit_code"),
    ({**SUCCESS, "extra": 1}, "extra"),
])
def test_an_unreadable_reply_is_a_failure_that_says_so(reply: Any, where: str) -> None:
    result = to_result(reply, elapsed_s=0.5)
    assert result.status == "failed" and result.output is None
    assert result.error is not None and result.error.startswith(
        f"the action runner function returned an unreadable result ({where}"), result.error


# -- the runner ------------------------------------------------------------------------------------------


def test_pack_action_is_invoked_with_a_fresh_presigned_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signed: list[tuple[str, int]]
) -> None:
    # GIVEN the remote runner for a pack action
    fake = edge(monkeypatch, FakeEdge())
    runner = RemoteRunner(FUNCTION, grace_s=3, pack_key=KEY)
    # WHEN it runs
    result = runner.run(pack_request(pack(tmp_path)), cancel=threading.Event())
    # THEN the function got the payload with a URL signed for that one archive, and its answer came back
    assert signed == [(KEY, 600)]
    [(name, payload)] = fake.calls
    assert name == FUNCTION and payload["pack_url"] == f"https://bucket.s3.amazonaws.com/{KEY}?X-Amz-Signature=abc"
    assert payload["grace_s"] == 3.0
    assert result.status == "succeeded" and result.output == {"ok": True}


def test_inline_action_is_not_given_a_pack(monkeypatch: pytest.MonkeyPatch, signed: list[tuple[str, int]]) -> None:
    fake = edge(monkeypatch, FakeEdge())
    request = RunRequest(execution_id=3, runner_type="python3", parameters={}, code="def run(): pass\n")
    RemoteRunner(FUNCTION, pack_key=None).run(request)
    assert signed == [] and fake.calls[0][1]["pack_url"] is None


def test_a_cancel_before_the_invocation_runs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signed: list[tuple[str, int]]
) -> None:
    fake = edge(monkeypatch, FakeEdge())
    cancel = threading.Event()
    cancel.set()
    result = RemoteRunner(FUNCTION, pack_key=KEY).run(pack_request(pack(tmp_path)), cancel=cancel)
    assert (result.status, result.error) == ("canceled", "canceled")
    assert fake.calls == [] and signed == []


def test_a_cancel_during_the_invocation_keeps_the_real_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signed: list[tuple[str, int]]
) -> None:
    # GIVEN a cancel that arrives while the function runs (Lambda cannot stop it)
    cancel = threading.Event()
    edge(monkeypatch, FakeEdge(during=cancel))
    # WHEN the invocation returns
    result = RemoteRunner(FUNCTION, pack_key=KEY).run(pack_request(pack(tmp_path)), cancel=cancel)
    # THEN what the action really did is returned, not a "canceled" it was not
    assert cancel.is_set() and result.status == "succeeded" and result.output == {"ok": True}


@pytest.mark.parametrize("changes, message", [
    ({"entry_point": "actions/missing.sh"}, "does not exist in the pack"),
    ({"entry_point": "../../etc/passwd"}, "points outside the pack"),
    ({"timeout_s": 0}, "timeout must be positive"),
])
def test_a_malformed_request_is_refused_as_locally_without_an_invocation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signed: list[tuple[str, int]], changes: dict[str, Any],
    message: str,
) -> None:
    fake = edge(monkeypatch, FakeEdge())
    with pytest.raises(ValidationFailed, match=message):
        RemoteRunner(FUNCTION, pack_key=KEY).run(pack_request(pack(tmp_path), **changes))
    assert fake.calls == []


def test_a_function_that_cannot_be_invoked_raises_for_the_worker_to_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signed: list[tuple[str, int]]
) -> None:
    def unreachable(function_name: str, payload: dict[str, Any]) -> dict[str, Any]:
        raise ServiceUnavailable("the action runner function is unreachable")

    monkeypatch.setattr(lambdas, "invoke_runner", unreachable)
    with pytest.raises(ServiceUnavailable):
        RemoteRunner(FUNCTION, pack_key=KEY).run(pack_request(pack(tmp_path)))


# -- dependencies and the registry ------------------------------------------------------------------------


@pytest.mark.parametrize("runner_type, files, refused", [
    ("python3", {"requirements.txt": "requests==2.32.3\n"}, "requirements.txt"),
    ("python3", {"requirements.txt": "\n  \n"}, None),
    ("python3", {}, None),
    ("node", {"package.json": "{}"}, "package.json"),
    ("shell", {"requirements.txt": "requests\n", "package.json": "{}"}, None),
])
def test_packs_with_dependencies_are_refused_for_the_runner_function(
    tmp_path: Path, runner_type: str, files: dict[str, str], refused: str | None
) -> None:
    pack_dir = pack(tmp_path, files)
    found = dependency_refusal(runner_type, pack_dir, FUNCTION)
    if refused is None:
        assert found is None
    else:
        assert found is not None and refused in found and "container/ECS worker" in found
    assert dependency_refusal(runner_type, pack_dir, None) is None  # the local worker installs them


@pytest.mark.parametrize("runner_type", ["python3", "shell", "node"])
def test_with_a_runner_function_script_actions_get_the_remote_runner(runner_type: str) -> None:
    runner = runner_for(runner_type, grace_s=2, runner_function=FUNCTION, pack_key=KEY)
    assert isinstance(runner, RemoteRunner)
    assert (runner.function_name, runner.grace_s, runner.pack_key) == (FUNCTION, 2, KEY)


def test_without_one_or_for_other_runners_the_local_runner_is_used() -> None:
    assert isinstance(runner_for("shell"), ShellRunner)
    assert isinstance(runner_for("http", runner_function=FUNCTION), HttpRunner)
    with pytest.raises(ValidationFailed):
        runner_for("cobol", runner_function=FUNCTION)


# -- the Lambda edge ---------------------------------------------------------------------------------------


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    """botocore's own Lambda client, stubbed: the edge's translation without a request."""
    client = boto3.session.Session().client("lambda", region_name="us-east-1", aws_access_key_id="k",
                                            aws_secret_access_key="s")
    monkeypatch.setattr(lambdas, "_client", lambda: client)
    with Stubber(client) as stub:
        yield stub


def body(doc: Any) -> StreamingBody:
    raw = json.dumps(doc).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def expect_invoke(stub: Stubber, response: dict[str, Any], payload: dict[str, Any]) -> None:
    stub.add_response("invoke", {"StatusCode": 200, **response}, {
        "FunctionName": FUNCTION, "InvocationType": "RequestResponse",
        "Payload": json.dumps(payload, separators=(",", ":")).encode()})


def test_invoke_returns_the_functions_answer(stubbed: Stubber) -> None:
    expect_invoke(stubbed, {"Payload": body(SUCCESS)}, {"execution_id": 1})
    assert lambdas.invoke_runner(FUNCTION, {"execution_id": 1}) == SUCCESS
    stubbed.assert_no_pending_responses()


def test_a_function_error_becomes_a_failed_result(stubbed: Stubber) -> None:
    crash = {"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 900.00 seconds"}
    expect_invoke(stubbed, {"FunctionError": "Unhandled", "Payload": body(crash)}, {})
    reply = lambdas.invoke_runner(FUNCTION, {})
    assert reply["status"] == "failed" and reply["exit_code"] is None
    assert reply["error"] == "the action runner function failed: Sandbox.Timedout: Task timed out after 900.00 seconds"
    assert to_result(reply, 1.0).error == reply["error"]


def test_a_throttled_invoke_is_tried_again_and_then_given_up(stubbed: Stubber) -> None:
    stubbed.add_client_error("invoke", "TooManyRequestsException", http_status_code=429)
    expect_invoke(stubbed, {"Payload": body(SUCCESS)}, {})
    assert lambdas.invoke_runner(FUNCTION, {}, retry_delays=(0,)) == SUCCESS
    stubbed.add_client_error("invoke", "TooManyRequestsException", http_status_code=429)
    with pytest.raises(ServiceUnavailable, match="TooManyRequestsException"):
        lambdas.invoke_runner(FUNCTION, {}, retry_delays=())


def test_a_missing_function_is_unavailable_and_an_oversized_request_a_failure(stubbed: Stubber) -> None:
    stubbed.add_client_error("invoke", "ResourceNotFoundException", http_status_code=404)
    with pytest.raises(ServiceUnavailable, match="ResourceNotFoundException"):
        lambdas.invoke_runner(FUNCTION, {}, retry_delays=(0,))
    stubbed.add_client_error("invoke", "RequestTooLargeException", http_status_code=413)
    reply = lambdas.invoke_runner(FUNCTION, {})
    assert reply["status"] == "failed" and "too large" in reply["error"]


class FlakyClient:
    """A client whose invoke raises the given errors in turn, then answers."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def invoke(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return {"StatusCode": 200, "Payload": body(SUCCESS)}


def test_a_connection_never_made_is_retried_but_a_lost_answer_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a refused connection: the request was never sent, so trying again cannot run the action twice
    flaky = FlakyClient(EndpointConnectionError(endpoint_url="https://lambda"))
    monkeypatch.setattr(lambdas, "_client", lambda: flaky)
    assert lambdas.invoke_runner(FUNCTION, {}, retry_delays=(0,)) == SUCCESS and flaky.calls == 2
    # AND a read timeout: the action may be running, so it is not invoked again
    lost = FlakyClient(ReadTimeoutError(endpoint_url="https://lambda"))
    monkeypatch.setattr(lambdas, "_client", lambda: lost)
    with pytest.raises(ServiceUnavailable, match="no answer"):
        lambdas.invoke_runner(FUNCTION, {}, retry_delays=(0, 0))
    assert lost.calls == 1


def test_the_client_waits_out_the_longest_run_and_never_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    config = lambdas._client().meta.config
    assert config.read_timeout > lambdas.RUNNER_MAX_S
    assert config.retries["total_max_attempts"] == 1


# -- the runner function's handler --------------------------------------------------------------------------


def test_the_handler_answers_a_bad_payload_with_a_failed_result() -> None:
    reply = runner_app.handler({"execution_id": 1, "runner_type": "http"}, None)
    assert reply["status"] == "failed" and "invalid payload (runner_type" in reply["error"]
    assert to_result(reply, 0.1).status == "failed"


def test_the_handler_only_fetches_packs_over_https() -> None:
    payload = build_payload(RunRequest(execution_id=1, runner_type="shell", parameters={}, entry_point="a.sh"),
                            pack_url="http://169.254.169.254/latest/meta-data", grace_s=1)
    reply = runner_app.handler(payload, None)
    assert reply["status"] == "failed" and "https" in reply["error"]


def test_the_action_is_stopped_before_the_function_would_be() -> None:
    invocation = RunnerInvocation.model_validate(
        build_payload(RunRequest(execution_id=1, runner_type="shell", parameters={}, code="true", timeout_s=600),
                      pack_url=None, grace_s=5))
    assert runner_app.run_request(invocation, None, budget_s=100).timeout_s == 100 - 5 - runner_app.RESERVE_S
    assert runner_app.run_request(invocation, None, budget_s=None).timeout_s == 600
    assert runner_app.run_request(invocation, None, budget_s=3).timeout_s == 1.0


def test_a_corrupt_archive_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match="cannot be unpacked"):
        runner_app.unpack_pack(b"not a tarball", tmp_path / "pack")
