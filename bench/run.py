"""`make bench`: start a local cloud, run every benchmark, write JSON to bench/results/.

Set ATTUNE_BENCH_URL to measure a cloud that is already running (and
ATTUNE_BENCH_AWS_ENDPOINT_URL to its AWS endpoint, for the pipeline's queue
depth); ATTUNE_BENCH_ONLY=pipeline (comma-separated names) runs a subset.
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

from bench import api_latency, pipeline, timers
from chalicelib.local.harness import running_cloud

RESULTS = Path(__file__).parent / "results"


def _machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


def _run_all(url: str, aws_endpoint_url: str | None = None) -> list[dict[str, Any]]:
    benchmarks: dict[str, Callable[[], dict[str, Any]]] = {
        "api_latency": lambda: api_latency.run(url),
        "pipeline": lambda: pipeline.run(url, aws_endpoint_url),
        "timers": lambda: timers.run(url),
    }
    only = {name for name in os.environ.get("ATTUNE_BENCH_ONLY", "").split(",") if name}
    return [bench() for name, bench in benchmarks.items() if not only or name in only]


def main() -> int:
    """Run the benchmarks and print one JSON document per benchmark."""
    RESULTS.mkdir(exist_ok=True)
    given = os.environ.get("ATTUNE_BENCH_URL")
    if given:
        reports = _run_all(given, os.environ.get("ATTUNE_BENCH_AWS_ENDPOINT_URL"))
    else:
        with running_cloud() as cloud:
            reports = _run_all(cloud.url, cloud.aws_endpoint_url)
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
