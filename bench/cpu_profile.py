"""Where a local cloud's CPU goes: CPU-milliseconds per execution for each of its processes.

The supervisor publishes its own pid, every role's and the emulators' in
`<data_dir>/cloud.json`; a role's figure is its own process plus what its
children used (action subprocesses are the worker's children, reaped by it,
so `cpu_times().children_*` holds them once they exit; the actions a live
zygote forked are in that zygote's own children's times). PostgreSQL is its
postmaster and every backend; moto is its server process. Sampling before
and after a steady load and dividing by the executions completed in between
gives the figure that is reproducible from run to run, and that says which
process a change must make cheaper.

On AWS, Lambda bills each role's handler time, not the emulators': the
"billable" sum leaves moto and PostgreSQL out (and the supervisor, which
does not exist there).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

EMULATORS = ("moto", "postgres")
NOT_ON_AWS = (*EMULATORS, "supervisor")


def _tree(pid: int | None) -> list[psutil.Process]:
    if pid is None:
        return []
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cloud_processes(data_dir: Path) -> dict[str, int]:
    """name -> pid of every top-level process of the cloud (roles, emulators, the supervisor)."""
    info = json.loads((data_dir / "cloud.json").read_text())
    named: dict[str, int] = {str(k): int(v) for k, v in (info.get("roles") or {}).items()}
    for name, key in (("moto", "moto_pid"), ("postgres", "postgres_pid"), ("supervisor", "supervisor_pid")):
        if info.get(key):
            named[name] = int(info[key])
    return named


@dataclass(frozen=True)
class Sample:
    """CPU seconds per named process: its own (`self`) and its reaped children's (`children`)."""

    own: dict[str, float]
    children: dict[str, float]


def _own_and_children(proc: psutil.Process) -> tuple[float, float]:
    times = proc.cpu_times()
    return times.user + times.system, times.children_user + times.children_system


def sample(data_dir: Path) -> Sample:
    """CPU used so far by each process of the cloud; PostgreSQL counts its backends, a role its live children."""
    own: dict[str, float] = {}
    children: dict[str, float] = {}
    for name, pid in cloud_processes(data_dir).items():
        try:
            mine, reaped = _own_and_children(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
        live = 0.0
        if name != "supervisor":  # the supervisor's children are the roles, counted on their own
            for child in _tree(pid)[1:]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    # its own time and its reaped children's: a zygote's are the actions it forked
                    live += sum(_own_and_children(child))
        if name == "postgres":  # backends are the server's work, not a separate role
            own[name], children[name] = mine + live + reaped, 0.0
        else:
            own[name], children[name] = mine, reaped + live
    return Sample(own, children)


def per_execution(before: Sample, after: Sample, executions: int) -> dict[str, Any]:
    """CPU-ms per execution by process (own, children), the total, and what Lambda would bill."""
    if executions <= 0:
        return {"executions": 0}
    rows: dict[str, dict[str, float]] = {}
    for name in after.own:
        own = (after.own[name] - before.own.get(name, after.own[name])) * 1000 / executions
        kids = (after.children[name] - before.children.get(name, after.children[name])) * 1000 / executions
        rows[name] = {"own_ms": round(own, 2), "children_ms": round(kids, 2)}
    total = sum(r["own_ms"] + r["children_ms"] for r in rows.values())
    billable = {n: round(r["own_ms"] + r["children_ms"], 2) for n, r in rows.items() if n not in NOT_ON_AWS}
    ordered = dict(sorted(rows.items(), key=lambda kv: -(kv[1]["own_ms"] + kv[1]["children_ms"])))
    return {
        "executions": executions,
        "cpu_ms_per_execution": ordered,
        "total_ms": round(total, 2),
        "emulators_ms": round(sum(rows[n]["own_ms"] for n in EMULATORS if n in rows), 2),
        "aws_billable_ms": {"by_role": billable, "total_ms": round(sum(billable.values()), 2),
                            "note": "role processes incl. their action subprocesses; moto, PostgreSQL and the "
                                    "supervisor excluded (not billed as Lambda time)"},
    }


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all but idle and iowait), from /proc/stat.

    The cross-check on the per-process figures: it also counts what escaped
    them (an action process its parent never reaped into its children's
    times), and anything else running on the machine, so it is an upper bound.
    """
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)
    return busy / os.sysconf("SC_CLK_TCK")


def pss_bytes(data_dir: Path) -> int:
    """Proportional set size of the whole cloud: every role, its children, moto, PostgreSQL, the supervisor."""
    seen: set[int] = set()
    total = 0
    for pid in cloud_processes(data_dir).values():
        for proc in _tree(pid):
            if proc.pid in seen:
                continue
            seen.add(proc.pid)
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                total += int(proc.memory_full_info().pss)
    return total


def emulator_calls(data_dir: Path, timeout: float = 10.0) -> dict[str, int]:
    """The API calls the cloud's moto served so far, by `service:action` (it writes them on SIGUSR2); {} if none."""
    pid = cloud_processes(data_dir).get("moto")
    path = data_dir / "moto-calls.json"
    if pid is None:
        return {}
    before = path.stat().st_mtime_ns if path.exists() else 0
    os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_mtime_ns != before:
            return {str(k): int(v) for k, v in json.loads(path.read_text()).items()}
        time.sleep(0.05)
    return {}


def calls_per_execution(before: dict[str, int], after: dict[str, int], executions: int) -> dict[str, Any]:
    """SQS (and other emulator) calls per execution between two counts, by action, and in total."""
    if executions <= 0 or not after:
        return {}
    rows = {k: round((v - before.get(k, 0)) / executions, 3) for k, v in sorted(after.items())
            if v - before.get(k, 0) > 0}
    return {"by_action": rows, "sqs_total": round(sum(v for k, v in rows.items() if k.startswith("sqs:")), 3),
            "total": round(sum(rows.values()), 3)}
