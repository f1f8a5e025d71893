"""Issue 9: from inside an action of tenant B, nothing of the platform or of another tenant is reachable.

Each check runs as a real action over the real API (POST /api/v1/executions)
on the local cloud, and reports what it managed to do; each assertion fails
if the escape works. Not here (the platform's own barriers, another file):
PostgreSQL over TCP, and the local AWS endpoint without credentials.
"""

from __future__ import annotations

import json
import os
import re
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from tests.e2e.client import Cloud, User
from tests.e2e.flow import action_files, register_pack, run_action, unique_ref, wait_final
from tests.helpers.procs import tagged_processes as _alive

# Runs alone on the cloud (tests/e2e/run.py): it kills the cloud's worker and runs memory and fork bombs.
pytestmark = pytest.mark.serial

PROBE_PY = r'''
import glob, json, os, urllib.request
import attune_action


def _try(fn):
    try:
        return {"ok": True, "value": fn()}
    except Exception as exc:  # the escape failed: that is the expected outcome
        return {"ok": False, "error": type(exc).__name__}


def _write(path):
    with open(path, "w") as f:
        f.write("escaped")
    return path


def run(data_dir, socket_dir, outside_url):
    pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    ppid = os.getppid()
    here = os.path.dirname(os.path.abspath(__file__))
    others = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                others.append(f.read().decode(errors="replace"))
        except OSError:
            pass
    return {
        "pids": pids,
        "parent_environ": _try(lambda: open(f"/proc/{ppid}/environ", "rb").read().decode(errors="replace")),
        "init_environ": _try(lambda: open("/proc/1/environ", "rb").read().decode(errors="replace")),
        "sees_platform": any("chalicelib" in c or "postgres" in c or "moto" in c for c in others),
        "data_dir": _try(lambda: os.listdir(data_dir)),
        "socket_dir": _try(lambda: os.listdir(socket_dir)),
        "write_pack": _try(lambda: _write(os.path.join(here, "escaped.txt"))),
        "write_usr": _try(lambda: _write("/usr/escaped.txt")),
        "write_etc": _try(lambda: _write("/etc/escaped.txt")),
        "write_root_home": _try(lambda: _write("/root/escaped.txt")),
        "write_cwd": _try(lambda: _write("own.txt")),
        "datastore": _try(lambda: attune_action.datastore_get("mine")),
        "outside": _try(lambda: urllib.request.urlopen(outside_url, timeout=10).read().decode()),
        "other_work_dirs": glob.glob("/tmp/attune-exec-*"),
    }
'''

WRITER_PY = r'''
import os, time
import attune_action


def run(marker):
    with open("secret-of-a.txt", "w") as f:
        f.write(marker)
    with open("/tmp/secret-of-a.txt", "w") as f:
        f.write(marker)
    attune_action.datastore_set("paths", {"cwd": os.getcwd(), "tmp": "/tmp/secret-of-a.txt"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not attune_action.datastore_get("done"):
        time.sleep(0.1)
    return "done"
'''

READER_PY = r'''
import glob


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as exc:
        return type(exc).__name__


def run(dirs, tmp, marker):
    found = []
    patterns = [d + "/*" for d in dirs] + [tmp, "/tmp/*", "/tmp/attune-exec-*/*", "/attune/*/*"]
    for pattern in patterns:
        for path in glob.glob(pattern):
            if marker in _read(path):
                found.append(path)
    return {"direct": {d: _read(d + "/secret-of-a.txt") for d in dirs}, "direct_tmp": _read(tmp), "found": found}
'''

MEMORY_PY = """\
def run():
    blob = bytearray(10 * 1024 ** 3)
    return len(blob)
"""

FORK_PY = """\
import os, time

def run(cap):
    children = 0
    for _ in range(cap):
        try:
            pid = os.fork()
        except OSError as exc:
            raise RuntimeError(f"fork refused after {children} children: {exc}")
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        children += 1
    return children
"""

SLEEP_SH = "exec -a {tag} sleep 300\n"


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello from outside"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def outside_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hello"
    finally:
        server.shutdown()
        server.server_close()


def _data_dir(cloud: Cloud) -> Path:
    assert cloud.log_path is not None, "these tests need the cloud the suite starts (its data dir)"
    return cloud.log_path.parent


def _socket_dir(cloud: Cloud) -> str:
    found = re.search(r"host=([^&\s]+)", cloud.database_url or "")
    assert found, cloud.database_url
    return unquote(found.group(1))


def _params(*names: str, kind: str = "string") -> dict[str, Any]:
    return {name: {"type": kind, "required": True} for name in names}


def _pack(user: User, files: dict[str, str]) -> str:
    ref = unique_ref("sandbox")
    register_pack(user, ref, files)
    return ref


def _start(user: User, ref: str, parameters: dict[str, Any]) -> int:
    resp = user.post("/api/v1/executions", {"action_ref": ref, "parameters": parameters})
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


def _poll(probe: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_an_action_sees_nothing_of_the_platform_but_its_api_and_the_outside(cloud: Cloud, outside_server: str) -> None:
    b = cloud.register("sbx-b")
    assert b.post("/api/v1/datastore", {"key": "mine", "value": "b-value"}).status_code in (200, 201)
    ref = _pack(b, action_files("probe", "python3", PROBE_PY, _params("data_dir", "socket_dir", "outside_url")))
    data_dir = _data_dir(cloud)
    done = run_action(b, f"{ref}.probe", {
        "data_dir": str(data_dir), "socket_dir": _socket_dir(cloud), "outside_url": outside_server,
    })
    assert done["status"] == "succeeded", done["result"]
    report = done["result"]["output"]
    # THEN it sees only its own sandbox's processes, and cannot read its parent's or init's environment
    assert len(report["pids"]) <= 4, report["pids"]
    assert not report["sees_platform"]
    for key in ("parent_environ", "init_environ"):
        assert not report[key]["ok"] or "ATTUNE_DATABASE_URL" not in report[key]["value"], report[key]
    # AND neither the data dir nor the database socket dir exists for it
    assert not report["data_dir"]["ok"], report["data_dir"]
    assert not report["socket_dir"]["ok"], report["socket_dir"]
    # AND it writes only into its own work dir
    for key in ("write_pack", "write_usr", "write_etc", "write_root_home"):
        assert not report[key]["ok"], (key, report[key])
    assert report["write_cwd"]["ok"]
    assert not list(data_dir.rglob("escaped.txt")) and not Path("/root/escaped.txt").exists()
    assert report["other_work_dirs"] == [] or all("attune-exec-" + str(done["id"]) in p
                                                  for p in report["other_work_dirs"])
    # AND it still reads its own datastore value through the helper, and reaches an outside server
    assert report["datastore"] == {"ok": True, "value": "b-value"}
    assert report["outside"] == {"ok": True, "value": "hello from outside"}


def test_a_concurrent_execution_of_another_tenant_is_invisible(cloud: Cloud) -> None:
    a, b = cloud.register("sbx-a"), cloud.register("sbx-b")
    marker = f"marker-{uuid.uuid4().hex}"
    writer_ref = f"{_pack(a, action_files('writer', 'python3', WRITER_PY, _params('marker')))}.writer"
    writer = _start(a, writer_ref, {"marker": marker})
    try:
        # GIVEN A's action has written into its cwd and /tmp, and is still running
        paths = _poll(lambda: _published(a, writer), "the writer's files")
        # (its work dir on the host, where the worker made it: the test sees A's file there)
        # (a cold start's own dir, or its subdir of A's python3 zygote's)
        tmp = Path(tempfile.gettempdir())
        host_dirs = [p for p in [*tmp.glob(f"attune-exec-{writer}-*"), *tmp.glob(f"attune-zygote-*/{writer}-*")]
                     if (p / "secret-of-a.txt").is_file()]
        assert len(host_dirs) == 1 and (host_dirs[0] / "secret-of-a.txt").read_text() == marker, host_dirs
        # WHEN B's action looks for them, by A's own paths, by their host paths, and by search
        reader_params = {**_params("tmp", "marker"), **_params("dirs", kind="array")}
        reader_ref = f"{_pack(b, action_files('reader', 'python3', READER_PY, reader_params))}.reader"
        done = run_action(b, reader_ref, {"dirs": [paths["cwd"], str(host_dirs[0])], "tmp": paths["tmp"],
                                          "marker": marker})
        # THEN it finds nothing of A's
        assert done["status"] == "succeeded", done
        report = done["result"]["output"]
        assert report["found"] == [], report
        assert all(marker not in text for text in report["direct"].values()), report
        assert marker not in report["direct_tmp"], report
    finally:
        a.post("/api/v1/datastore", {"key": "done", "value": True})
    assert wait_final(a, writer)["status"] == "succeeded"


def _published(user: User, execution_id: int) -> Any:
    """The writer's paths once it has stored them; fails at once (with its result) if it ended instead."""
    resp = user.get("/api/v1/datastore/paths")
    if resp.status_code == 200:
        return resp.json()["value"]
    execution = user.get(f"/api/v1/executions/{execution_id}").json()
    assert execution["status"] not in ("succeeded", "failed", "canceled"), execution
    return None


def test_memory_and_fork_bombs_fail_only_the_action(cloud: Cloud) -> None:
    b = cloud.register("sbx-b")
    files = {**action_files("memory", "python3", MEMORY_PY),
             **action_files("fork", "python3", FORK_PY, _params("cap", kind="integer")),
             **action_files("echo", "shell", 'echo \'{"alive": true}\'\n')}
    ref = _pack(b, files)
    # WHEN an action allocates 10 GB THEN it fails (MemoryError), the worker does not
    memory = run_action(b, f"{ref}.memory", {})
    assert memory["status"] == "failed" and "MemoryError" in (memory["result"]["error"] or ""), memory
    # WHEN an action forks without end (bounded at 5000 here) THEN the process limit stops it
    fork = run_action(b, f"{ref}.fork", {"cap": 5000})
    assert fork["status"] == "failed" and "fork refused" in (fork["result"]["error"] or ""), fork
    # AND the worker goes on running other executions
    echo = run_action(b, f"{ref}.echo", {})
    assert echo["status"] == "succeeded" and echo["result"]["output"] == {"alive": True}, echo


def _worker_pid(cloud: Cloud) -> int | None:
    """The worker role's pid as the supervisor published it; None while it restarts one."""
    found = json.loads((_data_dir(cloud) / "cloud.json").read_text()).get("roles", {}).get("worker")
    return int(found) if found else None


def test_a_killed_worker_takes_its_running_actions_with_it(cloud: Cloud) -> None:
    b = cloud.register("sbx-b")
    tag = f"attune-sbx-{uuid.uuid4().hex[:12]}"
    ref = _pack(b, {**action_files("sleeper", "shell", SLEEP_SH.format(tag=tag)),
                    **action_files("echo", "shell", 'echo \'{"alive": true}\'\n')})
    # GIVEN a sandboxed `sleep 300` running
    _start(b, f"{ref}.sleeper", {})
    _poll(lambda: _alive(tag), "the sleeping action", timeout=60)
    worker = _worker_pid(cloud)
    assert worker is not None
    # WHEN the worker is SIGKILLed
    os.kill(worker, signal.SIGKILL)
    # THEN the action's process is gone within a few seconds (--die-with-parent)
    _poll(lambda: not _alive(tag), "the action to die with its worker", timeout=10)
    # AND the supervisor brings a worker back that runs actions again, for the tests after this one
    # (/health alone says little here: it turns unhealthy only once the dead worker's beat is stale;
    # a message the dead worker's long poll had taken comes back after the visibility timeout, 30 s)
    _poll(lambda: _worker_pid(cloud) not in (None, worker), "a new worker process", timeout=60)
    echo = wait_final(b, _start(b, f"{ref}.echo", {}), timeout=90)
    assert echo["status"] == "succeeded" and echo["result"]["output"] == {"alive": True}, echo
    _poll(lambda: cloud.http.get("/health").status_code == 200, "the cloud to be healthy again", timeout=60)
