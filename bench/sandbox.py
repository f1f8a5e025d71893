"""The sandbox's cost per action start: trivial shell and python3 actions, sandboxed vs ATTUNE_SANDBOX=off.

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
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.api_latency import _summary
from chalicelib.runners import RunRequest, runner_for
from chalicelib.runners import sandbox as sandbox_mod

ACTIONS = {
    "shell": "echo '{\"ok\": true}'\n",
    "python3": "def run():\n    return {'ok': True}\n",
}
MODES = ("off", "sandboxed")
WARMUP = 3
PR_SET_CHILD_SUBREAPER = 36


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
    """Reap every adopted child (the bench starts no other process), polling up to a deadline."""
    until = time.monotonic() + deadline_s
    while time.monotonic() < until:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.001)


def _children_cpu_ms() -> float:
    """User + system CPU of every reaped child so far: bwrap, its init, setpriv and the action."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


def _once(runner_type: str, execution_id: int) -> tuple[float, float]:
    """One run's (wall ms, child CPU ms); a run that does not succeed would measure something else, so it raises.

    CPU is what the machine pays per action start (on a busy worker it, not
    wall time, bounds throughput); wall time is what a user waits.
    """
    request = RunRequest(execution_id=execution_id, runner_type=runner_type, parameters={},
                         code=ACTIONS[runner_type], timeout_s=30)
    cpu_before = _children_cpu_ms()
    started = time.perf_counter()
    result = runner_for(runner_type).run(request)
    elapsed = (time.perf_counter() - started) * 1000
    _reap_orphans()
    cpu = _children_cpu_ms() - cpu_before
    if result.status != "succeeded" or result.output != {"ok": True}:
        raise RuntimeError(f"the {runner_type} bench action did not succeed: {result}")
    return elapsed, cpu


def run(n: int = 50) -> dict[str, Any]:
    """`n` runs per runner and mode; p50/p95 per cell and the sandbox's overhead (sandboxed minus off)."""
    subreaper = _become_subreaper()
    bwrap = sandbox_mod.usable_bwrap()
    modes = MODES if bwrap is not None else ("off",)
    samples: dict[str, dict[str, list[float]]] = {r: {m: [] for m in modes} for r in ACTIONS}
    cpu: dict[str, dict[str, list[float]]] = {r: {m: [] for m in modes} for r in ACTIONS}
    execution_id = 900_000
    for i in range(WARMUP + n):
        for runner_type in ACTIONS:
            for mode in modes:
                execution_id += 1
                with _mode(mode):
                    ms, cpu_ms = _once(runner_type, execution_id)
                if i >= WARMUP:
                    samples[runner_type][mode].append(ms)
                    cpu[runner_type][mode].append(cpu_ms)
    results: dict[str, Any] = {}
    for runner_type, by_mode in samples.items():
        cell: dict[str, Any] = {mode: _summary(values) for mode, values in by_mode.items()}
        cell["cpu"] = {mode: _summary(values) for mode, values in cpu[runner_type].items()}
        if "sandboxed" in cell:
            for pct in ("p50_ms", "p95_ms"):
                cell[f"overhead_{pct}"] = round(cell["sandboxed"][pct] - cell["off"][pct], 3)
            cell["cpu_overhead_p50_ms"] = round(cell["cpu"]["sandboxed"]["p50_ms"] - cell["cpu"]["off"]["p50_ms"], 3)
        results[runner_type] = cell
    for mode in modes:  # the python3 runner's cost against the shell runner's, same mode (issue 14 item 3)
        shell, python = results["shell"]["cpu"][mode]["p50_ms"], results["python3"]["cpu"][mode]["p50_ms"]
        results.setdefault("python3_vs_shell_cpu_p50", {})[mode] = round(python / shell, 2) if shell else None
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
            "cpu = user+system CPU of the reaped children (bwrap, the action) per run; "
            "modes alternate sample by sample; overhead = sandboxed - off at the same percentile"
            + ("" if bwrap is not None else "; bwrap cannot run here, so only the unconfined mode was measured")
        ),
    }
