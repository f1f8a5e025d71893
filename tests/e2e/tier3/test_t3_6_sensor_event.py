"""T3.6 Sensor-generated custom event: a file-watch sensor polls a file; a change is an event → rule → execution.

The sensor runs in the sandbox actions use, which mounts (read-only) only the
directories the operator allows for a tenant: the e2e cloud allows one
(`ATTUNE_SENSOR_WATCH_DIRS`, tests/e2e/conftest.py), and the watched file lives
there. On AWS the same sensor would watch an S3 object or an HTTP endpoint
instead (docs/sensors.md).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.client import Cloud, User
from tests.e2e.flow import (
    RETURN_PARAMS_PY,
    action_files,
    create_rule,
    execution_for,
    items,
    poll,
    register_pack,
    unique_ref,
    wait_final,
)

POLL_INTERVAL_S = 1
# What the rule passes on from the sensor's event (content is null once the file is deleted).
RECORD_PARAMETERS: dict[str, Any] = {"change": {"type": "string"}, "content": {}, "path": {"type": "string"}}

# The custom sensor's code, loaded from the pack when it is registered (seed step 2).
FILE_WATCH_PY = '''\
import hashlib
import os


class FileWatchSensor:
    """Emits an event whenever the watched file appears, changes or disappears."""

    def __init__(self, config):
        self.path = config["path"]

    def poll(self, state):
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = None
        digest = None if data is None else hashlib.sha256(data).hexdigest()
        seen = (state or {}).get("sha256")
        if state is None or digest == seen:
            return [], {"sha256": digest}  # the first poll only learns what is there
        change = "deleted" if digest is None else ("created" if seen is None else "modified")
        payload = {"path": self.path, "change": change, "sha256": digest,
                   "content": None if data is None else data.decode("utf-8", "replace"),
                   "size": None if data is None else len(data)}
        return [payload], {"sha256": digest}
'''


def sensor_files(path: Path) -> dict[str, str]:
    spec = {"name": "file_watch", "description": "Polls a file for changes", "entry_point": "sensors/file_watch.py",
            "class_name": "FileWatchSensor", "poll_interval": POLL_INTERVAL_S, "parameters": {"path": str(path)}}
    return {"sensors/file_watch.yaml": yaml.safe_dump(spec, sort_keys=False), "sensors/file_watch.py": FILE_WATCH_PY}


def sensor_of(user: User, name: str) -> dict[str, Any]:
    found = [s for s in items(user, "/api/v1/sensors") if s["name"] == name]
    assert len(found) == 1, found
    return found[0]


def test_file_watch_sensor_event_triggers_an_execution(cloud: Cloud, sensor_watch_dir: Path) -> None:
    user = cloud.register("t36")
    watched = sensor_watch_dir / f"status-{uuid.uuid4().hex[:8]}.txt"
    watched.write_text("state: green\n")
    watched.chmod(0o644)
    ref = unique_ref("t36")

    # GIVEN the custom sensor (steps 1-3: its code deployed with its pack, its trigger made with it)
    record = action_files("record", "python3", RETURN_PARAMS_PY, RECORD_PARAMETERS)
    pack = register_pack(user, ref, {**sensor_files(watched), **record})
    sensor = sensor_of(user, "file_watch")
    assert sensor["ref"] == f"{ref}.file_watch" and sensor["pack_id"] == pack["id"]
    trigger = user.get(f"/api/v1/triggers/{sensor['trigger_id']}").json()
    assert trigger["type"] == "sensor" and trigger["parameters"] == {"path": str(watched)}
    # AND it polls on its interval: its first polls learn the file (no event for what was already there)
    polled = poll(lambda: (s := sensor_of(user, "file_watch"))["polls"] >= 2 and s, "two polls", cloud, timeout=30)
    assert polled["last_poll_status"] == "succeeded" and polled["last_error"] is None, polled
    assert polled["events_emitted"] == 0
    # AND a rule on the sensor's trigger (step 4)
    rule = create_rule(user, sensor["trigger_id"], f"{ref}.record",
                       parameters={"change": "{{ trigger.data.change }}", "content": "{{ trigger.data.content }}",
                                   "path": "{{ trigger.data.path }}"})

    # WHEN the monitored file is modified (step 5)
    watched.write_text("state: red\nreason: disk full\n")

    # THEN the sensor detects the change and one event carries its data (steps 6-7)
    events = poll(lambda: items(user, "/api/v1/events", trigger_id=sensor["trigger_id"]), "the sensor's event",
                  cloud, timeout=30)
    assert len(events) == 1, events
    payload = events[0]["payload"]
    assert payload["change"] == "modified" and payload["path"] == str(watched)
    assert payload["content"] == "state: red\nreason: disk full\n" and payload["size"] == 29
    assert events[0]["status"] == "accepted" and events[0]["depth"] == 0
    # AND the rule evaluates it and its execution runs with the sensor's data (step 8)
    enforcement = poll(lambda: items(user, "/api/v1/enforcements", rule_id=rule["id"]), "the enforcement", cloud)[0]
    execution = wait_final(user, execution_for(user, enforcement["id"])["id"])
    assert execution["status"] == "succeeded", execution
    assert execution["result"]["output"] == {"change": "modified", "content": payload["content"],
                                             "path": str(watched)}
    assert execution["trace"] == events[0]["trace"]
    # AND the sensor's record shows what it did
    after = poll(lambda: (s := sensor_of(user, "file_watch"))["events_emitted"] >= 1 and s, "the count", cloud)
    assert after["last_poll_at"] is not None and after["trigger_id"] == sensor["trigger_id"]

    # WHEN polling is disabled THEN a further change makes no event (and enabling brings it back)
    assert user.patch(f"/api/v1/sensors/{sensor['id']}", {"enabled": False}).status_code == 200
    stopped_at = sensor_of(user, "file_watch")["polls"]
    watched.unlink()
    assert user.patch(f"/api/v1/sensors/{sensor['id']}", {"enabled": True}).status_code == 200
    deleted = poll(lambda: [e for e in items(user, "/api/v1/events", trigger_id=sensor["trigger_id"])
                            if e["payload"]["change"] == "deleted"], "the deletion's event", cloud, timeout=30)
    assert len(deleted) == 1 and sensor_of(user, "file_watch")["polls"] > stopped_at


def test_a_sensor_cannot_read_outside_the_allowed_directories(cloud: Cloud, sensor_watch_dir: Path) -> None:
    # GIVEN a sensor pointed at a file the operator did not allow (the cloud's own data dir)
    if not cloud.http.get("/health").json().get("sandbox"):
        pytest.skip("no sandbox on this machine (bubblewrap): sensors run unconfined")
    user = cloud.register("t36b")
    secret = cloud.log_path if cloud.log_path is not None else Path("/etc/shadow")
    ref = unique_ref("t36b")
    register_pack(user, ref, sensor_files(secret))
    sensor = sensor_of(user, "file_watch")
    # WHEN it polls THEN it never sees the file: its first polls find nothing there to report on
    polled = poll(lambda: (s := sensor_of(user, "file_watch"))["polls"] >= 2 and s, "two polls", cloud, timeout=30)
    assert polled["last_poll_status"] == "succeeded", polled
    detail = user.get(f"/api/v1/sensors/{sensor['id']}").json()
    assert detail["state"] == {"sha256": None}, "inside the sandbox the file does not exist"
