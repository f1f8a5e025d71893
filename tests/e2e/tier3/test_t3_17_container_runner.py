"""T3.17 Container runner: an action runs in its Docker image, confined, and the container is removed.

These machines have no container engine. What must hold everywhere: a
container action never hangs or reaches a worker process that cannot run
it — it fails at once with "container engine unavailable: ..." and the
worker takes the next execution. The in-container criteria run only where
an engine answers; elsewhere that part skips with the engine's reason.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.e2e.client import Cloud
from tests.e2e.flow import register_pack, run_action, unique_ref

JOB_PY = 'import json, sys\nprint(json.dumps({"in_container": True, "got": json.load(sys.stdin)}))\n'


def _engine_answers() -> str | None:
    for name in ("docker", "podman"):
        cli = shutil.which(name)
        if cli and subprocess.run([cli, "info"], capture_output=True, timeout=10, check=False).returncode == 0:
            return cli
    return None


def test_container_action(cloud: Cloud) -> None:
    user = cloud.register("t317")
    ref = unique_ref("ctr")
    spec = {"name": "job", "runner_type": "container", "image": "python:3.11-slim",
            "entry_point": "actions/job.py", "parameters": {"n": {"type": "integer"}}}
    register_pack(user, ref, {"actions/job.yaml": yaml.safe_dump(spec), "actions/job.py": JOB_PY})
    execution = run_action(user, f"{ref}.job", {"n": 3})
    cli = _engine_answers()
    if cli is None:
        # THEN without an engine it failed at once, saying so, and the worker still serves
        assert execution["status"] == "failed", execution
        assert execution["result"]["error"].startswith("container engine unavailable: "), execution["result"]
        assert execution["started"] is not None and execution["result"]["exit_code"] is None
        assert run_action(user, "core.echo", {"message": "after"})["status"] == "succeeded"
        pytest.skip(f"no container engine answers here: {execution['result']['error']}")
    # THEN with an engine: it ran in the image with its code mounted, parameters on stdin ...
    assert execution["status"] == "succeeded", execution
    assert execution["result"]["output"] == {"in_container": True, "got": {"n": 3}}
    # ... AND no container of this execution is left
    left = subprocess.run([cli, "ps", "-a", "--filter", f"name=attune-exec-{execution['id']}-", "-q"],
                          capture_output=True, text=True, timeout=30, check=False).stdout.strip()
    assert left == ""
