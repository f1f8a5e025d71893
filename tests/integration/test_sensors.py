"""Sensors end to end in process: a pack's sensors registered through the API, polled by the sensor
function's handler in real (sandboxed) subprocesses, recorded in real PostgreSQL, events on moto's SQS.
"""

from __future__ import annotations

import json
import textwrap
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from chalicelib.aws import schedules
from chalicelib.db.pool import system_tx
from chalicelib.sensors import registry, service
from functions.sensors.app import handler
from tests.helpers.api import ApiUser, register

COUNTER_PY = """\
class Counter:
    def poll(self, state):
        n = (state or {}).get("n", 0) + 1
        return [{"n": n, "label": self.parameters.get("label")}], {"n": n}
"""
RAISING_PY = """\
class Broken:
    def poll(self, state):
        raise RuntimeError("the upstream API said no")
"""
SLOW_PY = """\
import time

class Slow:
    def poll(self, state):
        time.sleep(30)
        return [], state
"""
READER_PY = """\
import os

class Reader:
    def __init__(self, config):
        self.path = config["path"]

    def poll(self, state):
        try:
            with open(self.path) as f:
                return [{"content": f.read()}], None
        except OSError as exc:
            return [{"error": type(exc).__name__}], None
"""


def sensor_yaml(name: str, entry_point: str, class_name: str, **extra: Any) -> str:
    return yaml.safe_dump({"name": name, "entry_point": entry_point, "class_name": class_name,
                           "poll_interval": 5, **extra})


@pytest.fixture
def sensor_env(worker_env: None) -> Iterator[None]:
    """The sensor function's pack cache is per process: a fresh database reuses storage keys."""
    service.reset_pack_cache()
    yield
    service.reset_pack_cache()


def register_pack(user: ApiUser, ref: str, files: dict[str, str]) -> dict[str, Any]:
    status, pack = user.post("/api/v1/packs", {"ref": ref, "version": "1.0.0", "files": files})
    assert status == 201, pack
    return dict(pack)


def sensors_of(user: ApiUser) -> dict[str, dict[str, Any]]:
    status, body = user.get("/api/v1/sensors")
    assert status == 200, body
    return {s["name"]: s for s in body["items"]}


def tick(sensor: dict[str, Any], tenant_id: int) -> dict[str, Any]:
    """Invoke the sensor function as the sensor's schedule does (its input, as the scheduler renders it)."""
    found = schedules.get(registry.schedule_name(sensor["id"]))
    assert found is not None, "the sensor has its own schedule"
    event = json.loads(found["Target"]["Input"].replace(registry.SCHEDULED_TIME, "2026-01-27T10:30:00Z"))
    assert event["tenant_id"] == tenant_id
    return dict(handler(event, None))


def events_of(user: ApiUser, trigger_id: int) -> list[dict[str, Any]]:
    status, body = user.get(f"/api/v1/events?trigger_id={trigger_id}")
    assert status == 200, body
    return list(body["items"])


def test_sensors_poll_in_the_sandbox_keep_state_and_record_failures(sensor_env: None, api: Any) -> None:
    # GIVEN a pack with a counting sensor (entry point from the pack root), a raising one and a slow one
    user = register(api)
    register_pack(user, "watchers", {
        "sensors/counter.yaml": sensor_yaml("counter", "sensors/counter.py", "Counter",
                                            parameters={"label": "seed"}),
        "sensors/counter.py": COUNTER_PY,
        "sensors/broken.yaml": sensor_yaml("broken", "broken.py", "Broken"),  # StackStorm's form
        "sensors/broken.py": RAISING_PY,
        "sensors/slow.yaml": sensor_yaml("slow", "slow.py", "Slow", timeout=1),
        "sensors/slow.py": SLOW_PY,
    })
    sensors = sensors_of(user)
    assert set(sensors) == {"counter", "broken", "slow"}
    counter = sensors["counter"]
    assert counter["ref"] == "watchers.counter" and counter["entry_point"] == "sensors/counter.py"
    assert counter["last_poll_at"] is None and counter["events_emitted"] == 0
    status, trigger = user.get(f"/api/v1/triggers/{counter['trigger_id']}")
    assert status == 200 and trigger["type"] == "sensor" and trigger["parameters"] == {"label": "seed"}
    found = schedules.get(registry.schedule_name(counter["id"]))
    assert found is not None and found["ScheduleExpression"] == "rate(5 seconds)" and found["State"] == "ENABLED"

    # WHEN each is polled, the failing ones first
    broken = tick(sensors["broken"], user.tenant_id)
    slow = tick(sensors["slow"], user.tenant_id)
    first = tick(counter, user.tenant_id)
    second = tick(counter, user.tenant_id)

    # THEN the raising and the timed-out polls are recorded, and the other sensor still polled
    assert broken["status"] == "failed" and "RuntimeError: the upstream API said no" in broken["error"]
    assert slow["status"] == "timed_out" and "timed out after 1s" in slow["error"]
    assert first["status"] == second["status"] == "succeeded" and first["events"] == 1
    after = sensors_of(user)
    assert after["broken"]["last_poll_status"] == "failed" and after["broken"]["failures"] == 1
    assert "the upstream API said no" in after["broken"]["last_error"]
    assert "Traceback" in after["broken"]["last_error"], "the traceback is kept for the author"
    assert after["slow"]["last_poll_status"] == "timed_out" and after["slow"]["last_error_at"] is not None
    # AND the state went from None to {"n": 1} to {"n": 2}, each payload an event of the sensor's trigger
    assert after["counter"]["polls"] == 2 and after["counter"]["events_emitted"] == 2
    status, detail = user.get(f"/api/v1/sensors/{counter['id']}")
    assert status == 200 and detail["state"] == {"n": 2}
    payloads = sorted((e["payload"] for e in events_of(user, counter["trigger_id"])), key=lambda p: p["n"])
    assert payloads == [{"n": 1, "label": "seed"}, {"n": 2, "label": "seed"}]

    # AND a failing sensor is polled again next time (and fails again, counted)
    again = tick(sensors["broken"], user.tenant_id)
    assert again["status"] == "failed" and sensors_of(user)["broken"]["failures"] == 2


def test_disable_enable_and_orphan_schedules(sensor_env: None, api: Any) -> None:
    user = register(api)
    register_pack(user, "toggles", {"sensors/counter.yaml": sensor_yaml("counter", "counter.py", "Counter"),
                                    "sensors/counter.py": COUNTER_PY})
    sensor = sensors_of(user)["counter"]
    # WHEN disabled through the API THEN its schedule is disabled and a late fire polls nothing
    status, body = user.patch(f"/api/v1/sensors/{sensor['id']}", {"enabled": False})
    assert status == 200 and body["enabled"] is False
    schedule = schedules.get(registry.schedule_name(sensor["id"]))
    assert schedule is not None and schedule["State"] == "DISABLED"
    event = json.loads(schedule["Target"]["Input"].replace(registry.SCHEDULED_TIME, "2026-01-27T10:30:00Z"))
    assert handler(event, None)["outcome"] == "disabled"
    assert sensors_of(user)["counter"]["polls"] == 0
    # AND re-enabled it polls again
    assert user.patch(f"/api/v1/sensors/{sensor['id']}", {"enabled": True})[0] == 200
    assert handler(event, None)["status"] == "succeeded"
    # AND bad input is a 4xx, never a 500
    assert user.patch(f"/api/v1/sensors/{sensor['id']}", {"enabled": "yes"})[0] == 400
    assert user.patch("/api/v1/sensors/999999", {"enabled": True})[0] == 404
    assert user.get("/api/v1/sensors/not-a-number")[0] == 404
    # WHEN the pack is deleted THEN the sensor and its trigger are gone, and its schedule is removed
    # by the first fire that finds no sensor once the schedule is clearly an orphan
    assert user.delete(f"/api/v1/packs/{sensor['pack_id']}")[0] == 200
    assert sensors_of(user) == {}
    assert user.get(f"/api/v1/triggers/{sensor['trigger_id']}")[0] == 404
    old = {**event, "created": (datetime.now(UTC) - timedelta(minutes=5)).isoformat()}
    assert handler(event, None)["outcome"] == "pending", "a young schedule may belong to an uncommitted pack"
    assert handler(old, None)["outcome"] == "orphan_deleted"
    assert schedules.get(registry.schedule_name(sensor["id"])) is None


def test_reload_keeps_state_updates_and_removes_sensors(sensor_env: None, api: Any) -> None:
    user = register(api)
    files = {"sensors/counter.yaml": sensor_yaml("counter", "counter.py", "Counter"),
             "sensors/counter.py": COUNTER_PY,
             "sensors/broken.yaml": sensor_yaml("broken", "broken.py", "Broken"),
             "sensors/broken.py": RAISING_PY}
    pack = register_pack(user, "reloaded", files)
    sensor = sensors_of(user)["counter"]
    tick(sensor, user.tenant_id)
    # WHEN the pack is reloaded with a slower counter and without the broken sensor
    files["sensors/counter.yaml"] = sensor_yaml("counter", "counter.py", "Counter", poll_interval=120)
    del files["sensors/broken.yaml"], files["sensors/broken.py"]
    status, _ = user.post(f"/api/v1/packs/{pack['id']}/reload", {"files": files})
    assert status == 200
    # THEN the counter keeps its id, trigger and state, on a schedule of whole minutes
    after = sensors_of(user)
    assert set(after) == {"counter"} and after["counter"]["id"] == sensor["id"]
    assert after["counter"]["poll_interval"] == 120
    assert user.get(f"/api/v1/sensors/{sensor['id']}")[1]["state"] == {"n": 1}
    assert tick(after["counter"], user.tenant_id)["status"] == "succeeded"
    assert user.get(f"/api/v1/sensors/{sensor['id']}")[1]["state"] == {"n": 2}


@pytest.mark.parametrize(("files", "problem"), [
    ({"sensors/s.yaml": "entry_point: s.py\nclass_name: S\n"}, "no 'sensors/s.py'"),
    ({"sensors/s.yaml": "entry_point: s.py\nclass_name: Other\n", "sensors/s.py": COUNTER_PY},
     "defines no top-level class 'Other'"),
    ({"sensors/s.yaml": "entry_point: s.py\nclass_name: S\npoll_interval: 0\n", "sensors/s.py": COUNTER_PY},
     "poll_interval"),
])
def test_bad_sensor_files_refuse_the_pack(api: Any, files: dict[str, str], problem: str) -> None:
    user = register(api)
    status, body = user.post("/api/v1/packs", {"ref": "bad", "version": "1.0.0", "files": files})
    assert status == 400 and problem in body["error"]["message"] and "sensors/s.yaml" in body["error"]["message"]
    assert user.get("/api/v1/packs/bad")[0] == 404, "nothing of the pack was stored"


def test_only_allowed_directories_are_mounted_for_a_tenant(
    sensor_env: None, api: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a directory the operator allows tenant A's sensors to watch, and a file in it
    watched = tmp_path / "watched"
    watched.mkdir(mode=0o755)
    target = watched / "status.txt"
    target.write_text("all good\n")
    target.chmod(0o644)
    a, b = register(api, "alice"), register(api, "bob")
    monkeypatch.setenv("ATTUNE_SENSOR_WATCH_DIRS", f"{a.username}={watched}")
    files = {"sensors/reader.yaml": sensor_yaml("reader", "reader.py", "Reader", parameters={"path": str(target)}),
             "sensors/reader.py": READER_PY}
    register_pack(a, "readers", files)
    register_pack(b, "readers", files)
    # WHEN both tenants' sensors poll the same path
    sensor_a, sensor_b = sensors_of(a)["reader"], sensors_of(b)["reader"]
    assert tick(sensor_a, a.tenant_id)["status"] == "succeeded"
    assert tick(sensor_b, b.tenant_id)["status"] == "succeeded"
    # THEN A's sensor read the file; B's sees no such file (in the sandbox), unless sandboxing is off
    seen_a = events_of(a, sensor_a["trigger_id"])[0]["payload"]
    seen_b = events_of(b, sensor_b["trigger_id"])[0]["payload"]
    assert seen_a == {"content": "all good\n"}
    from chalicelib.runners import sandbox

    if sandbox.available():
        assert seen_b == {"error": "FileNotFoundError"}


def test_a_sensor_of_a_pack_with_requirements_runs_in_its_virtualenv(
    sensor_env: None, api: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a pack whose requirements.txt pins a library (installed from the registry, as for actions)
    monkeypatch.setenv("ATTUNE_DEPS_DIR", str(tmp_path / "deps"))
    from chalicelib.config import settings

    settings.cache_clear()
    user = register(api)
    code = textwrap.dedent("""\
        import six

        class Which:
            def poll(self, state):
                return [{"six": six.__version__}], state
        """)
    register_pack(user, "venvs", {"requirements.txt": "six==1.16.0\n",
                                  "sensors/which.yaml": sensor_yaml("which", "which.py", "Which"),
                                  "sensors/which.py": code})
    # WHEN it polls THEN it ran on the pack's virtualenv
    sensor = sensors_of(user)["which"]
    result = tick(sensor, user.tenant_id)
    assert result["status"] == "succeeded", result
    assert events_of(user, sensor["trigger_id"])[0]["payload"] == {"six": "1.16.0"}
    settings.cache_clear()


def test_state_is_json_in_postgresql(sensor_env: None, api: Any) -> None:
    user = register(api)
    register_pack(user, "json", {"sensors/counter.yaml": sensor_yaml("counter", "counter.py", "Counter"),
                                 "sensors/counter.py": COUNTER_PY})
    sensor = sensors_of(user)["counter"]
    tick(sensor, user.tenant_id)
    with system_tx() as cur:
        cur.execute("SELECT jsonb_typeof(state) AS t, state->>'n' AS n FROM attune.sensor WHERE id = %s",
                    (sensor["id"],))
        row = cur.fetchone()
    assert row == {"t": "object", "n": "1"}


def test_on_aws_a_minute_invocation_spreads_sub_minute_polls(
    sensor_env: None, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.aws import queues
    from chalicelib.aws.clients import client
    from chalicelib.models.sensors import SensorPoll, SensorTick

    # GIVEN EventBridge Scheduler's own rates (no sub-minute ones), and a sensor polling every 20 s
    monkeypatch.setattr(registry, "second_rates", lambda: False)
    user = register(api)
    register_pack(user, "aws", {"sensors/counter.yaml": sensor_yaml("counter", "counter.py", "Counter",
                                                                    poll_interval=20),
                                "sensors/counter.py": COUNTER_PY})
    sensor = sensors_of(user)["counter"]
    found = schedules.get(registry.schedule_name(sensor["id"]))
    assert found is not None and found["ScheduleExpression"] == "rate(1 minute)"
    url = queues.queue_url("sensor-polls")
    client("sqs").purge_queue(QueueUrl=url)
    # WHEN its minute schedule fires on the sensor's grid
    created = datetime.fromisoformat(sensor["created"].replace("Z", "+00:00"))
    minute = created + timedelta(seconds=60)
    report = service.tick(SensorTick(tenant_id=user.tenant_id, sensor_id=sensor["id"], interval=20,
                                     created=created, scheduled_time=minute), now=minute)
    # THEN it polled the first of the minute's three polls at once and sent the other two, delayed
    assert report.outcome == "spread" and report.polled is not None and report.polled.status == "succeeded"
    assert report.sent == 2
    attrs = client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    assert int(attrs["Attributes"]["ApproximateNumberOfMessagesDelayed"]) == 2
    # AND a delayed poll, when it arrives, polls the sensor again (from its state)
    body = SensorPoll(tenant_id=user.tenant_id, sensor_id=sensor["id"], due_at=minute + timedelta(seconds=20))
    record = {"messageId": "1", "receiptHandle": "r", "body": body.model_dump_json(), "attributes": {},
              "messageAttributes": {}, "eventSource": "aws:sqs"}
    assert handler({"Records": [record]}, None) == {"batchItemFailures": []}
    assert user.get(f"/api/v1/sensors/{sensor['id']}")[1]["state"] == {"n": 2}


def test_the_local_scheduler_fires_a_sensors_second_rate_schedule(sensor_env: None, api: Any) -> None:
    import time

    from chalicelib.local.provision import lambda_handlers, load_template
    from chalicelib.local.scheduler import Scheduler

    # GIVEN a registered sensor (its schedule is rate(5 seconds), naming the sensor function)
    user = register(api)
    register_pack(user, "local", {"sensors/counter.yaml": sensor_yaml("counter", "counter.py", "Counter"),
                                  "sensors/counter.py": COUNTER_PY})
    sensor = sensors_of(user)["counter"]
    function = schedules.function_arn(registry.FUNCTION).split(":")[6]
    handler_path = lambda_handlers(load_template())[function]
    assert handler_path == "functions.sensors.app.handler", "the template maps the function to its handler"
    # WHEN the local scheduler (with only that function: the ticker is not under test) reads the
    # schedules and the sensor's first occurrences come due
    scheduler = Scheduler({function: handler_path}, group_prefix=schedules.group())
    scheduler.refresh()
    tracked = [t for t in scheduler.schedules().values() if t.name == registry.schedule_name(sensor["id"])]
    assert len(tracked) == 1 and tracked[0].expression == se_rate(5)
    fired = scheduler.fire_due(tracked[0].window.anchor + timedelta(seconds=5))
    # THEN it invoked the sensor function, which polled the sensor
    assert tracked[0].arn in [f.schedule_arn for f in fired]
    deadline = time.monotonic() + 30
    while sensors_of(user)["counter"]["polls"] < 1:
        assert time.monotonic() < deadline, "the scheduler's invocation never polled"
        time.sleep(0.1)
    assert sensors_of(user)["counter"]["events_emitted"] == 1


def se_rate(seconds: int) -> Any:
    from chalicelib.local import schedule_expressions as se

    return se.Rate(seconds=seconds)


def test_schedules_an_emulator_lost_are_made_again(sensor_env: None, api: Any) -> None:
    # GIVEN a sensor whose schedule is gone (moto restarted with the local cloud)
    user = register(api)
    register_pack(user, "restored", {"sensors/counter.yaml": sensor_yaml("counter", "counter.py", "Counter"),
                                     "sensors/counter.py": COUNTER_PY})
    sensor = sensors_of(user)["counter"]
    assert schedules.delete(registry.schedule_name(sensor["id"]))
    # WHEN the scheduler role restores schedules THEN it is back, and nothing else was made twice
    assert registry.restore_schedules() == 1
    found = schedules.get(registry.schedule_name(sensor["id"]))
    assert found is not None and found["ScheduleExpression"] == "rate(5 seconds)"
    assert registry.restore_schedules() == 0


# ---------------------------------------------------------------- on AWS: polls in the runner function --
RUNNER = "attune-test-action-runner"
POLL_KEYS = {"kind", "sensor_id", "entry_point", "class_name", "pack_url", "state", "parameters", "timeout_s"}


class RunnerLambda:
    """What Lambda does with the sensor function's RequestResponse invoke of ActionRunnerFunction, in process.

    moto's Lambda cannot run code without Docker: the JSON payload goes to
    functions/runner/app.py's handler and its JSON answer comes back, as in
    tests/integration/test_remote_runner.py. `crash`, when set, is answered
    instead, as lambdas.invoke_runner reports a FunctionError.
    """

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.crash: dict[str, Any] | None = None

    def __call__(self, function_name: str, payload: dict[str, Any], **_: Any) -> dict[str, Any]:
        from functions.runner import app as runner_app

        assert function_name == RUNNER
        sent = json.loads(json.dumps(payload))
        self.payloads.append(sent)
        if self.crash is not None:
            return self.crash
        reply: dict[str, Any] = json.loads(json.dumps(runner_app.handler(sent, None)))
        return reply


@pytest.fixture
def runner_lambda(sensor_env: None, monkeypatch: pytest.MonkeyPatch) -> RunnerLambda:
    """The sensor function as deployed: a runner function named, local polls impossible."""
    import urllib.request

    from chalicelib.aws import lambdas
    from functions.runner import app as runner_app

    monkeypatch.setenv("ATTUNE_ACTION_RUNNER_FUNCTION", RUNNER)
    fake = RunnerLambda()

    def fetch_over_http(url: str, dest: Path) -> Path:  # the runner accepts https only; moto serves http
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - moto's own endpoint
            return runner_app.unpack_pack(resp.read(), dest)

    def no_local_poll(job: Any) -> Any:
        raise AssertionError("the sensor function polled tenant code itself")

    monkeypatch.setattr(lambdas, "invoke_runner", fake)
    monkeypatch.setattr(runner_app, "fetch_pack", fetch_over_http)
    monkeypatch.setattr(service, "run_poll", no_local_poll)
    return fake


def test_on_aws_a_poll_runs_in_the_runner_function_and_the_sensor_function_records_it(
    runner_lambda: RunnerLambda, api: Any
) -> None:
    # GIVEN a pack with a counting sensor and a raising one, the sensor function told the runner function
    user = register(api)
    register_pack(user, "remote", {
        "sensors/counter.yaml": sensor_yaml("counter", "sensors/counter.py", "Counter", parameters={"label": "aws"}),
        "sensors/counter.py": COUNTER_PY,
        "sensors/broken.yaml": sensor_yaml("broken", "broken.py", "Broken"),
        "sensors/broken.py": RAISING_PY,
    })
    sensors = sensors_of(user)
    counter = sensors["counter"]
    # WHEN the counter's schedule fires twice and the broken one's once
    first = tick(counter, user.tenant_id)
    second = tick(counter, user.tenant_id)
    broken = tick(sensors["broken"], user.tenant_id)
    # THEN each poll was one invocation carrying the poll and nothing of the platform's
    assert [p["sensor_id"] for p in runner_lambda.payloads] == [counter["id"], counter["id"], sensors["broken"]["id"]]
    sent = runner_lambda.payloads[0]
    assert set(sent) == POLL_KEYS and sent["kind"] == "sensor_poll"
    assert sent["entry_point"] == "sensors/counter.py" and sent["class_name"] == "Counter"
    assert sent["parameters"] == {"label": "aws"} and sent["state"] is None
    assert runner_lambda.payloads[1]["state"] == {"n": 1}, "the state kept in PostgreSQL travels to the next poll"
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(sent["pack_url"]).query)
    assert "X-Amz-Signature" in query and "X-Amz-Expires" in query, "a presigned GET of the pack archive"
    assert "postgres" not in json.dumps(runner_lambda.payloads)
    # AND the sensor function recorded the state and emitted each payload as an event
    assert first["status"] == second["status"] == "succeeded" and first["events"] == 1
    assert user.get(f"/api/v1/sensors/{counter['id']}")[1]["state"] == {"n": 2}
    payloads = sorted((e["payload"] for e in events_of(user, counter["trigger_id"])), key=lambda p: p["n"])
    assert payloads == [{"n": 1, "label": "aws"}, {"n": 2, "label": "aws"}]
    # AND the raising sensor's failure came back from the runner and was recorded, traceback included
    assert broken["status"] == "failed" and "RuntimeError: the upstream API said no" in broken["error"]
    after = sensors_of(user)["broken"]
    assert after["failures"] == 1 and "Traceback" in after["last_error"]


def test_on_aws_a_crashed_runner_or_a_bad_answer_is_the_polls_failure_and_the_state_is_kept(
    runner_lambda: RunnerLambda, api: Any
) -> None:
    user = register(api)
    register_pack(user, "crashy", {"sensors/counter.yaml": sensor_yaml("counter", "counter.py", "Counter"),
                                   "sensors/counter.py": COUNTER_PY})
    counter = sensors_of(user)["counter"]
    assert tick(counter, user.tenant_id)["status"] == "succeeded"
    # WHEN the runner function crashes (Lambda's FunctionError, as lambdas.invoke_runner reports it)
    runner_lambda.crash = {"status": "failed", "exit_code": None, "stdout": "", "stderr": "", "output": None,
                           "error": "the action runner function failed: Runtime.OutOfMemory: killed",
                           "timed_out": False, "pid": None, "duration_s": 0.0}
    crashed = tick(counter, user.tenant_id)
    # AND then answers something that is not a poll result
    runner_lambda.crash = {"status": "succeeded", "payloads": "not a list", "state": None, "error": None,
                           "duration_s": 0.1}
    garbled = tick(counter, user.tenant_id)
    # THEN both are recorded as failed polls, and the state of the last good poll is kept
    assert crashed["status"] == "failed" and "Runtime.OutOfMemory" in crashed["error"]
    assert garbled["status"] == "failed" and "unreadable poll result (payloads" in garbled["error"]
    assert user.get(f"/api/v1/sensors/{counter['id']}")[1]["state"] == {"n": 1}
    assert sensors_of(user)["counter"]["failures"] == 2
    assert len(events_of(user, counter["trigger_id"])) == 1


def test_on_aws_a_sensor_whose_pack_has_requirements_is_refused_without_an_invocation(
    runner_lambda: RunnerLambda, api: Any
) -> None:
    user = register(api)
    register_pack(user, "deps", {"requirements.txt": "six==1.16.0\n",
                                 "sensors/counter.yaml": sensor_yaml("counter", "counter.py", "Counter"),
                                 "sensors/counter.py": COUNTER_PY})
    result = tick(sensors_of(user)["counter"], user.tenant_id)
    assert result["status"] == "failed" and "requirements.txt" in result["error"]
    assert "container/ECS worker" in result["error"]
    assert runner_lambda.payloads == []


def test_the_runner_function_refuses_a_malformed_poll_as_a_failed_poll() -> None:
    from functions.runner import app as runner_app

    reply = runner_app.handler({"kind": "sensor_poll", "sensor_id": 1, "entry_point": "s.py"}, None)
    assert reply["status"] == "failed" and "invalid payload" in reply["error"] and reply["payloads"] == []
    reply = runner_app.handler({"kind": "sensor_poll", "sensor_id": 1, "entry_point": "s.py", "class_name": "S",
                                "pack_url": "http://example.com/p.tgz", "state": None, "parameters": {},
                                "timeout_s": 5.0}, None)
    assert reply["status"] == "failed" and "https" in reply["error"]
