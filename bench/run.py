"""`make bench`: start a local cloud, run every benchmark, write JSON to bench/results/.

Set ATTUNE_BENCH_URL to measure a cloud that is already running.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bench import api_latency
from chalicelib.local.harness import running_cloud

RESULTS = Path(__file__).parent / "results"


def _machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


def _run_all(url: str) -> list[dict[str, Any]]:
    return [api_latency.run(url)]


def main() -> int:
    """Run the benchmarks and print one JSON document per benchmark."""
    RESULTS.mkdir(exist_ok=True)
    given = os.environ.get("ATTUNE_BENCH_URL")
    if given:
        reports = _run_all(given)
    else:
        with running_cloud() as cloud:
            reports = _run_all(cloud.url)
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
