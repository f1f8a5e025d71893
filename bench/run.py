"""`make bench`: start a local cloud, run every benchmark, write JSON to bench/results/.

Set ATTUNE_BENCH_URL to measure a cloud that is already running (and
ATTUNE_BENCH_AWS_ENDPOINT_URL to its AWS endpoint, for the pipeline's queue
depth, with the credentials of the usual AWS_ACCESS_KEY_ID/_SECRET_ACCESS_KEY
variables); ATTUNE_BENCH_ONLY=pipeline (comma-separated names) runs a subset.
Benchmarks that need no cloud (`sandbox`, `runners`) run without one: asked alone, no
cloud is started at all.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import (
    api_latency,
    notifications,
    package,
    peers,
    pipeline,
    ratelimit,
    runners,
    sandbox,
    soak,
    timers,
    workflows,
)
from chalicelib.local.harness import running_cloud

RESULTS = Path(__file__).parent / "results"


def _machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


# Benchmarks that measure code straight, without a cloud.
LOCAL: dict[str, Callable[[], dict[str, Any]]] = {
    "sandbox": sandbox.run,
    "runners": runners.run,
    "package": package.run,  # cold import of every deployed handler from build/sam (make package)
    "peers": peers.run,  # starts (and restarts, for start-up) a cloud of its own, then n8n
}


def _run_cloud(url: str, aws: dict[str, str], only: set[str], data_dir: Path | None = None) -> list[dict[str, Any]]:
    """The benchmarks of a running cloud; `aws` is boto3's endpoint_url and keys for its queues."""
    benchmarks: dict[str, Callable[[], dict[str, Any]]] = {
        "api_latency": lambda: api_latency.run(url),
        "pipeline": lambda: pipeline.run(url, aws.get("endpoint_url"), aws_keys=aws),
        "timers": lambda: timers.run(url),
        "workflows": lambda: workflows.run(url),
        "ratelimit": lambda: ratelimit.run(url, data_dir),
        "notifications": lambda: notifications.run(url, data_dir),
        "soak": lambda: soak.run(url, data_dir),
    }
    # The soak (10,000 executions, minutes) runs only when asked for by name.
    return [bench() for name, bench in benchmarks.items() if (not only and name != "soak") or name in only]


def _given_aws() -> dict[str, str]:
    """boto3 arguments for the AWS endpoint of a cloud we did not start (ATTUNE_BENCH_URL)."""
    endpoint = os.environ.get("ATTUNE_BENCH_AWS_ENDPOINT_URL")
    if not endpoint:
        return {}
    keys = {k: os.environ[v] for k, v in (("aws_access_key_id", "AWS_ACCESS_KEY_ID"),
                                          ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY")) if os.environ.get(v)}
    return {"endpoint_url": endpoint, **keys}


def main() -> int:
    """Run the benchmarks and print one JSON document per benchmark."""
    RESULTS.mkdir(exist_ok=True)
    only = {name for name in os.environ.get("ATTUNE_BENCH_ONLY", "").split(",") if name}
    reports = [bench() for name, bench in LOCAL.items() if not only or name in only]
    needs_cloud = not only or bool(only - set(LOCAL))
    given = os.environ.get("ATTUNE_BENCH_URL")
    if needs_cloud and given:
        reports += _run_cloud(given, _given_aws(), only)
    elif needs_cloud:
        with running_cloud() as cloud:
            reports += _run_cloud(cloud.url, cloud.boto3_kwargs(), only, cloud.data_dir)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for report in reports:
        report["machine"] = _machine()
        report["at"] = stamp
        path = RESULTS / f"{report['benchmark']}.json"
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
