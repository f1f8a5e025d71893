"""Soak: 10,000 executions through the local cloud, the AWS emulator's memory sampled as they pass.

Issue 10: moto's SQS kept every deleted receipt handle (~6 KB per execution,
forever); `local/moto_patches.py` bounds it. This drives executions of
`core.noop` (each one a `work` message sent, received and deleted) and records
the emulator's RSS every 1,000, so a leak shows as a slope. `ATTUNE_BENCH_SOAK_N`
changes the count.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil

PASSWORD = "soak-bench-password"  # noqa: S105 - a throwaway tenant of a throwaway cloud
STEP = 1000


def _rss_mb(pid: int) -> float:
    return round(float(psutil.Process(pid).memory_info().rss) / 1024 / 1024, 1)


def _succeeded(http: httpx.Client) -> int:
    body = http.get("/api/v1/executions", params={"status": "succeeded", "limit": 1, "offset": 0}).json()
    return int(body["total"])


def run(url: str, data_dir: Path | None) -> dict[str, Any]:
    """Drive N executions; the emulator's RSS after each 1,000 and the growth per execution."""
    report: dict[str, Any] = {"benchmark": "soak"}
    info_path = (data_dir / "cloud.json") if data_dir else None
    if info_path is None or not info_path.exists():
        report["skipped"] = "needs a cloud started by the bench (its cloud.json names the emulator's pid)"
        return report
    moto_pid = int(json.loads(info_path.read_text())["moto_pid"])
    total = int(os.environ.get("ATTUNE_BENCH_SOAK_N", "10000"))
    http = httpx.Client(base_url=url, timeout=30)
    name = f"soak-{uuid.uuid4().hex[:8]}"
    http.post("/auth/register", json={"username": name, "password": PASSWORD}).raise_for_status()
    token = http.post("/auth/login", json={"username": name, "password": PASSWORD}).json()["access_token"]
    http.headers["Authorization"] = f"Bearer {token}"
    samples = [{"executions": 0, "moto_rss_mb": _rss_mb(moto_pid)}]
    started = time.monotonic()

    def submit(_: int) -> None:
        for _attempt in range(5):
            resp = http.post("/api/v1/executions", json={"action_ref": "core.noop", "parameters": {}})
            if resp.status_code == 201:
                return
            time.sleep(0.2)
        resp.raise_for_status()

    with ThreadPoolExecutor(8) as pool:
        for batch in range(0, total, STEP):
            list(pool.map(submit, range(min(STEP, total - batch))))
            target = batch + STEP
            deadline = time.monotonic() + 300
            while _succeeded(http) < min(target, total) and time.monotonic() < deadline:
                time.sleep(0.5)
            samples.append({"executions": min(target, total), "moto_rss_mb": _rss_mb(moto_pid),
                            "elapsed_s": round(time.monotonic() - started, 1)})
    # Growth over the second half (the first fills caches and pools), per execution.
    half = samples[len(samples) // 2]
    last = samples[-1]
    per_exec_kb = (last["moto_rss_mb"] - half["moto_rss_mb"]) * 1024 / max(1, last["executions"] - half["executions"])
    report["results"] = {"executions": total, "succeeded": _succeeded(http), "samples": samples,
                         "moto_growth_second_half_kb_per_execution": round(per_exec_kb, 3),
                         "exec_per_s": round(total / (time.monotonic() - started), 1)}
    return report
