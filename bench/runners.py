"""Action starts with pack dependencies, and the worker's memory while an action floods stdout (issue 11).

Three measurements, straight through the runners and `chalicelib.worker.deps`,
without a cloud, under the sandbox setting in effect (ATTUNE_SANDBOX, default
auto: sandboxed when bwrap works):

- python3 with one dependency (`six==1.16.0`): cold start = `deps.python_env`
  on an empty ATTUNE_DEPS_DIR (uv creates and fills the virtualenv; its
  download cache lives under that fresh dir too, so nothing is reused) plus
  the first run; warm start = p50/p95 of `n` more runs on the built env.
- node with one dependency (`is-number@7.0.0`): node_modules built once
  (npm install), one warm-up run, then p50/p95 of `n` runs.
- a python3 action printing 10 MB: this process's RSS sampled every 10 ms by
  a thread, before the run (baseline) and during it (peak), and the length of
  the stdout the runner kept (capped at max_output_bytes, 1 MiB).

A run that does not succeed with the expected output raises: it would
measure something else.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from bench.api_latency import _summary
from chalicelib.config import settings
from chalicelib.runners import RunRequest, RunResult, runner_for
from chalicelib.runners import sandbox as sandbox_mod
from chalicelib.worker import deps

OWNER = "bench"
PYTHON_PACK = {
    "requirements.txt": "six==1.16.0\n",
    "actions/six_version.py": "import six\n\n\ndef run():\n    return {'six': six.__version__}\n",
}
PYTHON_ENTRY = "actions/six_version.py"
PYTHON_EXPECTED = {"six": "1.16.0"}
NODE_PACK = {
    "package.json": '{"name": "bench-node", "version": "1.0.0", "dependencies": {"is-number": "7.0.0"}}\n',
    "actions/is_number.js": "module.exports = { run: async (p) => require('is-number')(p.n) }\n",
}
NODE_ENTRY = "actions/is_number.js"
FLOOD_BYTES = 10 * 1024 * 1024
FLOOD_ACTION = (
    "import sys\n\n\n"
    "def run():\n"
    "    chunk = 'x' * 65536\n"
    f"    for _ in range({FLOOD_BYTES} // len(chunk)):\n"
    "        sys.stdout.write(chunk)\n"
    "    sys.stdout.flush()\n"
    "    return {'ok': True}\n"
)
MAX_OUTPUT_BYTES = 1024 * 1024
SAMPLE_S = 0.010
BASELINE_S = 0.5
MB = 1024 * 1024

_execution_ids = iter(range(920_000, 10**9))


@contextmanager
def _deps_dir(path: Path) -> Iterator[None]:
    """ATTUNE_DEPS_DIR=`path` for the code inside (settings re-read), restored afterwards."""
    before = os.environ.get("ATTUNE_DEPS_DIR")
    os.environ["ATTUNE_DEPS_DIR"] = str(path)
    settings.cache_clear()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("ATTUNE_DEPS_DIR", None)
        else:
            os.environ["ATTUNE_DEPS_DIR"] = before
        settings.cache_clear()


def _pack(root: Path, name: str, files: dict[str, str]) -> Path:
    pack = root / name
    for rel, text in files.items():
        (pack / rel).parent.mkdir(parents=True, exist_ok=True)
        (pack / rel).write_text(text, encoding="utf-8")
    return pack


def _timed_run(request: RunRequest, expected: Any) -> tuple[float, RunResult]:
    """One whole `Runner.run` in ms; raises unless it succeeded with `expected` as its output."""
    started = time.perf_counter()
    result = runner_for(request.runner_type).run(request)
    elapsed = (time.perf_counter() - started) * 1000
    if result.status != "succeeded" or result.output != expected:
        raise RuntimeError(f"the {request.runner_type} bench action did not succeed: {result}")
    return elapsed, result


def _python_request(pack: Path, env: Path) -> RunRequest:
    return RunRequest(execution_id=next(_execution_ids), runner_type="python3", parameters={},
                      entry_point=PYTHON_ENTRY, pack_dir=pack, python=str(env / "bin" / "python"), timeout_s=60)


def _python_with_dependency(root: Path, n: int) -> dict[str, Any]:
    pack = _pack(root, "py-pack", PYTHON_PACK)
    started = time.perf_counter()
    env = deps.python_env(pack, OWNER)
    build_ms = (time.perf_counter() - started) * 1000
    if env is None:
        raise RuntimeError("python_env built no environment for a pack with a requirements.txt")
    first_ms, _ = _timed_run(_python_request(pack, env), PYTHON_EXPECTED)
    warm = [_timed_run(_python_request(pack, env), PYTHON_EXPECTED)[0] for _ in range(n)]
    return {
        "requirements": PYTHON_PACK["requirements.txt"].strip(),
        "cold": {
            "env_build_ms": round(build_ms, 3),
            "first_run_ms": round(first_ms, 3),
            "total_ms": round(build_ms + first_ms, 3),
        },
        "warm": _summary(warm),
    }


def _node_with_dependency(root: Path, n: int) -> dict[str, Any]:
    pack = _pack(root, "node-pack", NODE_PACK)
    started = time.perf_counter()
    modules = deps.node_modules(pack, OWNER)
    build_ms = (time.perf_counter() - started) * 1000

    def request() -> RunRequest:
        return RunRequest(execution_id=next(_execution_ids), runner_type="node", parameters={"n": 5},
                          entry_point=NODE_ENTRY, pack_dir=pack, node_modules=modules, timeout_s=60)

    first_ms, _ = _timed_run(request(), True)
    warm = [_timed_run(request(), True)[0] for _ in range(n)]
    return {
        "dependencies": {"is-number": "7.0.0"},
        "node_modules_build_ms": round(build_ms, 3),
        "first_run_ms": round(first_ms, 3),
        "warm": _summary(warm),
    }


class _RssSampler:
    """Samples this process's RSS every SAMPLE_S seconds in a thread, keeping the largest seen."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self.samples = 0
        self.peak = 0

    def rss(self) -> int:
        return int(self._process.memory_info().rss)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            self.samples += 1
            self._stop.wait(SAMPLE_S)

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def _flood() -> dict[str, Any]:
    def request() -> RunRequest:
        return RunRequest(execution_id=next(_execution_ids), runner_type="python3", parameters={},
                          code=FLOOD_ACTION, timeout_s=120, max_output_bytes=MAX_OUTPUT_BYTES)

    with _RssSampler() as before:
        time.sleep(BASELINE_S)
    with _RssSampler() as during:
        elapsed_ms, result = _timed_run(request(), {"ok": True})
    baseline, peak = before.peak, during.peak
    return {
        "printed_bytes": FLOOD_BYTES,
        "max_output_bytes": MAX_OUTPUT_BYTES,
        "stored_stdout_chars": len(result.stdout),
        "stored_stdout_bytes": len(result.stdout.encode("utf-8")),
        "truncated": result.stdout.endswith("(output truncated)"),
        "run_ms": round(elapsed_ms, 3),
        "baseline_rss_mb": round(baseline / MB, 2),
        "peak_rss_mb": round(peak / MB, 2),
        "delta_rss_mb": round((peak - baseline) / MB, 2),
        "rss_samples": {"baseline": before.samples, "during": during.samples, "every_ms": SAMPLE_S * 1000},
    }


def run(n: int = 20) -> dict[str, Any]:
    """Cold and warm python3 starts with a dependency, warm node starts, and RSS under a 10 MB flood."""
    bwrap = sandbox_mod.usable_bwrap()
    mode = os.environ.get("ATTUNE_SANDBOX") or "auto"
    root = Path(tempfile.mkdtemp(prefix="attune-bench-runners-"))
    try:
        with _deps_dir(root / "deps"):
            results = {
                "python3_one_dependency": _python_with_dependency(root, n),
                "node_one_dependency": _node_with_dependency(root, n),
                "worker_rss_10mb_stdout": _flood(),
            }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    sandboxed = mode != "off" and bwrap is not None
    return {
        "benchmark": "runners",
        "n": n,
        "sandbox_setting": mode,
        "bwrap": bwrap,
        "sandboxed": sandboxed,
        "results": results,
        "notes": (
            "wall time of one Runner.run per sample, no cloud; cold = deps.python_env on an empty "
            "ATTUNE_DEPS_DIR (uv venv + uv pip install, downloading into a fresh cache) + the first run; "
            "warm = the next n runs on the built env; node: node_modules built once (npm install), "
            "one warm-up run (first_run_ms), then n runs; RSS: this process (the worker's side of a run), "
            f"sampled every {SAMPLE_S * 1000:g} ms for {BASELINE_S:g} s before the run (baseline) and during it "
            "(peak)" + ("" if sandboxed else "; actions ran unconfined")
        ),
    }
