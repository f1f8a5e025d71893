"""The sandbox's cost per action start: trivial shell and python3 actions, sandboxed vs ATTUNE_SANDBOX=off.

`python3_warm` is the same python3 action forked by its tenant's zygote
(chalicelib/runners/zygote.py: a request with a tenant, sandboxed), warm
(the zygote started in the warm-up). Its CPU is not a reaped child's of
this process: it is the zygote's own and its reaped children's, read from
/proc/<zygote>/stat in clock ticks (10 ms), so per sample it is useless
and only its mean over the samples (`cpu.sandboxed.mean_ms`) says anything;
compare it with the cold rows' `mean_ms`. `worker_cpu` is this process's
own CPU per run (the runner's loop, for every row). `saturation` runs
SATURATION_RUNS executions on WORKER_THREADS threads at once, as a busy
worker does: executions per second and all CPU (this process, its reaped
children, the zygote) per execution.

Each sample is one whole `Runner.run` (work dir, process start, the action,
reaping, result), called straight, without a cloud, so the difference
between the two modes is what bubblewrap and setpriv add to an action's
start and end, not queue or database noise. Besides wall time, the CPU
each run costs (the processes it started, reaped: see `_become_subreaper`),
and the python3 runner's CPU over the shell runner's (issue 14 item 3). The modes alternate
sample by sample, so drift of the machine (other tests, CPU frequency) hits
both alike; a few warm-up runs first fill the page cache and run the probe.
"""

from __future__ import annotations

import ctypes
import os
import resource
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from bench.api_latency import _summary
from chalicelib.runners import RunRequest, runner_for, zygote
from chalicelib.runners import sandbox as sandbox_mod

ACTIONS = {
    "shell": "echo '{\"ok\": true}'\n",
    "python3": "def run():\n    return {'ok': True}\n",
}
# Rows: (runner type, whether the request names a tenant, so a sandboxed python3 one is forked by a zygote).
ROWS = {"shell": ("shell", False), "python3": ("python3", False), "python3_warm": ("python3", True)}
MODES = ("off", "sandboxed")
WARMUP = 3
PR_SET_CHILD_SUBREAPER = 36
BENCH_TENANT = 999_001
WORKER_THREADS = 8  # ATTUNE_WORKER_CONCURRENCY's default
SATURATION_RUNS = 160
_TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


@contextmanager
def _mode(mode: str) -> Iterator[None]:
    """ATTUNE_SANDBOX for the runs inside (read per run by `sandbox_settings`), restored afterwards."""
    before = os.environ.get("ATTUNE_SANDBOX")
    os.environ["ATTUNE_SANDBOX"] = "off" if mode == "off" else "required"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("ATTUNE_SANDBOX", None)
        else:
            os.environ["ATTUNE_SANDBOX"] = before


def _become_subreaper() -> bool:
    """Adopt orphans (Linux PR_SET_CHILD_SUBREAPER), so their CPU reaches RUSAGE_CHILDREN.

    bwrap's monitor exits as soon as its namespace's init reports the exit
    status, before reaping that init: the init (and the action it reaped)
    would be re-parented to the host's init, and the action's CPU would be
    missing from ours. As a subreaper, this process adopts and reaps it.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _reap_orphans(deadline_s: float = 5.0) -> None:
    """Reap every adopted child, polling up to a deadline; the zygotes' bwraps live on (they are not orphans)."""
    until = time.monotonic() + deadline_s
    while time.monotonic() < until:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if _children() <= {z.proc.pid for z in list(zygote.pool().zygotes.values())}:
                return
            time.sleep(0.001)


def _children() -> set[int]:
    """This process's live children, from /proc (every thread's: a zygote is started by its own thread)."""
    found: set[int] = set()
    for task in os.scandir("/proc/self/task"):
        with suppress(OSError):
            found.update(int(p) for p in Path(task.path, "children").read_text().split())
    return found


def _children_cpu_ms() -> float:
    """User + system CPU of every reaped child so far: bwrap, its init, setpriv and the action."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


def _self_cpu_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (usage.ru_utime + usage.ru_stime) * 1000


def _zygotes_cpu_ms() -> float:
    """CPU of every live zygote and of the executions it reaped (clock ticks of /proc/<pid>/stat)."""
    total = 0
    for z in list(zygote.pool().zygotes.values()):
        if z.pid is None:
            continue
        try:
            fields = Path(f"/proc/{z.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return total * _TICK_MS


def _once(row: str, execution_id: int) -> tuple[float, float, float]:
    """One run's (wall ms, child CPU ms, own CPU ms); a run that does not succeed would measure something else.

    CPU is what the machine pays per action start (on a busy worker it, not
    wall time, bounds throughput); wall time is what a user waits.
    """
    runner_type, warm = ROWS[row]
    request = RunRequest(execution_id=execution_id, runner_type=runner_type, parameters={},
                         code=ACTIONS[runner_type], timeout_s=30,
                         context={"tenant_id": BENCH_TENANT} if warm else {})
    cpu_before, zygotes_before, self_before = _children_cpu_ms(), _zygotes_cpu_ms(), _self_cpu_ms()
    started = time.perf_counter()
    result = runner_for(runner_type).run(request)
    elapsed = (time.perf_counter() - started) * 1000
    _reap_orphans()
    own = _self_cpu_ms() - self_before
    cpu = _children_cpu_ms() - cpu_before + (_zygotes_cpu_ms() - zygotes_before if warm else 0.0)
    if result.status != "succeeded" or result.output != {"ok": True}:
        raise RuntimeError(f"the {row} bench action did not succeed: {result}")
    return elapsed, cpu, own


def _saturation(row: str, runs: int = SATURATION_RUNS) -> dict[str, float]:
    """`runs` executions on WORKER_THREADS threads at once: executions/s and all CPU per execution."""
    runner_type, warm = ROWS[row]
    ids = iter(range(800_000, 800_000 + runs))
    lock = threading.Lock()
    failures: list[str] = []

    def work() -> None:
        while True:
            with lock:
                execution_id = next(ids, None)
            if execution_id is None:
                return
            request = RunRequest(execution_id=execution_id, runner_type=runner_type, parameters={},
                                 code=ACTIONS[runner_type], timeout_s=30,
                                 context={"tenant_id": BENCH_TENANT} if warm else {})
            result = runner_for(runner_type).run(request)
            if result.status != "succeeded":
                failures.append(str(result))

    cpu_before = _children_cpu_ms() + _zygotes_cpu_ms() + _self_cpu_ms()
    started = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(WORKER_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    _reap_orphans()
    cpu = _children_cpu_ms() + _zygotes_cpu_ms() + _self_cpu_ms() - cpu_before
    if failures:
        raise RuntimeError(f"the {row} saturation run failed: {failures[0]}")
    return {"runs": runs, "executions_per_s": round(runs / elapsed, 1), "cpu_ms_per_execution": round(cpu / runs, 2)}


def run(n: int = 50) -> dict[str, Any]:
    """`n` runs per row and mode; p50/p95 per cell and the sandbox's overhead (sandboxed minus off)."""
    subreaper = _become_subreaper()
    bwrap = sandbox_mod.usable_bwrap()
    modes = MODES if bwrap is not None else ("off",)
    row_modes = {row: [m for m in modes if not (ROWS[row][1] and m == "off")] for row in ROWS}
    row_modes = {row: ms for row, ms in row_modes.items() if ms}
    samples: dict[str, dict[str, list[float]]] = {r: {m: [] for m in ms} for r, ms in row_modes.items()}
    cpu: dict[str, dict[str, list[float]]] = {r: {m: [] for m in ms} for r, ms in row_modes.items()}
    own: dict[str, dict[str, list[float]]] = {r: {m: [] for m in ms} for r, ms in row_modes.items()}
    execution_id = 900_000
    for i in range(WARMUP + n):
        for row, ms in row_modes.items():
            for mode in ms:
                execution_id += 1
                with _mode(mode):
                    wall_ms, cpu_ms, own_ms = _once(row, execution_id)
                if i >= WARMUP:
                    samples[row][mode].append(wall_ms)
                    cpu[row][mode].append(cpu_ms)
                    own[row][mode].append(own_ms)
    results: dict[str, Any] = {}
    for row, by_mode in samples.items():
        cell: dict[str, Any] = {mode: _summary(values) for mode, values in by_mode.items()}
        cell["cpu"] = {mode: _summary(values) for mode, values in cpu[row].items()}
        cell["worker_cpu"] = {mode: _summary(values) for mode, values in own[row].items()}
        if "sandboxed" in cell and "off" in cell:
            for pct in ("p50_ms", "p95_ms"):
                cell[f"overhead_{pct}"] = round(cell["sandboxed"][pct] - cell["off"][pct], 3)
            cell["cpu_overhead_p50_ms"] = round(cell["cpu"]["sandboxed"]["p50_ms"] - cell["cpu"]["off"]["p50_ms"], 3)
        results[row] = cell
    for mode in modes:  # the python3 runner's cost against the shell runner's, same mode (issue 14 item 3)
        shell, python = results["shell"]["cpu"][mode]["p50_ms"], results["python3"]["cpu"][mode]["p50_ms"]
        results.setdefault("python3_vs_shell_cpu_p50", {})[mode] = round(python / shell, 2) if shell else None
    if "python3_warm" in results:  # means: the zygote's CPU is only known in clock ticks (module docstring)
        shell_cpu = results["shell"]["cpu"]["sandboxed"]["mean_ms"]
        warm_cpu = results["python3_warm"]["cpu"]["sandboxed"]["mean_ms"]
        shell_wall = results["shell"]["sandboxed"]["p50_ms"]
        results["python3_warm_vs_shell"] = {
            "cpu_mean": round(warm_cpu / shell_cpu, 2) if shell_cpu else None,
            "wall_p50": round(results["python3_warm"]["sandboxed"]["p50_ms"] / shell_wall, 2) if shell_wall else None,
        }
        with _mode("sandboxed"):
            results["saturation"] = {row: _saturation(row) for row in ROWS}
    return {
        "benchmark": "sandbox",
        "n": n,
        "bwrap": bwrap,
        "sandbox_available": bwrap is not None,
        "cpu_includes_the_sandboxed_action": subreaper,
        "actions": ACTIONS,
        "results": results,
        "notes": (
            "wall time of one Runner.run per sample (work dir, start, action, reap, result), no cloud; "
            "cpu = user+system CPU of the reaped children (bwrap, the action) per run, for python3_warm the "
            "zygote's and its reaped children's (clock ticks: only the mean is meaningful); "
            "worker_cpu = this process's own CPU per run; "
            "modes alternate sample by sample; overhead = sandboxed - off at the same percentile"
            + ("" if bwrap is not None else "; bwrap cannot run here, so only the unconfined mode was measured")
        ),
    }
