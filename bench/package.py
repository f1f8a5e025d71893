"""Cold import time of every deployed handler (issue 15): what a Lambda cold start pays before the first event.

Each function's handler is imported from its packaged artifact (build/sam,
made by `make package` if it is missing) in a fresh process of an empty
virtualenv with only the artifact and the layer on the path, exactly as
`make check-package` does (infra/check_package.py), `n` times per function.
Reported per function: p50, min and max of the import alone (the module's
top level, timed inside the process), the CPU time of that import (p50),
and p50 of the whole process (the interpreter's own start included). The
300 ms aim is checked against the CPU time: on a shared, loaded machine the
wall time scales with the load average (recorded beside the figures), while
the CPU time is about what the import takes on an idle core.
"""

from __future__ import annotations

import os
import statistics
from typing import Any

from infra import check_package, package

TARGET_MS = 300.0


def run(n: int = 5) -> dict[str, Any]:
    """Measure every handler `n` times; raises if one does not import (that is a broken package, not a figure)."""
    out = check_package.ROOT / "build" / "sam"
    if not (out / "sam.yaml").is_file():
        package.main(["--out", str(out)])
    template = check_package.load_template(out / "sam.yaml")
    python = check_package.clean_venv(out.parent / "check-venv")
    layer = out / "layer" / "python"
    load_before = os.getloadavg()
    functions: dict[str, dict[str, Any]] = {}
    for fn in check_package.handlers(template, out):
        imports: list[float] = []
        cpus: list[float] = []
        walls: list[float] = []
        for _ in range(n):
            report = check_package.import_handler(python, fn, layer)
            if not report["ok"]:
                raise RuntimeError(f"{fn.logical_id} does not import from its artifact: {report['error']}")
            imports.append(float(report["import_ms"]))
            cpus.append(float(report["cpu_ms"]))
            walls.append(float(report["wall_ms"]))
        functions[fn.logical_id] = {
            "handler": fn.handler, "import_ms_p50": round(statistics.median(imports), 1),
            "import_ms_min": round(min(imports), 1), "import_ms_max": round(max(imports), 1),
            "import_cpu_ms_p50": round(statistics.median(cpus), 1),
            "process_ms_p50": round(statistics.median(walls), 1),
        }
    slowest = max(functions.values(), key=lambda f: f["import_cpu_ms_p50"])
    return {
        "benchmark": "package",
        "runs_per_function": n,
        "target_import_cpu_ms": TARGET_MS,
        "functions": functions,
        "over_target": sorted(k for k, v in functions.items() if v["import_cpu_ms_p50"] > TARGET_MS),
        "slowest_import_cpu_ms_p50": slowest["import_cpu_ms_p50"],
        "load_average": {"before": [round(x, 2) for x in load_before],
                         "after": [round(x, 2) for x in os.getloadavg()]},
    }
