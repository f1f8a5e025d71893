"""A pack's `sensors/<name>.yaml`: parsed, checked against the pack's files, refused with the file's name. Pure."""

from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib.config import parse_watch_dirs
from chalicelib.core.errors import ValidationFailed
from chalicelib.core.packs import entry_point_path, parse_sensors
from chalicelib.sensors.runner import allowed_dirs

WATCH_PY = b"""\
import os

class FileWatchSensor:
    def poll(self, state):
        return [], state
"""


def files(yaml_text: str, **extra: bytes) -> dict[str, bytes]:
    found = {"sensors/watch.yaml": yaml_text.encode(), "sensors/watch.py": WATCH_PY}
    found.update({k.replace("__", "/"): v for k, v in extra.items()})
    return found


def test_a_sensor_yaml_with_every_field() -> None:
    # GIVEN the fields the seed's sensor needs, StackStorm's `trigger_types` among them
    text = """\
name: file_watch
description: Fires when the watched file changes
entry_point: sensors/watch.py
class_name: FileWatchSensor
poll_interval: 2
timeout: 10
parameters: {path: /srv/watched/status.txt}
trigger_types: [{name: file_changed}]
"""
    (sensor,) = parse_sensors("watchers", files(text))
    # THEN it is one sensor, ref'd by pack and name, its file found from the pack root
    assert sensor.name == "file_watch" and sensor.ref == "watchers.file_watch"
    assert sensor.source == "sensors/watch.yaml" and sensor.path == "sensors/watch.py"
    f = sensor.fields
    assert (f.class_name, f.poll_interval, f.timeout, f.enabled) == ("FileWatchSensor", 2, 10, True)
    assert f.parameters == {"path": "/srv/watched/status.txt"}


def test_defaults_and_the_stackstorm_entry_point_form() -> None:
    # GIVEN only entry_point (from sensors/, StackStorm's way) and class_name
    (sensor,) = parse_sensors("p", files("entry_point: watch.py\nclass_name: FileWatchSensor\n"))
    # THEN the name is the file's, the poll interval StackStorm's default minute, no parameters
    assert sensor.name == "watch" and sensor.path == "sensors/watch.py"
    assert sensor.fields.poll_interval == 60 and sensor.fields.timeout is None and sensor.fields.parameters == {}


def test_both_entry_point_forms_name_the_same_file() -> None:
    assert entry_point_path("watch.py", "sensors") == entry_point_path("sensors/watch.py", "sensors")
    assert entry_point_path("lib/watch.py", "sensors") == "sensors/lib/watch.py"
    assert entry_point_path("process.py") == "actions/process.py", "actions keep their directory"


def test_no_sensor_files_no_sensors() -> None:
    assert parse_sensors("p", {"actions/a.yaml": b"runner_type: python3\n", "sensors/README.md": b"x"}) == []


@pytest.mark.parametrize(("text", "extra", "problem"), [
    ("entry_point: nothere.py\nclass_name: X\n", {}, "no 'sensors/nothere.py'"),
    ("entry_point: watch.py\nclass_name: Missing\n", {}, "defines no top-level class 'Missing'"),
    ("entry_point: watch.py\nclass_name: FileWatchSensor\npoll_interval: 0\n", {}, "poll_interval"),
    ("entry_point: watch.py\nclass_name: FileWatchSensor\npoll_interval: '5'\n", {}, "poll_interval"),
    ("entry_point: watch.py\nclass_name: FileWatchSensor\ntimeout: 100000\n", {}, "timeout"),
    ("entry_point: watch.py\nclass_name: not-an-identifier\n", {}, "class_name"),
    ("entry_point: watch.py\nclass_name: FileWatchSensor\nunknown: 1\n", {}, "unknown"),
    ("entry_point: watch.py\nclass_name: FileWatchSensor\npack: other\n", {}, "pack"),
    ("name: 'bad name!'\nentry_point: watch.py\nclass_name: FileWatchSensor\n", {}, "sensor name"),
    ("class_name: FileWatchSensor\n", {}, "entry_point"),
    ("- a list\n", {}, "expected a mapping"),
    ("entry_point: ../../etc/passwd\nclass_name: X\n", {}, "must stay inside the pack"),
    ("entry_point: notes.txt\nclass_name: X\n", {"sensors__notes.txt": b"hello"}, "must name a Python file"),
    ("entry_point: broken.py\nclass_name: X\n", {"sensors__broken.py": b"class X(:\n"}, "not valid Python"),
])
def test_bad_sensor_files_are_refused_naming_the_file(text: str, extra: dict[str, bytes], problem: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_sensors("p", files(text, **extra))
    assert problem in caught.value.message
    assert "sensors/" in caught.value.message


def test_two_files_may_not_define_one_sensor() -> None:
    found = files("name: w\nentry_point: watch.py\nclass_name: FileWatchSensor\n")
    found["sensors/again.yml"] = b"name: w\nentry_point: watch.py\nclass_name: FileWatchSensor\n"
    with pytest.raises(ValidationFailed, match="already defined"):
        parse_sensors("p", found)


# -- which directories a tenant's sensors see --------------------------------------------------
def test_watch_dirs_setting_names_tenants_and_absolute_dirs() -> None:
    assert parse_watch_dirs(None) == () and parse_watch_dirs("") == ()
    assert parse_watch_dirs("alice=/srv/a:/srv/b; *=/srv/shared/ ") == (
        ("alice", ("/srv/a", "/srv/b")), ("*", ("/srv/shared",)))
    for bad in ("alice", "=/srv/a", "alice=", "alice=relative/dir"):
        with pytest.raises(ValueError, match="ATTUNE_SENSOR_WATCH_DIRS"):
            parse_watch_dirs(bad)


def test_a_tenant_sees_its_own_and_everyones_dirs_only_when_they_exist(tmp_path: Path) -> None:
    mine, shared, theirs = (tmp_path / n for n in ("mine", "shared", "theirs"))
    for d in (mine, shared, theirs):
        d.mkdir()
    configured = (("alice", (str(mine), str(tmp_path / "missing"))), ("*", (str(shared),)),
                  ("bob", (str(theirs),)))
    assert allowed_dirs("alice", configured) == (mine, shared)
    assert allowed_dirs("carol", configured) == (shared,)
    assert allowed_dirs("carol", ()) == (), "none by default"
