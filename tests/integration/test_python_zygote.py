"""python3 actions forked by a per-(tenant, pack version, interpreter) zygote, against real bwrap sandboxes.

Two halves. Parity: the python3 tests of test_runners.py run again with a
tenant in the context, so each execution is forked by a zygote (and the test
checks it was), and must pass unchanged. Barriers: what a sandboxed action
could not do before it cannot do from a zygote either (another tenant's
processes, the worker's environment and data, writing the pack, the limits),
and the new moving parts fail safe (a timed-out group is killed and the
zygote serves on, a dead zygote fails its execution and is replaced, a
killed worker takes its zygotes and their actions with it).
"""

from __future__ import annotations

import inspect
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.runners import RunRequest, RunResult, runner_for, sandbox, zygote
from tests.integration import test_runners as cold
from tests.integration.test_runners import beacon, stub_api

pytestmark = pytest.mark.skipif(not sandbox.available(), reason="bubblewrap cannot run here: no zygote")
__all__ = ["beacon", "stub_api"]  # fixtures the reused tests ask for

TENANT = 424_242
OTHER_TENANT = 424_243


def _run(runner_type: str = "python3", *, tenant: int | None = TENANT, grace_s: float = 1.0,
         cancel: threading.Event | None = None, **fields: Any) -> RunResult:
    fields.setdefault("parameters", {})
    context = dict(fields.pop("context", None) or {})
    if tenant is not None:
        context.setdefault("tenant_id", tenant)
    request = RunRequest(execution_id=fields.pop("execution_id", 42), runner_type=runner_type, context=context,
                         **fields)
    return runner_for(runner_type, grace_s=grace_s).run(request, cancel=cancel)


def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _zygotes(tenant: int = TENANT) -> list[zygote.Zygote]:
    return [z for z in zygote.pool().zygotes.values() if z.key.tenant_id == tenant]


def _the_zygote(tenant: int = TENANT) -> zygote.Zygote:
    found = [z for z in _zygotes(tenant) if z.alive()]
    assert len(found) == 1, found
    return found[0]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.fixture(autouse=True)
def fresh_pool() -> Iterator[None]:
    """Every test starts without zygotes and leaves none running."""
    zygote.pool().close()
    zygote.pool().failed.clear()
    zygote.pool().reopen()
    yield
    zygote.pool().close()
    zygote.pool().reopen()


@pytest.fixture
def forked(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts executions that went through a zygote."""
    seen: list[int] = []
    real = zygote._Execution.run

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(self.request.execution_id)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(zygote._Execution, "run", counting)
    return seen


# --- parity: test_runners' python3 tests, forked ----------------------------------------------

PARITY = [
    "test_python_run_return_value_is_the_output_and_prints_stay_in_stdout",
    "test_python_async_run_and_none_result",
    "test_python_script_reads_stdin_itself_and_json_stdout_is_the_output",
    "test_python_run_exception_fails_with_one_line_error_and_traceback",
    "test_python_non_serialisable_return_fails_clearly",
    "test_python_wrong_parameters_and_syntax_error_fail_clearly",
    "test_t1_8_failing_action_exit_code_and_stderr",
    "test_t2_12_action_runs_under_the_given_interpreter",
    "test_large_parameters_reach_the_action_and_unread_stdin_does_not_hang",
    "test_t3_23_cancel_sends_sigterm_runs_cleanup_and_keeps_partial_stdout",
    "test_t3_21_ten_megabytes_of_output_are_cut_with_bounded_memory",
    "test_multibyte_output_is_not_cut_inside_a_character",
    "test_run_result_over_the_limit_fails_rather_than_storing_a_cut_value",
    "test_t3_20_secrets_reach_the_action_on_stdin_only",
    "test_sdk_reads_context_from_the_fd_and_talks_to_the_api",
    "test_sdk_surfaces_api_errors_and_missing_context",
    "test_concurrent_runs_do_not_see_each_other",
    "test_a_sandboxed_action_resolves_names_writes_its_tmp_and_sees_no_host_path",
]


@pytest.mark.parametrize("name", PARITY)
def test_the_cold_python3_tests_pass_forked(name: str, request: pytest.FixtureRequest,
                                            monkeypatch: pytest.MonkeyPatch, forked: list[int]) -> None:
    # GIVEN test_runners' own helper, with a tenant in every request's context
    real = cold._run

    def with_tenant(runner_type: str, **fields: Any) -> RunResult:
        context = dict(fields.pop("context", None) or {})
        context.setdefault("tenant_id", TENANT)
        return real(runner_type, context=context, **fields)

    monkeypatch.setattr(cold, "_run", with_tenant)
    test = getattr(cold, name)
    args = {param: request.getfixturevalue(param) for param in inspect.signature(test).parameters}
    # WHEN the test runs, THEN it passes, and its python3 executions were forked by a zygote
    test(**args)
    assert forked, "no execution went through a zygote"


def test_a_pack_action_gets_its_own_work_subdir_as_cwd_and_home_removed_afterwards(tmp_path: Path) -> None:
    (tmp_path / "actions").mkdir()
    (tmp_path / "actions" / "helpers.py").write_text("def double(x):\n    return 2 * x\n")
    (tmp_path / "actions" / "main.py").write_text(
        "import os\nfrom helpers import double\n\n"
        "def run(x):\n"
        "    open('mine.txt', 'w').write('x')\n"
        "    try:\n        os.listdir('/attune/work')\n        listed = True\n"
        "    except PermissionError:\n        listed = False\n"
        "    return {'x': double(x), 'cwd': os.getcwd(), 'home': os.environ['HOME'], 'file': __file__,\n"
        "            'mode': oct(os.stat('.').st_mode & 0o777), 'listed_siblings': listed,\n"
        "            'host_pack_seen': os.path.exists(" + repr(str(tmp_path)) + ")}\n"
    )
    pack = cold._pack(tmp_path)
    first = _run(entry_point="actions/main.py", pack_dir=pack, parameters={"x": 4}, execution_id=1)
    second = _run(entry_point="actions/main.py", pack_dir=pack, parameters={"x": 5}, execution_id=2)
    for result, x in ((first, 8), (second, 10)):
        assert result.status == "succeeded", result
        out = result.output
        assert out["x"] == x and out["home"] == out["cwd"] and out["cwd"].startswith("/attune/work/")
        assert out["file"] == "/attune/pack/actions/main.py" and out["mode"] == "0o700"
        assert not out["listed_siblings"] and not out["host_pack_seen"]
    assert first.output["cwd"] != second.output["cwd"]
    assert not list(tmp_path.rglob("mine.txt"))
    # AND both ran in one zygote, whose work dir holds nothing of theirs any more
    (z,) = _zygotes()
    assert list(z.host_dir.iterdir()) == []


def test_module_code_runs_in_every_execution_never_in_the_zygote() -> None:
    # GIVEN inline code whose module level notes in /tmp that it ran, and reports what it finds there
    code = (
        "import os, sys\nseen = sorted(os.listdir('/tmp'))\nopen(f'/tmp/ran-{os.getpid()}', 'w').close()\n"
        "def run():\n    return {'seen': seen, 'loaded': 'attune_action_main' in sys.modules}\n"
    )
    outputs = [_run(code=code, execution_id=i).output for i in range(3)]
    # THEN the module ran in each execution (never before, in the zygote), and each found /tmp empty:
    # the zygote empties it whenever it is idle, so nothing of one execution reaches the next
    assert outputs == [{"seen": [], "loaded": True}] * 3


def test_overlapping_executions_share_tmp_and_an_old_zygote_is_retired_after_its_last_one(
    monkeypatch: pytest.MonkeyPatch, beacon: tuple[str, list[str]],
) -> None:
    url, hits = beacon
    monkeypatch.setattr(zygote.pool(), "max_executions", 2)
    hold = (f"import time, urllib.request\nopen('/tmp/left-by-holder', 'w').close()\n"
            f"urllib.request.urlopen('{url}/started').close()\ntime.sleep(1.5)\n")
    holder = threading.Thread(target=lambda: _run(code=hold, execution_id=1))
    holder.start()
    _wait_for(lambda: hits == ["/started"], what="the first action to start")
    first = _the_zygote()
    # WHEN a second one runs while the first does: same zygote, same /tmp (documented)
    assert _run(code="import os\ndef run():\n    return os.listdir('/tmp')\n").output == ["left-by-holder"]
    # AND a third, beyond max_executions: a fresh zygote, while the old one finishes its own
    assert _run(code="import os\ndef run():\n    return os.listdir('/tmp')\n").output == []
    assert _the_zygote() is not first and first.alive()
    holder.join(10)
    _wait_for(lambda: not first.alive(), what="the retired zygote to be closed")


# --- keys and tenants ------------------------------------------------------------------------


LOOK = (
    "import os, time\n"
    "def run(wait=0):\n"
    "    time.sleep(wait)\n"
    "    cmdlines = []\n"
    "    for p in os.listdir('/proc'):\n"
    "        if p.isdigit():\n"
    "            try:\n"
    "                cmdlines.append(open(f'/proc/{p}/cmdline', 'rb').read().decode(errors='replace'))\n"
    "            except OSError:\n                pass\n"
    "    return {'uid': os.getuid(), 'pid': os.getpid(), 'ppid': os.getppid(), 'sid': os.getsid(0),\n"
    "            'pgid': os.getpgid(0), 'cmdlines': cmdlines}\n"
)


def test_one_zygote_per_tenant_each_with_its_own_uid_and_no_sight_of_the_other(tmp_path: Path) -> None:
    # GIVEN tenant A running a long action whose process is named by a tag
    tag = f"attune-zygote-test-{uuid.uuid4().hex[:10]}"
    hold = f"import os, time\ndef run():\n    os.system('(exec -a {tag} sleep 30) & sleep 30')\n"
    holder = threading.Thread(target=lambda: _run(code=hold, timeout_s=5, execution_id=7))
    holder.start()
    try:
        _wait_for(lambda: not cold._gone(tag), what="tenant A's action to start")
        # WHEN tenant A and tenant B each run an action that lists every process it can see
        a1 = _run(code=LOOK, execution_id=8)
        a2 = _run(code=LOOK, execution_id=9)
        b = _run(code=LOOK, tenant=OTHER_TENANT, execution_id=10)
    finally:
        zygote.pool().close()
        holder.join(10)
        zygote.pool().reopen()
    for result in (a1, a2, b):
        assert result.status == "succeeded", result
    # THEN A's two ran forked by one zygote, as A's uid, each in its own session and group
    assert a1.output["uid"] == a2.output["uid"] == sandbox.zygote_uid(TENANT)
    assert a1.output["ppid"] == a2.output["ppid"] and a1.output["pid"] != a2.output["pid"]
    for out in (a1.output, a2.output, b.output):
        assert out["sid"] == out["pgid"] == out["pid"]
    assert any(tag in c for c in a1.output["cmdlines"])  # A's own running action: same tenant, same sandbox
    # AND B ran as another uid, in another sandbox, where nothing of A is visible
    assert b.output["uid"] == sandbox.zygote_uid(OTHER_TENANT) != a1.output["uid"]
    assert not any(tag in c for c in b.output["cmdlines"])
    assert len(b.output["cmdlines"]) == 3  # bwrap's init, B's zygote, B's action
    assert sandbox.zygote_uid(TENANT) >= sandbox.BUILD_UID_BASE + sandbox.BUILD_UIDS


def test_a_new_pack_version_another_interpreter_or_other_limits_get_another_zygote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    for version in (v1, v2):
        version.mkdir(mode=0o755)
        (version / "a.py").write_text(LOOK)
    ppids = {_run(entry_point="a.py", pack_dir=v1).output["ppid"] for _ in range(2)}
    assert len(ppids) == 1 and len(_zygotes()) == 1
    _run(entry_point="a.py", pack_dir=v2)
    _run(code=LOOK)
    monkeypatch.setenv("ATTUNE_ACTION_MEMORY_MB", "512")
    _run(code=LOOK)
    assert len({z.key for z in _zygotes()}) == 4


# --- the platform's barriers ----------------------------------------------------------------


def test_a_forked_action_reads_no_secret_no_worker_process_no_data_dir_and_cannot_write_the_pack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-do-not-leak")
    data_dir = tmp_path / f"data-{uuid.uuid4().hex[:8]}"
    data_dir.mkdir()
    pack = tmp_path / "pack"
    pack.mkdir(mode=0o755)
    tmp_path.chmod(0o755)
    (pack / "probe.py").write_text(textwrap.dedent(f"""
        import os
        def run():
            environs = b""
            for p in os.listdir('/proc'):
                if p.isdigit():
                    try:
                        environs += open(f'/proc/{{p}}/environ', 'rb').read()
                    except OSError:
                        pass
            try:
                open('/attune/pack/written', 'w').write('x')
                wrote = True
            except OSError:
                wrote = False
            return {{'worker_proc': os.path.exists('/proc/{os.getpid()}/environ') and {os.getpid()} > 50,
                    'secret_seen': b'aws-secret' in environs, 'data_dir': os.path.exists({str(data_dir)!r}),
                    'tmp_root': os.path.exists({str(tmp_path)!r}), 'wrote_pack': wrote,
                    'root': sorted(os.listdir('/attune'))}}
    """))
    result = _run(entry_point="probe.py", pack_dir=pack)
    assert result.status == "succeeded", result
    assert result.output == {"worker_proc": False, "secret_seen": False, "data_dir": False, "tmp_root": False,
                             "wrote_pack": False, "root": ["pack", "sdk", "work", "wrapper.py"]}
    assert not (pack / "written").exists()


def test_the_zygote_has_no_secret_in_its_environment_or_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-do-not-leak")
    _run(code="def run():\n    return 1\n", context={"token": "exec-token-do-not-leak"})
    z = _the_zygote()
    assert z.pid is not None
    environ = Path(f"/proc/{z.pid}/environ").read_bytes()
    cmdline = Path(f"/proc/{z.pid}/cmdline").read_bytes()
    assert sorted(k.split(b"=")[0] for k in environ.split(b"\0") if k) == sorted(
        [b"PATH", b"HOME", b"LANG", b"PYTHONPATH", b"PYTHONUNBUFFERED", b"PWD"])
    for blob in (environ, cmdline):
        assert b"aws-secret" not in blob and b"exec-token" not in blob and b"attune-zygote-" not in blob
    assert Path(f"/proc/{z.pid}/status").read_text().count(str(sandbox.zygote_uid(TENANT))) >= 2


@pytest.mark.parametrize(("setting", "value", "code", "expect"), [
    ("ATTUNE_ACTION_MEMORY_MB", "64",
     "def run():\n    try:\n        b = bytearray(256 * 1024 * 1024)\n"
     "    except MemoryError:\n        return 'limited'\n",
     "limited"),
    ("ATTUNE_ACTION_MAX_PROCESSES", "8",
     "import os, time\ndef run():\n    kids = []\n    try:\n        for _ in range(40):\n"
     "            pid = os.fork()\n            if pid == 0:\n"
     "                time.sleep(5)\n                os._exit(0)\n"
     "            kids.append(pid)\n    except BlockingIOError:\n        return 'limited'\n"
     "    finally:\n        for k in kids:\n            os.kill(k, 9)\n",
     "limited"),
    ("ATTUNE_ACTION_FILE_SIZE_MB", "1",
     "def run():\n    try:\n        open('big', 'wb').write(b'x' * 3 * 1024 * 1024)\n    except OSError as exc:\n"
     "        return 'limited' if exc.errno == 27 else repr(exc)\n",
     "limited"),
])
def test_the_limits_apply_to_a_forked_action(monkeypatch: pytest.MonkeyPatch, setting: str, value: str,
                                             code: str, expect: str) -> None:
    monkeypatch.setenv(setting, value)
    result = _run(code=code)
    assert result.status == "succeeded" and result.output == expect, result
    # AND the zygote, with the same limits, is unharmed and serves the next execution
    assert _run(code="def run():\n    return 'next'\n").output == "next"


def test_the_cpu_limit_is_the_executions_own_and_the_zygote_outlives_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a 1 s CPU limit, and an action that spins with a 30 s timeout
    monkeypatch.setenv("ATTUNE_ACTION_CPU_SECONDS", "1")
    started = time.monotonic()
    result = _run(code="def run():\n    while True:\n        pass\n", timeout_s=30)
    # THEN the kernel stopped it at its CPU limit (soft = hard: SIGKILL, as for a cold start), long before the timeout
    assert result.status == "failed" and not result.timed_out, result
    assert result.exit_code in (-signal.SIGKILL, -signal.SIGXCPU), result
    assert time.monotonic() - started < 10
    # AND its zygote, whose own CPU is not so limited, serves executions after many seconds of them
    z = _the_zygote()
    for i in range(3):
        assert _run(code="def run():\n    return 1\n", execution_id=100 + i).output == 1
    assert _the_zygote() is z


# --- timeouts, cancel, leftovers --------------------------------------------------------------


def test_a_timed_out_action_loses_its_whole_group_even_a_child_ignoring_sigterm_and_the_zygote_serves_on() -> None:
    tag = cold._tag()
    code = (
        "import subprocess, time\n"
        f"subprocess.Popen(['/bin/sh', '-c', \"trap '' TERM; exec -a {tag} sleep 300\"])\n"
        "time.sleep(300)\n"
    )
    _run(code="def run():\n    return 0\n")
    z = _the_zygote()
    started = time.monotonic()
    result = _run(code=code, timeout_s=1, grace_s=0.5)
    assert result.timed_out and result.error == "timed out after 1s (SIGTERM)" and result.exit_code == -15
    assert time.monotonic() - started < 1 + 0.5 + 1.5
    _wait_for(lambda: cold._gone(tag), what="the child that ignored SIGTERM to die")
    assert result.pid is not None and not _alive(result.pid)
    assert _the_zygote() is z and _run(code="def run():\n    return 'next'\n").output == "next"


def test_sigterm_ignored_by_the_action_itself_escalates_to_sigkill() -> None:
    code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(300)\n"
    result = _run(code=code, timeout_s=0.5, grace_s=0.5)
    assert result.timed_out and result.exit_code == -9
    assert result.error == "timed out after 0.5s (SIGKILL after the grace period)"


def test_leftovers_are_killed_at_the_end_even_one_that_left_its_session() -> None:
    in_group, escaped = cold._tag(), cold._tag()
    code = (
        "import os, subprocess\n"
        f"subprocess.Popen(['/bin/sh', '-c', 'exec -a {in_group} sleep 300'])\n"
        f"subprocess.Popen(['/bin/sh', '-c', 'exec -a {escaped} sleep 300'], start_new_session=True)\n"
        "def run():\n    return 'done'\n"
    )
    assert _run(code=code).output == "done"
    _wait_for(lambda: cold._gone(in_group), what="the leftover in the group to die")
    _wait_for(lambda: cold._gone(escaped), what="the leftover that called setsid to die")


def test_on_started_gets_the_host_pid_of_the_running_action() -> None:
    seen: list[tuple[int, bytes]] = []
    request = RunRequest(execution_id=5, runner_type="python3", parameters={}, context={"tenant_id": TENANT},
                         code="import time\ndef run():\n    time.sleep(0.3)\n")
    result = runner_for("python3").run(
        request, on_started=lambda pid: seen.append((pid, Path(f"/proc/{pid}/cmdline").read_bytes())))
    ((pid, cmdline),) = seen
    assert pid == result.pid and b"_attune_zygote.py" in cmdline  # the zygote's forked child, seen from the host


# --- a zygote or a worker dying ----------------------------------------------------------------


def test_a_killed_zygote_fails_its_running_execution_and_is_replaced(beacon: tuple[str, list[str]]) -> None:
    url, hits = beacon
    code = f"import time, urllib.request\nurllib.request.urlopen('{url}/started').close()\ntime.sleep(60)\n"
    results: list[RunResult] = []
    worker = threading.Thread(target=lambda: results.append(_run(code=code, timeout_s=30)))
    worker.start()
    _wait_for(lambda: hits == ["/started"], what="the action to start")
    z = _the_zygote()
    assert z.pid is not None
    os.kill(z.pid, signal.SIGKILL)
    worker.join(10)
    assert not worker.is_alive()
    (result,) = results
    assert result.status == "failed" and not result.timed_out
    assert result.error == "the zygote running the action died during the execution"
    # AND the next execution gets a fresh zygote
    assert _run(code="def run():\n    return 'fresh'\n").output == "fresh"
    fresh = _the_zygote()
    assert fresh is not z and fresh.pid != z.pid


def test_a_zygote_started_from_a_thread_that_ended_lives_on() -> None:
    # bwrap's --die-with-parent is the parent *thread*'s death: the starter thread outlives the executions'
    first: list[RunResult] = []
    thread = threading.Thread(target=lambda: first.append(_run(code="def run():\n    return 1\n")))
    thread.start()
    thread.join(10)
    assert first[0].output == 1
    z = _the_zygote()
    assert _run(code="def run():\n    return 2\n").output == 2
    assert _the_zygote() is z and z.pid is not None and _alive(z.pid)


WORKER_SCRIPT = """
import sys, threading, time
from chalicelib.runners import RunRequest, runner_for, zygote
code = "import os, time\\nos.system('(exec -a {tag} sleep 300) & sleep 300')\\n"
request = RunRequest(execution_id=1, runner_type="python3", parameters={{}}, code=code, timeout_s=300,
                     context={{"tenant_id": {tenant}}})
threading.Thread(target=lambda: runner_for("python3").run(request), daemon=True).start()
while not zygote.pool().zygotes:
    time.sleep(0.01)
(z,) = zygote.pool().zygotes.values()
print(z.pid, z.proc.pid, flush=True)
time.sleep(300)
"""


def test_a_sigkilled_worker_takes_its_zygote_and_running_actions_with_it() -> None:
    tag = cold._tag()
    proc = subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT.format(tag=tag, tenant=TENANT)],
                            stdout=subprocess.PIPE, cwd=Path(__file__).resolve().parents[2])
    try:
        assert proc.stdout is not None
        zygote_pid, bwrap_pid = (int(n) for n in proc.stdout.readline().split())
        _wait_for(lambda: not cold._gone(tag), what="the action to start")
        proc.kill()
        proc.wait()
        _wait_for(lambda: cold._gone(tag), what="the running action to die with its worker")
        _wait_for(lambda: not _alive(zygote_pid) and not _alive(bwrap_pid), what="the zygote to die")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- when there is no zygote -----------------------------------------------------------------


@pytest.mark.parametrize("env", [{"ATTUNE_ZYGOTE": "off"}, {"AWS_LAMBDA_FUNCTION_NAME": "runner"},
                                 {"ATTUNE_SANDBOX": "off"}])
def test_no_zygote_when_switched_off_in_lambda_or_unsandboxed(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, forked: list[int],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert _run(code="def run():\n    return 'cold'\n").output == "cold"
    assert forked == [] and not zygote.pool().zygotes


def test_no_zygote_without_a_tenant(forked: list[int]) -> None:
    assert _run(code="def run():\n    return 'cold'\n", tenant=None).output == "cold"
    assert forked == []


def test_an_interpreter_that_cannot_start_a_zygote_runs_cold_with_the_cold_error() -> None:
    result = _run(code="def run():\n    return 1\n", python="/nonexistent/bin/python")
    assert result.status == "failed" and result.pid is None
    assert result.error is not None and result.error.startswith("could not start the action")


def test_idle_zygotes_are_closed() -> None:
    pool = zygote.ZygotePool(idle_s=0.2)
    monkey = pytest.MonkeyPatch()
    monkey.setattr(zygote, "_pool", pool)
    try:
        assert _run(code="def run():\n    return 1\n").output == 1
        (z,) = pool.zygotes.values()
        _wait_for(lambda: not pool.zygotes, what="the idle zygote to be closed")
        _wait_for(lambda: z.proc.poll() is not None, what="its sandbox to end")
        _wait_for(lambda: not z.host_dir.exists(), what="its work dir to be removed")
    finally:
        pool.close()
        monkey.undo()
