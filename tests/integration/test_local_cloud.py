"""`attune dev` end to end: ready only when healthy, a killed role comes back, a stop leaves nothing.

Runs a second cloud on free ports and a temporary data dir, as e2e suites do,
and reads `<data_dir>/cloud.json` to find its processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from chalicelib.local.moto_server import free_port
from tests.integration.conftest_aws import eventually

pytestmark = pytest.mark.integration


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture
def local_cloud(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, str]]:
    api_port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("ATTUNE_DATABASE_URL", "AWS_ENDPOINT_URL", "ATTUNE_STACK_NAME")}
    log = (tmp_path / "dev.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "chalicelib.cli", "dev", "--api-port", str(api_port),
         "--ws-port", str(free_port()), "--moto-port", str(free_port()),
         "--data-dir", str(tmp_path / "data")],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[2])
    try:
        yield proc, tmp_path / "data" / "cloud.json", f"http://127.0.0.1:{api_port}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        log.close()


def _info(cloud_file: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(cloud_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data


def test_the_local_cloud_runs_heals_and_stops_clean(
    local_cloud: tuple[subprocess.Popen[bytes], Path, str],
) -> None:
    proc, cloud_file, api = local_cloud

    # GIVEN a cloud that said it is ready
    info = eventually(lambda: (i := _info(cloud_file)) and i.get("ready") and i, timeout=90,
                      message="cloud ready")
    assert _get(f"{api}/health")[0] == 200
    status, body = _get(f"{api}/no/such/route")
    assert status == 404
    assert body["error"]["code"] == "not_found"

    # WHEN a role is killed THEN it comes back alone, and health is green again
    victim = info["roles"]["scheduler"]
    os.kill(victim, signal.SIGKILL)
    eventually(lambda: (i := _info(cloud_file)) and i["roles"].get("scheduler") not in (None, victim),
               timeout=30, message="role restarted")
    eventually(lambda: _get(f"{api}/health")[0] == 200, timeout=30, message="healthy again")
    info = _info(cloud_file)
    assert info is not None

    # WHEN the supervisor gets SIGTERM THEN it exits 0 and nothing it started still runs
    pids = [*info["roles"].values(), info["moto_pid"], info["postgres_pid"], info["template_pid"]]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(40) == 0
    alive = [p for p in pids if p and psutil.pid_exists(p)
             and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert alive == []
    assert not cloud_file.exists()


def _role_parents(info: dict[str, Any]) -> dict[str, int]:
    return {name: psutil.Process(pid).ppid() for name, pid in info["roles"].items()}


def _webhook_runs(api: str) -> None:
    """A webhook -> rule -> core.local run finishes: the roles that were restarted do their work."""
    user = f"tpl-{os.urandom(6).hex()}"

    def call(method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        req = urllib.request.Request(f"{api}{path}", method=method,  # noqa: S310 - our own local API
                                     data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - our own local API
            return json.loads(resp.read() or b"null")
    call("POST", "/auth/register", {"username": user, "password": "template-test-pw-1"})
    token = call("POST", "/auth/login", {"username": user, "password": "template-test-pw-1"})["access_token"]
    trigger = call("POST", "/api/v1/triggers", {"type": "webhook"}, token)
    call("POST", "/api/v1/rules", {"trigger_id": trigger["id"], "action_ref": "core.local",
                                   "parameters": {"cmd": "echo from-{{ trigger.data.n }}"}}, token)
    call("POST", f"/api/v1/webhooks/{trigger['id']}", {"n": 7}, token)
    done = eventually(lambda: [e for e in call("GET", "/api/v1/executions", token=token)["items"]
                               if e["status"] == "succeeded"], timeout=60, message="the webhook's execution")
    assert done[0]["result"]["stdout"] == "from-7\n"


def test_roles_fork_from_the_template_and_outlive_its_death(
    local_cloud: tuple[subprocess.Popen[bytes], Path, str],
) -> None:
    _proc, cloud_file, api = local_cloud
    # GIVEN a ready cloud
    info = eventually(lambda: (i := _info(cloud_file)) and i.get("ready") and i, timeout=90,
                      message="cloud ready")
    template = info["template_pid"]
    # THEN every role is a child of the template, named after its role
    assert set(_role_parents(info).values()) == {template}
    assert psutil.Process(info["roles"]["worker"]).name() == "attune-worker"
    _webhook_runs(api)

    # WHEN the template is killed
    os.kill(template, signal.SIGKILL)
    # THEN its roles notice their parent is gone and are started again, not from the dead template
    eventually(lambda: (i := _info(cloud_file)) and len(i["roles"]) == len(info["roles"])
               and all(p != info["roles"][n] for n, p in i["roles"].items()) and i,
               timeout=60, message="every role restarted")
    eventually(lambda: _get(f"{api}/health")[0] == 200, timeout=60, message="healthy again")
    after = _info(cloud_file)
    assert after is not None
    assert template not in _role_parents(after).values()
    # AND the pipeline works end to end again
    _webhook_runs(api)


def test_a_killed_supervisor_leaves_no_template_and_no_role(
    local_cloud: tuple[subprocess.Popen[bytes], Path, str],
) -> None:
    proc, cloud_file, _api = local_cloud
    info = eventually(lambda: (i := _info(cloud_file)) and i.get("ready") and i, timeout=90,
                      message="cloud ready")
    forked = [*info["roles"].values(), info["template_pid"]]
    # WHEN the supervisor dies without a word
    proc.kill()
    proc.wait(10)
    # THEN the template sees its socket close and exits, and the roles see their parent go and stop
    def leftovers() -> list[int]:
        return [p for p in forked if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]

    eventually(lambda: not leftovers(), timeout=60, message="no role or template left")
    for pid in (info["moto_pid"], info["postgres_pid"]):  # the backends are the harness's to clean up here
        if pid and psutil.pid_exists(pid):
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).kill()
