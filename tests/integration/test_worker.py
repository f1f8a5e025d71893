"""The worker on real PostgreSQL and moto: claim -> run -> complete, once per execution, whatever the queue does.

Executions are requested through the API (`api` fixture), their work message
is taken from the outbox and turned into the SQS record Lambda would get
(`sqs_poller.to_record`), and the worker's handlers get it directly.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from chalicelib.core.errors import ServiceUnavailable
from chalicelib.db.pool import system_tx
from chalicelib.executions.reaper import reap_once
from chalicelib.local.sqs_poller import to_record
from chalicelib.worker import service
from tests.helpers.api import ApiUser, register
from tests.integration.conftest_aws import eventually

pytestmark = pytest.mark.integration

ARN = "arn:aws:sqs:us-east-1:123456789012:attune-work"
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
# The side effect a sandboxed action can have that the test sees: one HTTP call per run (it cannot
# write the test's files; the sandbox shares the network, so loopback is reachable).
BEACON_PY = (
    "import urllib.request\n"
    "def run(url):\n"
    "    urllib.request.urlopen(url, data=b'ran', timeout=10).close()\n"
    "    return {'ok': True}\n"
)


class _Counter(BaseHTTPRequestHandler):
    """Records each POST's path: one per run of the action that calls it."""

    hits: list[str]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).hits.append(self.path)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def counter() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server counting calls: (its URL, the paths called, in order)."""
    hits: list[str] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Counter", (_Counter,), {"hits": hits}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()




def tenant(api: Any) -> ApiUser:
    """A tenant with a pack `ops` (a shell action from the pack's files) and inline-code actions."""
    user = register(api, "worker")
    files = {"actions/hello.yaml": HELLO_YAML, "actions/hello.sh": HELLO_SH}
    status, body = user.post("/api/v1/packs", {"ref": "ops", "version": "1.0.0", "files": files})
    assert status == 201, body
    return user


def inline_action(user: ApiUser, name: str, runner: str, code: str, **params: Any) -> str:
    ref = f"ops.{name}"
    parameters = {k: {"type": t} for k, t in params.items()}
    status, body = user.post(
        "/api/v1/actions", {"ref": ref, "runner_type": runner, "code": code, "parameters": parameters}
    )
    assert status == 201, body
    return ref


def request(user: ApiUser, action_ref: str, parameters: dict[str, Any] | None = None) -> int:
    status, body = user.post("/api/v1/executions", {"action_ref": action_ref, "parameters": parameters or {}})
    assert status == 201 and body["status"] == "scheduled", body
    return int(body["id"])


def work_record(execution_id: int) -> dict[str, Any]:
    """The execution's work message, from the outbox, as the SQS record the poller builds."""
    with system_tx() as cur:
        cur.execute(
            "SELECT id, body FROM attune.outbox WHERE queue = 'work' AND body->>'execution_id' = %s",
            (str(execution_id),),
        )
        row = cur.fetchone()
    assert row is not None, f"no work message for execution {execution_id}"
    message = {"MessageId": str(uuid.uuid4()), "ReceiptHandle": f"rh-{uuid.uuid4().hex}",
               "Body": json.dumps({**row["body"], "outbox_id": row["id"]})}
    return to_record(message, ARN, "us-east-1")


def deliver(*records: dict[str, Any], lambda_mode: bool = True) -> Any:
    from functions.worker import app

    entry = app.handler if lambda_mode else app.poller_handler
    return entry({"Records": list(records)}, None)


def execution(user: ApiUser, execution_id: int) -> dict[str, Any]:
    status, body = user.get(f"/api/v1/executions/{execution_id}")
    assert status == 200, body
    return dict(body)


def final(user: ApiUser, execution_id: int, timeout: float = 20) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        found = execution(user, execution_id)
        return found if found["status"] in ("succeeded", "failed", "canceled") else None

    return eventually(finished, timeout=timeout, message=f"execution {execution_id} to finish")


def trail(user: ApiUser, execution_id: int) -> list[dict[str, Any]]:
    status, body = user.get(f"/api/v1/audit?execution_id={execution_id}&limit=100")
    assert status == 200, body
    return sorted(body["items"], key=lambda e: e["at"])


def outbox_ids() -> list[int]:
    with system_tx() as cur:
        cur.execute("SELECT id FROM attune.outbox WHERE queue = 'work'")
        return [r["id"] for r in cur.fetchall()]


def test_pack_action_succeeds_with_output_and_the_pack_is_fetched_once(worker_env: None, api: Any) -> None:
    # GIVEN two executions of a shell action stored in the tenant's pack
    user = tenant(api)
    first, second = request(user, "ops.hello", {"name": "ada"}), request(user, "ops.hello", {"name": "bob"})
    # WHEN the worker gets their work messages
    assert deliver(work_record(first)) == {"batchItemFailures": []}
    assert deliver(work_record(second)) == {"batchItemFailures": []}
    # THEN both succeed with the action's JSON stdout as output and stderr kept
    done = execution(user, first)
    assert done["status"] == "succeeded", done
    assert done["result"]["output"] == {"greeting": "hello ada"}
    assert done["result"]["exit_code"] == 0 and done["result"]["error"] is None
    assert "greeting ada" in done["result"]["stderr"]
    assert done["started"] and done["finished"] and done["started"] <= done["finished"]
    assert execution(user, second)["result"]["output"] == {"greeting": "hello bob"}
    # AND the pack version was downloaded once, the messages acknowledged
    assert service.worker().packs.fetches == 1
    assert outbox_ids() == []


def test_a_pack_at_hand_is_loaded_and_claimed_in_one_transaction(
    worker_env: None, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a worker that ran the pack's action once (pack unpacked, signing key fetched)
    user = tenant(api)
    first, second = request(user, "ops.hello", {"name": "ada"}), request(user, "ops.hello", {"name": "bob"})
    assert deliver(work_record(first)) == {"batchItemFailures": []}
    opened: list[int] = []
    real = service.system_tx

    def counting() -> Any:
        opened.append(1)
        return real()

    monkeypatch.setattr(service, "system_tx", counting)
    # WHEN the next execution of the same pack version arrives
    assert deliver(work_record(second)) == {"batchItemFailures": []}
    # THEN it runs, with the load and the claim in one transaction and the result in another
    done = final(user, second)
    assert done["status"] == "succeeded" and done["result"]["output"] == {"greeting": "hello bob"}
    assert len(opened) == 2
    actions = [e["action"] for e in trail(user, second)]
    assert actions.count("execution.started") == 1 and actions.count("execution.completed") == 1
    assert outbox_ids() == []


def test_failing_action_records_exit_code_stderr_and_error(worker_env: None, api: Any) -> None:
    # GIVEN the seed's failing action (T1.8): a line on stderr, exit 1
    user = tenant(api)
    ref = inline_action(user, "fail", "shell", 'echo "Starting action..." >&2\nexit 1\n')
    execution_id = request(user, ref)
    # WHEN it runs
    deliver(work_record(execution_id))
    # THEN it failed, with exit code, stderr and error captured, and was not retried
    done = execution(user, execution_id)
    assert done["status"] == "failed", done
    assert done["result"]["exit_code"] == 1
    assert "Starting action..." in done["result"]["stderr"]
    assert done["result"]["error"] == "exit code 1"
    assert done["retry_count"] == 0


def test_redelivered_message_runs_the_action_once(
    worker_env: None, api: Any, counter: tuple[str, list[str]]
) -> None:
    # GIVEN an action with a side effect (one HTTP call to the test's server per run)
    url, hits = counter
    user = tenant(api)
    ref = inline_action(user, "beacon", "python3", BEACON_PY, url="string")
    first, second = request(user, ref, {"url": f"{url}/one"}), request(user, ref, {"url": f"{url}/two"})
    record_one, record_two = work_record(first), work_record(second)
    # WHEN the first message is delivered twice in a row (relay re-send, SQS at-least-once)
    deliver(record_one)
    deliver(record_one)
    # AND the second is delivered to two pollers at the same moment
    barrier = threading.Barrier(2)

    def racer() -> None:
        barrier.wait()
        deliver(record_two)

    racers = [threading.Thread(target=racer) for _ in range(2)]
    for t in racers:
        t.start()
    for t in racers:
        t.join(30)
    # THEN each action ran exactly once, and each execution succeeded once
    assert sorted(hits) == ["/one", "/two"], hits
    for execution_id in (first, second):
        assert execution(user, execution_id)["status"] == "succeeded"
        actions = [e["action"] for e in trail(user, execution_id)]
        assert actions.count("execution.started") == 1 and actions.count("execution.completed") == 1



def test_secret_parameters_do_not_reach_the_stored_result(worker_env: None, api: Any) -> None:
    # GIVEN an action with a secret parameter that prints it (T3.20)
    user = tenant(api)
    parameters = {"token": {"type": "string", "secret": True}}
    code = "params=$(cat)\nprintf '%s' \"$params\" | jq -r .token\nprintf '%s' \"$params\" | jq -r .token >&2\n"
    status, body = user.post(
        "/api/v1/actions", {"ref": "ops.leaky", "runner_type": "shell", "code": code, "parameters": parameters}
    )
    assert status == 201, body
    execution_id = request(user, "ops.leaky", {"token": "s3cr3t-value"})
    # WHEN it runs
    deliver(work_record(execution_id))
    # THEN it got the secret on stdin, but the stored result shows only the mask
    result = execution(user, execution_id)["result"]
    assert result["stdout"].strip() == "********" and result["stderr"].strip() == "********", result
    assert "s3cr3t-value" not in json.dumps(result)

def test_message_for_a_final_execution_is_acknowledged_and_ignored(worker_env: None, api: Any) -> None:
    # GIVEN a scheduled execution that was canceled before a worker got its message
    user = tenant(api)
    execution_id = request(user, "core.noop")
    record = work_record(execution_id)
    with system_tx() as cur:
        cur.execute("UPDATE attune.execution SET status = 'canceled' WHERE id = %s", (execution_id,))
    # WHEN the message arrives
    assert deliver(record) == {"batchItemFailures": []}
    # THEN nothing ran, the execution is untouched and the outbox row is acknowledged
    done = execution(user, execution_id)
    assert done["status"] == "canceled" and done["started"] is None and done["result"] is None
    assert "execution.started" not in [e["action"] for e in trail(user, execution_id)]
    assert outbox_ids() == []


def test_audit_trail_names_the_user_the_executor_and_one_worker(worker_env: None, api: Any) -> None:
    # GIVEN a user runs the system echo action (T3.28)
    user = tenant(api)
    execution_id = request(user, "core.echo", {"message": "audited"})
    deliver(work_record(execution_id))
    done = execution(user, execution_id)
    assert done["status"] == "succeeded" and done["result"]["output"] == {"message": "audited"}, done
    # THEN created, scheduled, started, completed appear once each, in order, with their actors
    entries = {e["action"]: e for e in trail(user, execution_id)}
    lifecycle = ["execution.created", "execution.scheduled", "execution.started", "execution.completed"]
    assert [e["action"] for e in trail(user, execution_id)] == lifecycle
    assert entries["execution.created"]["actor"] == f"user:{user.username}"
    assert entries["execution.scheduled"]["actor"] == "service:executor"
    worker = entries["execution.started"]["actor"]
    assert worker.startswith("worker:") and worker.count(":") == 3  # worker:host:pid:slot
    assert entries["execution.completed"]["actor"] == worker
    detail = entries["execution.completed"]["detail"]
    assert detail["status"] == "succeeded" and detail["exit_code"] == 0 and detail["duration_s"] >= 0


def test_a_workflow_never_reaches_a_worker_its_start_goes_to_the_workflow_handler(worker_env: None, api: Any) -> None:
    # GIVEN a workflow action
    user = tenant(api)
    status, body = user.post("/api/v1/actions", {"ref": "ops.flow", "runner_type": "workflow",
                                                 "workflow": {"tasks": [{"name": "a", "action": "core.noop"}]}})
    assert status == 201, body
    # WHEN it is run THEN it is running at once without a worker, and its start waits for the workflow handler
    status, done = user.post("/api/v1/executions", {"action_ref": "ops.flow", "parameters": {}})
    assert status == 201 and done["status"] == "running" and done["started"] is not None, done
    assert outbox_ids() == []  # nothing for the work queue
    with system_tx() as cur:
        cur.execute("SELECT body FROM attune.outbox WHERE queue = 'workflow-tasks'")
        bodies = [r["body"] for r in cur.fetchall()]
    assert [(b["kind"], b["execution_id"]) for b in bodies] == [("start", done["id"])]
    with system_tx() as cur:
        cur.execute("SELECT worker_id, heartbeat_at FROM attune.execution WHERE id = %(id)s", {"id": done["id"]})
        row = cur.fetchone()
    assert row == {"worker_id": None, "heartbeat_at": None}  # so the reaper never takes it


def test_storage_outage_before_the_start_retries_the_message(
    worker_env: None, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN pack storage is unreachable
    user = tenant(api)
    execution_id = request(user, "ops.hello", {"name": "later"})
    record = work_record(execution_id)
    packs = service.worker().packs

    def unreachable(key: str, dest: Path) -> Path:
        raise ServiceUnavailable(f"pack storage is unavailable (download {key}); retry later")

    monkeypatch.setattr(packs, "_fetch", unreachable)
    # WHEN the message arrives
    response = deliver(record)
    # THEN the record is reported failed (SQS redelivers it), and nothing changed
    assert response == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
    assert execution(user, execution_id)["status"] == "scheduled"
    assert len(outbox_ids()) == 1
    # AND once storage is back, the redelivered message runs it
    monkeypatch.undo()
    monkeypatch.setenv("ATTUNE_PACK_CACHE_DIR", str(packs.base))
    assert deliver(record) == {"batchItemFailures": []}
    assert execution(user, execution_id)["result"]["output"] == {"greeting": "hello later"}


def test_poller_handler_does_not_hold_a_batch_behind_a_slow_action(worker_env: None, api: Any) -> None:
    # GIVEN a batch with a slow action and a quick one
    user = tenant(api)
    slow = request(user, "core.sleep", {"seconds": 3})
    quick = request(user, "ops.hello", {"name": "quick"})
    # WHEN the long-lived poller's handler gets the batch
    response = deliver(work_record(slow), work_record(quick), lambda_mode=False)
    # THEN it returns at once (both started), the quick one finishes while the slow one still runs
    assert response == {"batchItemFailures": []}
    assert execution(user, slow)["status"] == "running"
    assert final(user, quick)["status"] == "succeeded"
    assert execution(user, slow)["status"] == "running"
    assert final(user, slow)["status"] == "succeeded"


def test_heartbeat_advances_and_a_cancel_stops_the_action(worker_env: None, api: Any) -> None:
    # GIVEN a long action running under the poller's handler
    user = tenant(api)
    execution_id = request(user, "core.sleep", {"seconds": 30})
    deliver(work_record(execution_id), lambda_mode=False)

    def heartbeat_after_start() -> bool:
        with system_tx() as cur:
            cur.execute("SELECT started, heartbeat_at FROM attune.execution WHERE id = %s", (execution_id,))
            row = cur.fetchone()
        return bool(row and row["heartbeat_at"] > row["started"])

    # THEN its heartbeat moves on while it runs
    eventually(heartbeat_after_start, timeout=10, message="a heartbeat after the claim")
    # WHEN it is asked to cancel
    with system_tx() as cur:
        cur.execute("UPDATE attune.execution SET status = 'canceling' WHERE id = %s", (execution_id,))
    # THEN the action is stopped at the next beat and the execution ends canceled
    done = final(user, execution_id, timeout=10)
    assert done["status"] == "canceled" and done["result"]["error"] == "canceled", done


def test_reaper_fails_a_stale_running_execution_and_spares_the_others(worker_env: None, api: Any) -> None:
    # GIVEN running executions: one whose worker stopped beating 45 s ago, one beating now,
    # and one running without a worker (a workflow's parent: no heartbeat at all)
    user = tenant(api)
    stale, fresh, parent = request(user, "core.noop"), request(user, "core.noop"), request(user, "core.noop")
    with system_tx() as cur:
        cur.execute(
            "UPDATE attune.execution SET status = 'running', worker_id = 'gone:1:0',"
            " started = now() - interval '1 min',"
            " heartbeat_at = CASE WHEN id = %s THEN now() - interval '45 s' ELSE now() END WHERE id = ANY(%s)",
            (stale, [stale, fresh]),
        )
        cur.execute(
            "UPDATE attune.execution SET status = 'running', started = now() - interval '1 hour' WHERE id = %s",
            (parent,),
        )
    # WHEN the reaper sweeps
    assert reap_once() == 1
    # THEN the stale one failed with a clear error, audited by the reaper; the others run on
    done = execution(user, stale)
    assert done["status"] == "failed" and done["finished"], done
    assert done["result"]["error"].startswith("worker lost: no heartbeat for 4"), done["result"]
    reaped = [e for e in trail(user, stale) if e["actor"] == "service:reaper"]
    assert len(reaped) == 1 and reaped[0]["action"] == "execution.failed"
    assert reaped[0]["detail"]["worker_id"] == "gone:1:0"
    assert execution(user, fresh)["status"] == "running" and execution(user, parent)["status"] == "running"
    assert reap_once() == 0


def test_shutdown_finishes_in_flight_work_and_takes_no_new_work(worker_env: None, api: Any) -> None:
    # GIVEN an action in flight
    user = tenant(api)
    running = request(user, "core.sleep", {"seconds": 2})
    deliver(work_record(running), lambda_mode=False)
    worker = service.worker()
    # WHEN the worker shuts down (SIGTERM to the role, T3.30)
    stopper = threading.Thread(target=worker.shutdown, args=(30,))
    stopper.start()
    eventually(lambda: worker.slots.closed, message="the worker to close")
    # THEN a new message is refused and left for redelivery
    later = request(user, "core.noop")
    record = work_record(later)
    assert deliver(record, lambda_mode=False) == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
    assert execution(user, later)["status"] == "scheduled"
    # AND the in-flight action finishes and its result is saved before shutdown returns
    stopper.join(30)
    assert not stopper.is_alive()
    assert execution(user, running)["status"] == "succeeded"


def test_shutdown_past_its_grace_stops_and_fails_what_is_left(worker_env: None, api: Any) -> None:
    # GIVEN an action that would outlast the shutdown grace
    user = tenant(api)
    execution_id = request(user, "core.sleep", {"seconds": 60})
    deliver(work_record(execution_id), lambda_mode=False)
    eventually(lambda: execution(user, execution_id)["status"] == "running", message="the action to start")
    # WHEN the worker shuts down with 0.5 s to drain
    service.worker().shutdown(0.5)
    # THEN the action was stopped and the execution failed with the reason (not left running)
    done = execution(user, execution_id)
    assert done["status"] == "failed", done
    assert "worker shut down before the action finished" in done["result"]["error"]



@pytest.fixture
def api_over_http(api: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The real app behind the local gateway on a free port, so an action's SDK can call it over HTTP."""
    from chalicelib.local.api_server import create_server, load_app, serve_until
    from tests.conftest import free_port

    port = free_port()
    server = create_server(load_app(), "127.0.0.1", port)
    stop = threading.Event()
    thread = threading.Thread(target=serve_until, args=(server, stop), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("ATTUNE_API_URL", url)
    yield url
    stop.set()
    thread.join(10)


DATASTORE_PY = """\
import attune_action as attune

def run(key, secret_key):
    value = attune.datastore_get(key)
    attune.datastore_set("written_by_action", {"read": value})
    return {"read": value, "secret": attune.datastore_get(secret_key), "absent": attune.datastore_get("nope"),
            "context": sorted(attune.context()), "token": attune.context()["token"]}
"""


def test_action_reads_and_writes_the_tenants_datastore(api_over_http: str, worker_env: None, api: Any) -> None:
    # GIVEN a tenant's datastore with a plain and an encrypted item (T1.6)
    user = tenant(api)
    assert user.post("/api/v1/datastore", {"key": "api_url", "value": "https://api.example.com"})[0] == 201
    assert user.post("/api/v1/datastore", {"key": "api/token", "value": "s3cr3t", "encrypted": True})[0] == 201
    ref = inline_action(user, "ds", "python3", DATASTORE_PY, key="string", secret_key="string")
    execution_id = request(user, ref, {"key": "api_url", "secret_key": "api/token"})
    # WHEN an action reads them and writes another item through the SDK (T2.3)
    deliver(work_record(execution_id))
    # THEN it read both (the secret decrypted, an absent key as None) and its write is in the datastore
    done = execution(user, execution_id)
    assert done["status"] == "succeeded", done
    output = done["result"]["output"]
    assert (output["read"], output["secret"], output["absent"]) == ("https://api.example.com", "s3cr3t", None)
    assert {"api_url", "token", "execution_id", "tenant_id"} <= set(output["context"])
    status, item = user.get("/api/v1/datastore/written_by_action")
    assert status == 200 and item["value"] == {"read": "https://api.example.com"}, item
    # AND the action's token stops working once the execution is over
    headers = {"Authorization": f"Bearer {output['token']}"}
    assert api.http.get("/api/v1/datastore/api_url", headers=headers).status_code == 401
