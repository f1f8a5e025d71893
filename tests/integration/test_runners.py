"""The python3 and shell runners against real subprocesses.

Seed scenarios covered at this depth: T1.8 (failure: exit code 1, stderr kept),
T2.9 (timeout kills the action and its grandchildren, reaped), T2.12 (the
action's own interpreter), T3.20 (parameters and secrets on stdin only, never
in /proc/<pid>/environ or cmdline), T3.21 (10 MB of output cut at the limit,
bounded memory), T3.23 (cancel: SIGTERM, cleanup runs, partial stdout kept).
No database or AWS: the runners are processes and pipes only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
import tracemalloc
import uuid
import venv
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from chalicelib.core.errors import ValidationFailed
from chalicelib.runners import TRUNCATION_MARKER, RunRequest, RunResult, base, launch, process, runner_for, sandbox
from chalicelib.runners.sandbox import base_python

SECRET = "secret123-do-not-leak"
TOKEN = "exec-token-do-not-leak"


def _run(runner_type: str, *, grace_s: float = 1.0, cancel: threading.Event | None = None,
         on_started: Callable[[int], None] | None = None, **fields: Any) -> RunResult:
    fields.setdefault("parameters", {})
    request = RunRequest(execution_id=fields.pop("execution_id", 42), runner_type=runner_type, **fields)
    return runner_for(runner_type, grace_s=grace_s).run(request, cancel=cancel, on_started=on_started)


def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _marked(tag: str) -> str:
    """Shell that starts `sleep 300` in the background under a name seen from the host's /proc.

    Inside the sandbox `$!` is a pid of the action's own PID namespace, which
    names nothing (or something else) on the host; the name does not lie.
    """
    return f"(exec -a {tag} sleep 300) &\necho $!\n"


def _gone(tag: str) -> bool:
    """No process on the machine runs under `tag` (zombies count as gone)."""
    for entry in Path("/proc").iterdir():
        try:
            if tag.encode() in (entry / "cmdline").read_bytes():
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state not in ("Z", "X"):
                    return False
        except OSError:
            continue
    return True


def _tag() -> str:
    return f"attune-test-leftover-{uuid.uuid4().hex[:12]}"


def _pack(path: Path) -> Path:
    """A pack dir an action's own uid can read, as the worker's pack cache leaves it (pytest's are 0700)."""
    path.chmod(0o755)
    return path


def _not_running(pid: int) -> bool:
    """Gone, or a zombie that init owns (an init that does not reap is not the runner's child)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    state, ppid = stat.rsplit(")", 1)[1].split()[:2]
    return state in ("Z", "X") and int(ppid) != os.getpid()


def _reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


# --- python3 ---------------------------------------------------------------


def test_python_run_return_value_is_the_output_and_prints_stay_in_stdout() -> None:
    # GIVEN an action whose run() prints and returns
    code = "def run(name, count=1):\n    print('working on', name)\n    return {'greeting': 'hi ' + name, 'n': count}\n"
    # WHEN it runs
    result = _run("python3", code=code, parameters={"name": "ada", "count": 3})
    # THEN the return value is the output, the print is stdout, and neither mixes into the other
    assert result.status == "succeeded", result
    assert result.output == {"greeting": "hi ada", "n": 3}
    assert result.stdout == "working on ada\n"
    assert (result.exit_code, result.error, result.timed_out) == (0, None, False)


def test_python_async_run_and_none_result() -> None:
    assert _run("python3", code="async def run(x):\n    return x * 2\n", parameters={"x": 21}).output == 42
    result = _run("python3", code="def run():\n    print('{\"not\": \"the output\"}')\n")
    assert result.status == "succeeded" and result.output is None


def test_python_script_reads_stdin_itself_and_json_stdout_is_the_output() -> None:
    code = "import json, sys\nparams = json.load(sys.stdin)\nprint(json.dumps({'got': params}))\n"
    result = _run("python3", code=code, parameters={"a": [1, 2], "s": SECRET})
    assert result.status == "succeeded", result
    assert result.output == {"got": {"a": [1, 2], "s": SECRET}}


def test_python_run_exception_fails_with_one_line_error_and_traceback() -> None:
    code = "def helper():\n    raise ValueError('port must be positive')\n\ndef run(port):\n    helper()\n"
    result = _run("python3", code=code, parameters={"port": -1})
    assert result.status == "failed" and result.exit_code == 1
    assert result.error == "ValueError: port must be positive"
    assert "Traceback (most recent call last)" in result.stderr
    assert "in helper" in result.stderr and "wrapper.py" not in result.stderr


def test_python_non_serialisable_return_fails_clearly() -> None:
    result = _run("python3", code="def run():\n    return {1, 2}\n")
    assert result.status == "failed"
    assert result.error is not None and result.error.startswith("run() returned a value that is not JSON-serialisable")
    assert "set" in result.error


def test_python_wrong_parameters_and_syntax_error_fail_clearly() -> None:
    result = _run("python3", code="def run(a):\n    return a\n", parameters={"b": 1})
    assert result.status == "failed" and result.error is not None and result.error.startswith("TypeError:")
    result = _run("python3", code="def run(:\n")
    assert result.status == "failed" and result.error is not None and result.error.startswith("SyntaxError:")


def test_t1_8_failing_action_exit_code_and_stderr(tmp_path: Path) -> None:
    # GIVEN the seed's failing action as a pack file
    (tmp_path / "actions").mkdir()
    (tmp_path / "actions" / "fail.py").write_text(
        "#!/usr/bin/env python3\n"
        "import sys\n"
        'print("Starting action...", file=sys.stderr)\n'
        "sys.exit(1) # Force failure\n"
    )
    for runner_type in ("python3", "shell"):  # shell honours the #! line
        # WHEN it runs
        result = _run(runner_type, entry_point="actions/fail.py", pack_dir=_pack(tmp_path))
        # THEN it failed with exit code 1, and stderr is kept
        assert result.status == "failed", (runner_type, result)
        assert result.exit_code == 1 and result.error == "exit code 1"
        assert "Starting action..." in result.stderr


def test_pack_action_imports_its_sibling_modules_and_runs_in_a_fresh_work_dir(tmp_path: Path) -> None:
    (tmp_path / "actions").mkdir()
    (tmp_path / "actions" / "helpers.py").write_text("def double(x):\n    return 2 * x\n")
    (tmp_path / "actions" / "main.py").write_text(
        "import os\nfrom helpers import double\n\n"
        "def run(x):\n"
        "    open('mine.txt', 'w').write('x')\n"
        "    return {'x': double(x), 'cwd': os.getcwd(), 'home': os.environ['HOME'], 'file': __file__,\n"
        "            'host_pack_seen': os.path.exists(" + repr(str(tmp_path)) + ")}\n"
    )
    result = _run("python3", entry_point="actions/main.py", pack_dir=_pack(tmp_path), parameters={"x": 4})
    # THEN it imported its sibling, and its cwd (and HOME) is its own fresh work dir, not the read-only pack
    assert result.status == "succeeded" and result.output is not None and result.output["x"] == 8, result
    out = result.output
    assert out["home"] == out["cwd"] and not out["cwd"].startswith(str(tmp_path))
    assert not list(tmp_path.rglob("mine.txt"))
    if sandbox.available():
        # AND in the sandbox both sit at fixed neutral paths: nothing of the pack's host path exists inside
        assert (out["cwd"], out["file"]) == ("/attune/work", "/attune/pack/actions/main.py"), out
        assert out["host_pack_seen"] is False
    else:
        assert "attune-exec-42-" in out["cwd"] and not Path(out["cwd"]).exists()


def test_t2_12_action_runs_under_the_given_interpreter(tmp_path: Path) -> None:
    # GIVEN a virtualenv (as the worker will build per pack)
    env_dir = tmp_path / "venvs" / "test_pack"
    venv.create(env_dir, with_pip=False)
    # WHEN the action runs with that interpreter
    code = "import sys\ndef run():\n    return sys.prefix\n"
    result = _run("python3", code=code, python=str(env_dir / "bin" / "python"))
    # THEN it ran inside the virtualenv: in the sandbox at its neutral path, which says nothing of where it is kept
    assert result.status == "succeeded", result
    if sandbox.available():
        assert result.output == str(sandbox.VENV_MOUNT)
    else:
        assert Path(result.output).resolve() == env_dir.resolve()


def test_missing_interpreter_is_a_failed_result_not_an_exception() -> None:
    result = _run("python3", code="def run():\n    return 1\n", python="/nonexistent/bin/python")
    assert result.status == "failed" and result.pid is None
    assert result.error is not None and result.error.startswith("could not start the action")


def test_inline_code_temp_dir_is_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the runner's work dirs recorded as they are made (inside the sandbox their host path is not visible)
    made: list[Path] = []
    real = base.work_dir

    @contextmanager
    def recording(execution_id: int, uid: int | None) -> Iterator[Path]:
        with real(execution_id, uid) as path:
            made.append(path)
            yield path

    monkeypatch.setattr(base, "work_dir", recording)
    code = "import os\ndef run():\n    open('scratch', 'w').write('x')\n    return os.path.abspath(__file__)\n"
    result = _run("python3", code=code)
    # THEN the inline code ran from its work dir, which held its file and is gone afterwards
    assert result.status == "succeeded", result
    (host,) = made
    assert "attune-exec-42-" in host.name and Path(result.output).name == "action.py"
    assert result.output == ("/attune/work/action.py" if sandbox.available() else str(host / "action.py"))
    assert not host.exists()


def test_large_parameters_reach_the_action_and_unread_stdin_does_not_hang() -> None:
    big = "p" * (3 * 1024 * 1024)
    result = _run("python3", code="def run(blob):\n    return len(blob)\n", parameters={"blob": big})
    assert result.output == len(big)
    result = _run("shell", code="echo ignored-stdin", parameters={"blob": big})
    assert result.status == "succeeded" and result.stdout == "ignored-stdin\n"


# --- shell -------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
def test_shell_reads_params_from_stdin_and_json_stdout_is_the_output() -> None:
    code = 'params=$(cat)\nname=$(printf "%s" "$params" | jq -r .name)\njq -n --arg n "$name" \'{hello: $n}\'\n'
    result = _run("shell", code=code, parameters={"name": "world"})
    assert result.status == "succeeded", result
    assert result.output == {"hello": "world"}


def test_shell_plain_text_stdout_has_no_output_and_nonzero_exit_fails() -> None:
    result = _run("shell", code='echo "not json"; echo oops >&2; exit 3')
    assert result.status == "failed" and result.exit_code == 3 and result.error == "exit code 3"
    assert result.stdout == "not json\n" and result.stderr == "oops\n" and result.output is None


def test_killed_by_a_signal_names_it() -> None:
    result = _run("shell", code="kill -SEGV $$")
    assert result.exit_code == -11 and result.error == "killed by signal SIGSEGV"


def test_leftover_background_process_of_a_finished_action_is_killed() -> None:
    # GIVEN an action that exits while something it started would run for 5 minutes
    started = time.monotonic()
    tag = _tag()
    result = _run("shell", code=_marked(tag))
    # THEN the result comes back at once and the leftover is gone
    assert result.status == "succeeded" and time.monotonic() - started < 5
    _wait_for(lambda: _gone(tag), what="the background sleep to die")


# --- timeout, cancel, reaping ---------------------------------------------------


def test_t2_9_timeout_kills_the_action_and_its_grandchildren() -> None:
    # GIVEN an action that starts a grandchild and sleeps, with a 1 s timeout
    pids: list[int] = []
    started = time.monotonic()
    tag = _tag()
    result = _run("shell", code=_marked(tag) + "sleep 300", timeout_s=1, grace_s=2, on_started=pids.append)
    elapsed = time.monotonic() - started
    # THEN it failed as a timeout, by SIGTERM, well within timeout + grace
    assert result.status == "failed" and result.timed_out
    assert result.error == "timed out after 1s (SIGTERM)"
    assert result.exit_code == -15
    assert 1 <= elapsed < 1 + 2 + 1.5
    # AND the action is reaped and the grandchild is not running
    assert pids == [result.pid] and result.pid is not None and _reaped(result.pid)
    _wait_for(lambda: _gone(tag), what="the grandchild to die")


def test_timeout_escalates_to_sigkill_when_sigterm_is_ignored() -> None:
    tag = _tag()
    code = "trap '' TERM\n" + _marked(tag) + "sleep 300"
    started = time.monotonic()
    result = _run("shell", code=code, timeout_s=0.5, grace_s=0.5)
    assert result.timed_out and result.exit_code == -9
    assert result.error == "timed out after 0.5s (SIGKILL after the grace period)"
    assert time.monotonic() - started < 0.5 + 0.5 + 1.5
    assert result.pid is not None and _reaped(result.pid)
    _wait_for(lambda: _gone(tag), what="the grandchild to die")


class _Beacon(BaseHTTPRequestHandler):
    """Counts GETs: how a sandboxed action says "I have started" (it can write nothing the test sees)."""

    hits: list[str] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def beacon() -> Iterator[tuple[str, list[str]]]:
    hits: list[str] = []
    handler = type("Beacon", (_Beacon,), {"hits": hits})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


def test_t3_23_cancel_sends_sigterm_runs_cleanup_and_keeps_partial_stdout(beacon: tuple[str, list[str]]) -> None:
    # GIVEN a long action that cleans up on SIGTERM, running in a worker thread
    url, hits = beacon
    code = (
        "import signal, sys, time, urllib.request\n"
        "def on_term(*_):\n    print('cleanup ran')\n    sys.exit(3)\n"
        "signal.signal(signal.SIGTERM, on_term)\n"
        "print('partial result')\n"
        f"urllib.request.urlopen('{url}/started').close()\n"
        "time.sleep(60)\n"
    )
    cancel = threading.Event()
    results: list[RunResult] = []
    worker = threading.Thread(target=lambda: results.append(_run("python3", code=code, cancel=cancel, grace_s=5)))
    worker.start()
    _wait_for(lambda: hits == ["/started"], what="the action to start")
    # WHEN the execution is canceled
    canceled_at = time.monotonic()
    cancel.set()
    worker.join(timeout=10)
    # THEN it ends promptly as canceled, the cleanup ran (its own exit code), and what it printed is kept
    assert not worker.is_alive() and time.monotonic() - canceled_at < 3
    (result,) = results
    assert result.status == "canceled" and result.error == "canceled" and not result.timed_out
    assert result.exit_code == 3
    assert "partial result" in result.stdout and "cleanup ran" in result.stdout
    assert result.pid is not None and _reaped(result.pid)


def test_cancel_set_before_start_starts_nothing() -> None:
    cancel = threading.Event()
    cancel.set()
    started: list[int] = []
    result = _run("shell", code="echo should-not-run", cancel=cancel, on_started=started.append)
    assert result.status == "canceled" and result.pid is None and started == [] and result.stdout == ""


def test_on_started_is_called_while_the_process_runs() -> None:
    seen: list[bool] = []
    result = _run("shell", code="sleep 0.2", on_started=lambda pid: seen.append(Path(f"/proc/{pid}").exists()))
    assert seen == [True] and result.status == "succeeded"


def test_on_started_failure_kills_and_reaps_the_action() -> None:
    pids: list[int] = []

    def boom(pid: int) -> None:
        pids.append(pid)
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError):
        _run("shell", code="sleep 300", on_started=boom)
    assert _reaped(pids[0])


# --- output limits ----------------------------------------------------------------


def test_t3_21_ten_megabytes_of_output_are_cut_with_bounded_memory() -> None:
    # GIVEN an action printing 10 MB on stdout and on stderr, interleaved, with a 1 MiB limit
    code = (
        "import sys\nchunk = 'x' * 65536\n"
        "for _ in range(160):\n    sys.stdout.write(chunk)\n    sys.stderr.write(chunk)\n"
    )
    limit = 1024 * 1024
    # WHEN it runs, with allocations traced in this (the worker's) process
    tracemalloc.start()
    try:
        result = _run("python3", code=code, max_output_bytes=limit)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # THEN it succeeded, each stream is cut at the limit with the marker
    assert result.status == "succeeded" and result.exit_code == 0, result.error
    for text in (result.stdout, result.stderr):
        assert text.endswith(TRUNCATION_MARKER)
        assert len(text.encode()) == limit + len(TRUNCATION_MARKER)
    assert result.output is None
    # AND the worker never held the 20 MB (two 1 MiB buffers, their text, and read chunks)
    assert peak < 8 * 1024 * 1024, peak


def test_multibyte_output_is_not_cut_inside_a_character() -> None:
    result = _run("python3", code="print('é' * 1000)", max_output_bytes=101)
    assert result.stdout == "é" * 50 + TRUNCATION_MARKER


def test_run_result_over_the_limit_fails_rather_than_storing_a_cut_value() -> None:
    result = _run("python3", code="def run():\n    return 'y' * 5000\n", max_output_bytes=1000)
    assert result.status == "failed" and result.error is not None and "over the output limit" in result.error


# --- secrets -------------------------------------------------------------------------

REPORT_CODE = """\
import json, os, pathlib

def run(api_key, region):
    environ = pathlib.Path('/proc/self/environ').read_bytes()
    cmdline = pathlib.Path('/proc/self/cmdline').read_bytes()
    return {
        'received': api_key,
        'env_keys': sorted(os.environ),
        'env_has_secret': b'secret123' in environ,
        'cmdline_has_secret': b'secret123' in cmdline,
        'env_has_token': b'exec-token' in environ,
        'env_has_worker_settings': b'worker-db-password' in environ or b'aws-secret' in environ,
    }
"""


def test_t3_20_secrets_reach_the_action_on_stdin_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a worker whose own environment holds secrets
    monkeypatch.setenv("ATTUNE_DATABASE_URL", "postgresql://attune:worker-db-password@db/attune")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    seen_from_outside: list[tuple[bytes, bytes]] = []

    def inspect(pid: int) -> None:  # what `ps` or another process sees while the action runs
        seen_from_outside.append((Path(f"/proc/{pid}/environ").read_bytes(), Path(f"/proc/{pid}/cmdline").read_bytes()))

    # WHEN an action that declares the secret runs
    result = _run(
        "python3",
        code=REPORT_CODE,
        parameters={"api_key": SECRET, "region": "eu-west-1"},
        context={"api_url": "http://127.0.0.1:9", "token": TOKEN},
        on_started=inspect,
    )
    # THEN it received the secret, which is in neither its environment nor its command line
    assert result.status == "succeeded", result
    report = result.output
    assert report["received"] == SECRET
    assert not report["env_has_secret"] and not report["cmdline_has_secret"]
    assert not report["env_has_token"] and not report["env_has_worker_settings"]
    expected = ["PATH", "HOME", "LANG", "PYTHONPATH", "PYTHONUNBUFFERED", "ATTUNE_EXECUTION_ID", "ATTUNE_CONTEXT_FD"]
    assert sorted(set(report["env_keys"]) - {"PWD"}) == sorted(expected)  # bwrap's --chdir sets PWD
    ((environ, cmdline),) = seen_from_outside
    for blob in (environ, cmdline):
        assert SECRET.encode() not in blob and TOKEN.encode() not in blob and b"worker-db-password" not in blob
    assert SECRET not in result.stdout + result.stderr


def test_t3_20_shell_action_environment_is_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    code = 'params=$(cat)\ntr "\\0" "\\n" < /proc/$$/environ | grep -c -e secret123 -e aws-secret || true\n'
    result = _run("shell", code=code, parameters={"api_key": SECRET})
    assert result.status == "succeeded" and result.output == 0


# --- entry points and runner types -----------------------------------------------------


def test_entry_point_escapes_are_rejected(tmp_path: Path) -> None:
    pack = tmp_path / "pack"
    (pack / "actions").mkdir(parents=True)
    (tmp_path / "outside.py").write_text("def run():\n    return 'escaped'\n")
    (pack / "actions" / "link.py").symlink_to(tmp_path / "outside.py")
    for entry_point in ("../outside.py", "actions/../../outside.py", str(tmp_path / "outside.py"), "actions/link.py"):
        with pytest.raises(ValidationFailed, match=r"outside the pack|relative to the pack"):
            _run("python3", entry_point=entry_point, pack_dir=pack)
    with pytest.raises(ValidationFailed, match="does not exist"):
        _run("shell", entry_point="actions/missing.sh", pack_dir=pack)
    with pytest.raises(ValidationFailed, match="not both"):
        _run("shell", entry_point="actions/x.sh", code="echo", pack_dir=pack)
    with pytest.raises(ValidationFailed, match="no pack_dir"):
        _run("shell", entry_point="actions/x.sh")


def test_unknown_runner_type_is_a_domain_error() -> None:
    with pytest.raises(ValidationFailed, match="no process runner for runner_type 'cobol'"):
        runner_for("cobol")


# --- the action helper library (attune_action) ---------------------------------------------


class _StubDatastore(BaseHTTPRequestHandler):
    """Just enough of /api/v1/datastore to prove what the helper sends."""

    items: dict[str, Any] = {}
    seen: list[tuple[str, str, str | None, Any]] = []

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body: dict[str, Any] = json.loads(self.rfile.read(length)) if length else {}
        self.seen.append((self.command, self.path, self.headers.get("Authorization"), body))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._reply(401, {"error": {"code": "unauthorized", "message": "bad token"}})
            return
        key = unquote(self.path.removeprefix("/api/v1/datastore").lstrip("/"))
        if self.command == "POST":
            self.items[body["key"]] = body
            self._reply(201, {"key": body["key"], "value": body["value"], "encrypted": body["encrypted"]})
        elif key not in self.items:
            self._reply(404, {"error": {"code": "not_found", "message": f"no key {key}"}})
        elif self.command == "GET":
            self._reply(200, {"key": key, "value": self.items[key]["value"]})
        else:
            del self.items[key]
            self._reply(200, {"deleted": key})

    do_GET = do_POST = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def stub_api() -> Iterator[str]:
    _StubDatastore.items = {}
    _StubDatastore.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StubDatastore)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


SDK_CODE = """\
import attune_action as aa

def run(key):
    ctx = aa.context()
    aa.datastore_set(key, {"n": 1}, encrypted=True, ttl=60)
    got = aa.datastore_get(key)
    missing = aa.datastore_get("no/such/key")
    fallback = aa.datastore_get("no/such/key", "dflt")
    deleted = aa.datastore_delete(key)
    deleted_again = aa.datastore_delete(key)
    return {"ctx": ctx, "same": aa.context() == ctx, "got": got, "missing": missing,
            "fallback": fallback, "deleted": deleted, "deleted_again": deleted_again}
"""


def test_sdk_reads_context_from_the_fd_and_talks_to_the_api(stub_api: str) -> None:
    # GIVEN an action using the helper, with an execution-scoped token in its context
    result = _run(
        "python3",
        code=SDK_CODE,
        parameters={"key": "config/db"},
        context={"api_url": stub_api, "token": TOKEN, "tenant_id": 7},
        execution_id=99,
    )
    # THEN it read the context once from its descriptor, and the datastore calls worked
    assert result.status == "succeeded", (result.error, result.stderr)
    out = result.output
    assert out["ctx"] == {"api_url": stub_api, "token": TOKEN, "tenant_id": 7, "execution_id": 99}
    assert out["same"] and out["got"] == {"n": 1}
    assert out["missing"] is None and out["fallback"] == "dflt"
    assert out["deleted"] is True and out["deleted_again"] is False
    # AND every call carried the token, with the key URL-encoded in the path
    seen = _StubDatastore.seen
    assert {auth for _m, _p, auth, _b in seen} == {f"Bearer {TOKEN}"}
    assert seen[0] == ("POST", "/api/v1/datastore", f"Bearer {TOKEN}",
                       {"key": "config/db", "value": {"n": 1}, "encrypted": True, "ttl": 60})
    assert ("GET", "/api/v1/datastore/config%2Fdb") in {(m, p) for m, p, _a, _b in seen}


def test_sdk_surfaces_api_errors_and_missing_context(stub_api: str) -> None:
    code = (
        "import attune_action as aa\n"
        "def run():\n"
        "    try:\n        aa.datastore_get('k')\n"
        "    except aa.AttuneActionError as exc:\n        return {'status': exc.status, 'message': str(exc)}\n"
    )
    result = _run("python3", code=code, context={"api_url": stub_api, "token": "wrong"})
    assert result.output == {"status": 401, "message": "GET /api/v1/datastore/k failed with 401: bad token"}
    result = _run("python3", code=code, context={"token": TOKEN})
    assert result.output["status"] is None and "no usable api_url" in result.output["message"]


def test_sdk_is_importable_from_a_shell_action(stub_api: str) -> None:
    code = f"{base_python()} -c 'import attune_action as aa; print(aa.context()[\"execution_id\"])'"
    result = _run("shell", code=code, context={"api_url": stub_api, "token": TOKEN}, execution_id=5)
    assert result.status == "succeeded", result.stderr
    assert result.output == 5


# --- without pidfd, and many at once ----------------------------------------------------------


def test_exit_is_noticed_by_polling_where_pidfd_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a kernel without pidfd_open (before Linux 5.3)
    monkeypatch.setattr(process, "_pidfd", lambda pid: None)
    # THEN normal ends, timeouts and leftovers behave the same
    assert _run("shell", code='echo \'{"ok": 1}\'').output == {"ok": 1}
    tag = _tag()
    result = _run("shell", code=_marked(tag) + "sleep 300", timeout_s=0.5, grace_s=1)
    assert result.timed_out and result.exit_code == -15
    assert result.pid is not None and _reaped(result.pid)
    _wait_for(lambda: _gone(tag), what="the grandchild to die")


def test_concurrent_runs_do_not_see_each_other() -> None:
    # GIVEN 16 actions started at once from worker threads, each with its own secret
    results: dict[int, RunResult] = {}

    def one(i: int) -> None:
        code = (
            "import json, os, sys\np = json.load(sys.stdin)\n"
            "print(json.dumps({'i': p['i'], 'fds': len(os.listdir('/proc/self/fd'))}))"
        )
        results[i] = _run("python3", code=code, parameters={"i": i, "secret": f"s{i}"}, execution_id=i)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    # THEN each got its own parameters and no other run's pipes
    assert sorted(results) == list(range(16))
    for i, result in results.items():
        assert result.status == "succeeded", result
        assert result.output["i"] == i
        assert result.output["fds"] <= 6  # 0-2, the context pipe, the result channel, listdir's own


# --- the sandbox's own filesystem ---------------------------------------------------------------


@pytest.mark.skipif(not sandbox.available(), reason="bubblewrap cannot run here: actions run unconfined")
def test_a_sandboxed_action_resolves_names_writes_its_tmp_and_sees_no_host_path(tmp_path: Path) -> None:
    # GIVEN a pack under a recognisable host path
    tmp_path.chmod(0o755)
    pack = tmp_path / f"host-only-{uuid.uuid4().hex[:8]}"
    pack.mkdir(mode=0o755)
    (pack / "look.py").write_text(
        "import os, socket\n"
        "def run():\n"
        "    open('/tmp/scratch', 'w').write('x')\n"
        "    cmdlines = [open(f'/proc/{p}/cmdline', 'rb').read().decode(errors='replace')\n"
        "                for p in os.listdir('/proc') if p.isdigit()]\n"
        "    return {'addr': socket.getaddrinfo('localhost', 80)[0][4][0], 'users': open('/etc/passwd').read()[:5],\n"
        "            'tmp': os.listdir('/tmp'), 'cmdlines': cmdlines, 'root': sorted(os.listdir('/attune'))}\n"
    )
    result = _run("python3", entry_point="look.py", pack_dir=pack)
    assert result.status == "succeeded", result
    out = result.output
    # THEN /etc's few files are readable (DNS, users) and /tmp is its own and writable
    assert out["addr"] in ("127.0.0.1", "::1") and out["users"] == "root:"
    assert out["tmp"] == ["scratch"]
    assert out["root"] == ["pack", "sdk", "work", "wrapper.py"]
    # AND no command line in it names a host path of the pack or the work dir (bwrap reads them from a pipe)
    assert out["cmdlines"] and not any(pack.name in c or "attune-exec-" in c for c in out["cmdlines"]), out


@pytest.mark.skipif(not sandbox.available(), reason="bubblewrap cannot run here: actions run unconfined")
def test_a_sandbox_whose_worker_is_gone_before_the_limits_never_starts_its_command() -> None:
    # GIVEN a confined start whose worker dies after the spawn, before setting the limits: its ends of the pipes
    # close and bwrap's monitor goes with it (--die-with-parent), leaving bwrap's init waiting
    box = sandbox.sandbox_for(4242, 10)
    assert box is not None
    with sandbox.work_dir(4242, box.uid) as cwd:
        started = launch.prepare(box, ["/bin/sh", "-c", "echo ran > /attune/work/ran"], work_dir=cwd,
                                 env={"PATH": "/usr/bin:/bin"})
        proc = subprocess.Popen(started.argv, pass_fds=started.child_fds, start_new_session=True)
        started.close_child_fds()
        pid = json.loads(_read_until_closing_brace(started.info_r))["child-pid"]
        proc.kill()
        proc.wait()
        started.close()
        try:
            # THEN the init stays blocked on the block pipe (it holds a writer itself, so there is no end of
            # file to take for "go"), and the command, which would run without limits, never runs. (A monitor
            # killed between writing the info and releasing its child through an eventfd leaves the init
            # waiting on that eventfd instead, do_wait_intr_irq: before the block pipe, so blocked all the same.)
            deadline = time.monotonic() + 10
            while Path(f"/proc/{pid}/wchan").read_text() not in ("pipe_read", "anon_pipe_read", "do_wait_intr_irq"):
                assert time.monotonic() < deadline, Path(f"/proc/{pid}/wchan").read_text()
                time.sleep(0.01)
            assert not (cwd / "ran").exists()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
            deadline = time.monotonic() + 10
            while Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]:
                assert time.monotonic() < deadline
                time.sleep(0.01)


def _read_until_closing_brace(fd: int) -> bytes:
    data = b""
    while not data.rstrip().endswith(b"}"):
        chunk = os.read(fd, 4096)
        assert chunk, data
        data += chunk
    return data
