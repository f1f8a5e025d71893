"""The worker with a runner function (ATTUNE_ACTION_RUNNER_FUNCTION): tenant code runs there, the lifecycle here.

Real PostgreSQL and moto; only the boto3 edge is replaced. moto's Lambda
cannot run code without Docker, so `chalicelib.aws.lambdas.invoke_runner`
is patched to do what Lambda would: hand the JSON payload to
`functions/runner/app.py`'s handler (in this process) and return its JSON
answer. The pack archive comes from moto's S3 through the presigned URL the
worker signed: the runner only accepts https, moto serves http, so its
`fetch_pack` is replaced by one that downloads that very URL over http and
unpacks it with the runner's own `unpack_pack`.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.aws import lambdas
from chalicelib.aws.secrets import jwt_signing_key
from chalicelib.config import settings
from chalicelib.core.auth import verify_action_token
from chalicelib.db.pool import system_tx
from chalicelib.local.sqs_poller import to_record
from chalicelib.worker import service
from functions.runner import app as runner_app
from tests.helpers.api import ApiUser, register
from tests.integration.conftest_aws import eventually

pytestmark = pytest.mark.integration

FUNCTION = "attune-test-action-runner"
ARN = "arn:aws:sqs:us-east-1:123456789012:attune-work"
PAYLOAD_KEYS = {"execution_id", "runner_type", "parameters", "code", "entry_point", "pack_url", "timeout_s",
                "max_output_bytes", "grace_s", "context"}
CONTEXT_KEYS = {"api_url", "token", "execution_id", "tenant_id", "secret_names"}
HELLO_SH = """\
params=$(cat)
name=$(printf '%s' "$params" | jq -r .name)
echo "greeting $name" >&2
jq -n --arg name "$name" '{greeting: ("hello " + $name)}'
"""
HELLO_YAML = """\
name: hello
runner_type: shell
entry_point: hello.sh
parameters:
  name: {type: string, required: true}
"""


class FakeLambda:
    """What Lambda does with a RequestResponse invoke of ActionRunnerFunction, in this process.

    Records each payload as it crossed the wire (JSON) and the execution's
    status at that moment; `hold`, when given, keeps the invocation in flight
    until the test sets it.
    """

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.statuses: list[str] = []
        self.hold: threading.Event | None = None
        self.invoked = threading.Event()

    def __call__(self, function_name: str, payload: dict[str, Any], **_: Any) -> dict[str, Any]:
        assert function_name == FUNCTION
        sent = json.loads(json.dumps(payload))
        self.payloads.append(sent)
        self.statuses.append(status_of(int(sent["execution_id"])))
        self.invoked.set()
        if self.hold is not None:
            assert self.hold.wait(30), "the test never let the invocation finish"
        reply: dict[str, Any] = json.loads(json.dumps(runner_app.handler(sent, None)))
        return reply


@pytest.fixture
def remote(worker_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeLambda, list[str]]]:
    """A worker told to use the runner function; (the fake Lambda, the pack URLs the runner fetched)."""
    monkeypatch.setenv("ATTUNE_ACTION_RUNNER_FUNCTION", FUNCTION)
    service.reset_worker()
    fake = FakeLambda()
    fetched: list[str] = []

    def fetch_over_http(url: str, dest: Path) -> Path:
        fetched.append(url)
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - moto's endpoint is plain http
            return runner_app.unpack_pack(resp.read(), dest)

    monkeypatch.setattr(lambdas, "invoke_runner", fake)
    monkeypatch.setattr(runner_app, "fetch_pack", fetch_over_http)
    yield fake, fetched
    if fake.hold is not None:
        fake.hold.set()


def status_of(execution_id: int) -> str:
    with system_tx() as cur:
        cur.execute("SELECT status FROM attune.execution WHERE id = %s", (execution_id,))
        row = cur.fetchone()
    return str(row["status"]) if row else "missing"


def tenant(api: Any, files: dict[str, str] | None = None) -> ApiUser:
    """A tenant with a pack `ops` (by default a shell action `hello` run from the pack's files)."""
    user = register(api, "remote")
    files = files or {"actions/hello.yaml": HELLO_YAML, "actions/hello.sh": HELLO_SH}
    status, body = user.post("/api/v1/packs", {"ref": "ops", "version": "1.0.0", "files": files})
    assert status == 201, body
    return user


def inline_action(user: ApiUser, name: str, runner: str, code: str, parameters: dict[str, Any]) -> str:
    ref = f"ops.{name}"
    status, body = user.post(
        "/api/v1/actions", {"ref": ref, "runner_type": runner, "code": code, "parameters": parameters}
    )
    assert status == 201, body
    return ref


def request(user: ApiUser, action_ref: str, parameters: dict[str, Any] | None = None) -> int:
    status, body = user.post("/api/v1/executions", {"action_ref": action_ref, "parameters": parameters or {}})
    assert status == 201 and body["status"] == "scheduled", body
    return int(body["id"])


def deliver(execution_id: int, lambda_mode: bool = True) -> Any:
    """The execution's work message, from the outbox, to the worker's Lambda (or poller) handler."""
    from functions.worker import app

    with system_tx() as cur:
        cur.execute(
            "SELECT id, body FROM attune.outbox WHERE queue = 'work' AND body->>'execution_id' = %s",
            (str(execution_id),),
        )
        row = cur.fetchone()
    assert row is not None, f"no work message for execution {execution_id}"
    message = {"MessageId": str(uuid.uuid4()), "ReceiptHandle": f"rh-{uuid.uuid4().hex}",
               "Body": json.dumps({**row["body"], "outbox_id": row["id"]})}
    entry = app.handler if lambda_mode else app.poller_handler
    return entry({"Records": [to_record(message, ARN, "us-east-1")]}, None)


def execution(user: ApiUser, execution_id: int) -> dict[str, Any]:
    status, body = user.get(f"/api/v1/executions/{execution_id}")
    assert status == 200, body
    return dict(body)


def trail(user: ApiUser, execution_id: int) -> list[str]:
    status, body = user.get(f"/api/v1/audit?execution_id={execution_id}&limit=100")
    assert status == 200, body
    return [e["action"] for e in sorted(body["items"], key=lambda e: e["at"])]


def pack_key(execution_id: int) -> str:
    """The storage key of the pack archive the execution runs from."""
    with system_tx() as cur:
        cur.execute("SELECT pack_storage_key FROM attune.execution WHERE id = %s", (execution_id,))
        row = cur.fetchone()
    assert row is not None and row["pack_storage_key"]
    return str(row["pack_storage_key"])


def db_now() -> Any:
    with system_tx() as cur:
        cur.execute("SELECT clock_timestamp() AS now")
        row = cur.fetchone()
    assert row is not None
    return row["now"]


def heartbeat_after(execution_id: int, moment: Any) -> bool:
    """Whether the worker beat for the execution after `moment` (a database timestamp)."""
    with system_tx() as cur:
        cur.execute("SELECT heartbeat_at FROM attune.execution WHERE id = %s", (execution_id,))
        row = cur.fetchone()
    return bool(row and row["heartbeat_at"] and row["heartbeat_at"] > moment)


def test_pack_action_runs_in_the_runner_function_and_is_recorded_as_a_local_run(
    remote: tuple[FakeLambda, list[str]], api: Any
) -> None:
    fake, fetched = remote
    # GIVEN a scheduled execution of a shell action stored in the tenant's pack
    user = tenant(api)
    execution_id = request(user, "ops.hello", {"name": "ada"})
    # WHEN the worker Lambda gets its work message
    assert deliver(execution_id) == {"batchItemFailures": []}
    # THEN the function was invoked once, while the execution was running
    assert fake.statuses == ["running"]
    # AND the execution succeeded with the action's output, recorded by the usual lifecycle
    done = execution(user, execution_id)
    assert done["status"] == "succeeded", done
    assert done["result"]["output"] == {"greeting": "hello ada"}
    assert done["result"]["exit_code"] == 0 and done["result"]["error"] is None
    assert "greeting ada" in done["result"]["stderr"]
    assert trail(user, execution_id) == [
        "execution.created", "execution.scheduled", "execution.started", "execution.completed"]
    # AND the payload held the action and its token, nothing of the platform's
    payload = fake.payloads[0]
    assert set(payload) == PAYLOAD_KEYS
    assert (payload["runner_type"], payload["entry_point"], payload["code"]) == ("shell", "actions/hello.sh", None)
    assert payload["parameters"] == {"name": "ada"}
    assert set(payload["context"]) == CONTEXT_KEYS
    claims = verify_action_token(jwt_signing_key(), payload["context"]["token"])
    assert (claims.tenant_id, claims.execution_id) == (user.tenant_id, execution_id)
    wire = json.dumps(payload)
    database_url = settings().database_url
    assert database_url and database_url not in wire
    assert "postgresql" not in wire and jwt_signing_key().hex() not in wire
    assert jwt_signing_key().decode("utf-8", "replace") not in wire
    # AND the pack came through a presigned GET of exactly its archive, which the runner fetched
    url = urllib.parse.urlsplit(payload["pack_url"])
    query = urllib.parse.parse_qs(url.query)
    assert url.path.endswith("/" + pack_key(execution_id)), url.path
    assert "X-Amz-Signature" in query and query["X-Amz-Expires"] == ["600"], query
    assert fetched == [payload["pack_url"]]


def test_secret_parameters_reach_the_action_only_as_its_parameters_and_are_masked(
    remote: tuple[FakeLambda, list[str]], api: Any
) -> None:
    fake, fetched = remote
    # GIVEN an inline python3 action with a secret parameter that it prints
    user = tenant(api)
    code = "import sys, json\ndef run(token):\n    print(token)\n    print(token, file=sys.stderr)\n    return token\n"
    ref = inline_action(user, "leaky", "python3", code, {"token": {"type": "string", "secret": True}})
    execution_id = request(user, ref, {"token": "s3cr3t-value"})
    # WHEN it runs in the runner function
    deliver(execution_id)
    # THEN the function got the opened secret as the action's parameter, named as secret, and no pack
    payload = fake.payloads[0]
    assert payload["parameters"] == {"token": "s3cr3t-value"}
    assert payload["context"]["secret_names"] == ["token"]
    assert payload["pack_url"] is None and fetched == []
    assert json.dumps(payload).count("s3cr3t-value") == 1
    # AND the stored result shows only the mask, as for a local run
    done = execution(user, execution_id)
    assert done["status"] == "succeeded", done
    result = done["result"]
    assert result["stdout"].strip() == "********" and result["stderr"].strip() == "********", result
    assert result["output"] == "********"
    assert "s3cr3t-value" not in json.dumps(result)


def test_a_failing_action_is_recorded_failed(remote: tuple[FakeLambda, list[str]], api: Any) -> None:
    fake, _ = remote
    # GIVEN an inline shell action that writes to stderr and exits 1
    user = tenant(api)
    ref = inline_action(user, "fail", "shell", 'echo "Starting action..." >&2\nexit 1\n', {})
    execution_id = request(user, ref)
    # WHEN it runs in the runner function
    deliver(execution_id)
    # THEN it failed with the exit code, stderr and error captured there, and was completed once
    assert len(fake.payloads) == 1
    done = execution(user, execution_id)
    assert done["status"] == "failed", done
    assert done["result"]["exit_code"] == 1 and done["result"]["error"] == "exit code 1"
    assert "Starting action..." in done["result"]["stderr"]
    assert done["retry_count"] == 0
    assert trail(user, execution_id)[-2:] == ["execution.started", "execution.completed"]


def test_a_pack_with_dependencies_is_refused_before_it_starts(
    remote: tuple[FakeLambda, list[str]], api: Any
) -> None:
    fake, _ = remote
    # GIVEN a python3 pack action whose pack has a requirements.txt
    files = {
        "actions/deps.yaml": "name: deps\nrunner_type: python3\nentry_point: deps.py\n",
        "actions/deps.py": "def run():\n    return 1\n",
        "requirements.txt": "requests==2.32.3\n",
    }
    user = tenant(api, files)
    execution_id = request(user, "ops.deps")
    # WHEN the worker gets it
    assert deliver(execution_id) == {"batchItemFailures": []}
    # THEN it failed with why, nothing was installed or invoked, and it never started
    done = execution(user, execution_id)
    assert done["status"] == "failed", done
    assert "container/ECS worker" in done["result"]["error"], done["result"]
    assert fake.payloads == []
    assert "execution.started" not in trail(user, execution_id)


def test_heartbeat_goes_on_during_the_invocation_and_a_cancel_is_seen_after_it(
    remote: tuple[FakeLambda, list[str]], api: Any
) -> None:
    fake, _ = remote
    fake.hold = threading.Event()
    # GIVEN an action in flight in the runner function (the poller's handler returns once it started)
    user = tenant(api)
    execution_id = request(user, "ops.hello", {"name": "late"})
    assert deliver(execution_id, lambda_mode=False) == {"batchItemFailures": []}
    assert fake.invoked.wait(10)
    in_flight = db_now()
    # THEN the worker keeps beating for it while the invocation runs
    eventually(lambda: heartbeat_after(execution_id, in_flight), timeout=10,
               message="a heartbeat during the invocation")
    # WHEN a user cancels it, and the worker's next beat sees that
    status, body = user.post(f"/api/v1/executions/{execution_id}/cancel")
    assert status == 200 and body["status"] == "canceling", body
    canceled_at = db_now()
    eventually(lambda: heartbeat_after(execution_id, canceled_at), timeout=10,
               message="a heartbeat after the cancel")
    assert execution(user, execution_id)["status"] == "canceling"
    # AND the function answers (it cannot be stopped: the action ran to its end)
    fake.hold.set()
    done = eventually(lambda: (e := execution(user, execution_id))["status"] != "canceling" and e,
                      timeout=20, message="the execution to finish")
    # THEN its real outcome is recorded, after the cancel request in the audit trail
    assert done["status"] == "succeeded" and done["result"]["output"] == {"greeting": "hello late"}, done
    actions = trail(user, execution_id)
    assert actions.index("execution.cancel_requested") < actions.index("execution.completed"), actions
