"""T3.26 Pack update/reload: new code for new executions, the old code for the one in flight, no restart.

Version 1.0.0's action sleeps, then reports its version; while one of its
executions runs, the pack is reloaded as 1.1.0 with changed code; that
execution still finishes on 1.0.0's code (it is pinned to the version current
when it was requested), the next runs 1.1.0's, and the API never stopped
answering. Dependencies (the virtualenv) are the python-packs work (T2.12).
"""

from __future__ import annotations

from datetime import datetime

import yaml

from tests.e2e.client import Cloud
from tests.e2e.flow import get_execution, poll, register_pack, run_action, unique_ref, wait_final

CODE = """\
import time


def run(pause):
    time.sleep(pause)
    return {{"version": "{version}"}}
"""
SPEC = yaml.safe_dump({"name": "report", "runner_type": "python3", "entry_point": "actions/report.py",
                       "parameters": {"pause": {"type": "number", "default": 0}}})


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _files(version: str) -> dict[str, str]:
    return {"actions/report.yaml": SPEC, "actions/report.py": CODE.format(version=version)}


def test_reload_serves_new_code_and_lets_the_old_finish(cloud: Cloud) -> None:
    user = cloud.register("t326")
    ref = unique_ref("reload")
    # GIVEN version 1.0.0 of a pack, whose action ran once
    register_pack(user, ref, {**_files("1.0.0"), "pack.yaml": f"ref: {ref}\nversion: 1.0.0\n"})
    assert run_action(user, f"{ref}.report", {})["result"]["output"] == {"version": "1.0.0"}
    # AND an execution of it in flight (running, sleeping 4 s)
    created = user.post("/api/v1/executions", {"action_ref": f"{ref}.report", "parameters": {"pause": 4}})
    in_flight = created.json()["id"]
    poll(lambda: get_execution(user, in_flight)["status"] == "running", "the in-flight execution to run", cloud)
    # WHEN the pack is reloaded as 1.1.0 with changed code
    new_files = {**_files("1.1.0"), "pack.yaml": f"ref: {ref}\nversion: 1.1.0\n"}
    reloaded = user.post(f"/api/v1/packs/{ref}/reload", {"version": "1.1.0", "files": new_files})
    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json()["version"] == "1.1.0", reloaded.json()
    # (the action's definition is unchanged, only its code: no action added, updated or removed)
    assert reloaded.json()["changes"] == {"added": [], "updated": [], "removed": []}
    # THEN a new execution runs the new code at once, while the old one is still running (no restart)
    new = run_action(user, f"{ref}.report", {})
    assert new["result"]["output"] == {"version": "1.1.0"}
    # AND the in-flight execution finished on the code it started with, after the new one (it was in flight)
    old = wait_final(user, in_flight)
    assert old["status"] == "succeeded" and old["result"]["output"] == {"version": "1.0.0"}, old
    assert _at(new["finished"]) < _at(old["finished"])
    # AND the API answered throughout
    assert user.get("/health").status_code == 200
