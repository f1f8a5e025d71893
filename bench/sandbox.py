"""The sandbox's cost per action start: trivial shell and python3 actions, sandboxed vs ATTUNE_SANDBOX=off.

Each sample is one whole `Runner.run` (work dir, process start, the action,
reaping, result), called straight, without a cloud, so the difference
between the two modes is what bubblewrap, prlimit and setpriv add to an
action's start and end, not queue or database noise. The modes alternate
sample by sample, so drift of the machine (other tests, CPU frequency) hits
both alike; a few warm-up runs first fill the page cache and run the probe.
"""

from __future__ import annotations

import os
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


def _once(runner_type: str, execution_id: int) -> float:
    """One run's wall time in ms; a run that does not succeed would measure something else, so it raises."""
    request = RunRequest(execution_id=execution_id, runner_type=runner_type, parameters={},
                         code=ACTIONS[runner_type], timeout_s=30)
    started = time.perf_counter()
    result = runner_for(runner_type).run(request)
    elapsed = (time.perf_counter() - started) * 1000
    if result.status != "succeeded" or result.output != {"ok": True}:
        raise RuntimeError(f"the {runner_type} bench action did not succeed: {result}")
    return elapsed


def run(n: int = 50) -> dict[str, Any]:
    """`n` runs per runner and mode; p50/p95 per cell and the sandbox's overhead (sandboxed minus off)."""
    bwrap = sandbox_mod.usable_bwrap()
    modes = MODES if bwrap is not None else ("off",)
    samples: dict[str, dict[str, list[float]]] = {r: {m: [] for m in modes} for r in ACTIONS}
    execution_id = 900_000
    for i in range(WARMUP + n):
        for runner_type in ACTIONS:
            for mode in modes:
                execution_id += 1
                with _mode(mode):
                    ms = _once(runner_type, execution_id)
                if i >= WARMUP:
                    samples[runner_type][mode].append(ms)
    results: dict[str, Any] = {}
    for runner_type, by_mode in samples.items():
        cell: dict[str, Any] = {mode: _summary(values) for mode, values in by_mode.items()}
        if "sandboxed" in cell:
            for pct in ("p50_ms", "p95_ms"):
                cell[f"overhead_{pct}"] = round(cell["sandboxed"][pct] - cell["off"][pct], 3)
        results[runner_type] = cell
    return {
        "benchmark": "sandbox",
        "n": n,
        "bwrap": bwrap,
        "sandbox_available": bwrap is not None,
        "actions": ACTIONS,
        "results": results,
        "notes": (
            "wall time of one Runner.run per sample (work dir, start, action, reap, result), no cloud; "
            "modes alternate sample by sample; overhead = sandboxed - off at the same percentile"
            + ("" if bwrap is not None else "; bwrap cannot run here, so only the unconfined mode was measured")
        ),
    }
