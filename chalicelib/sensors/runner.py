"""One poll of one sensor: its class's `poll(state)` in its own process, in the sandbox actions use, with a timeout.

The machinery is the actions' (`chalicelib.runners.process.run_process`): a
process group, SIGTERM then SIGKILL past the timeout, bounded output, an
environment built from nothing, and on Linux with bubblewrap the same bare
filesystem, namespaces and limits. What differs is the wrapper (it builds
the class and calls `poll`), the uid range (sensors never share a uid with
an execution of the same number), and the directories the operator lets the
tenant's sensors watch, bound read-only at their host paths. A poll has no
Attune API token: it reports what it found by returning it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from chalicelib.core.errors import ValidationFailed
from chalicelib.runners.base import Outcome, Prepared, RunRequest, resolve_entry_point
from chalicelib.runners.process import run_process
from chalicelib.runners.sandbox import MOUNT_ROOT, base_python, sandbox_for, work_dir

WRAPPER = Path(__file__).resolve().with_name("wrapper.py")
WRAPPER_MOUNT = MOUNT_ROOT / "sensor_wrapper.py"
# Sandbox uids are UID_BASE + key; executions take keys from their id, sensors the top tenth of the span.
UID_KEY_BASE = 900_000
UID_KEYS = 100_000
GRACE_S = 2.0
MAX_PAYLOADS = 100
MAX_OUTPUT_BYTES = 1024 * 1024
STDERR_TAIL = 2000

PollStatus = Literal["succeeded", "failed", "timed_out"]


@dataclass(frozen=True)
class PollJob:
    """Everything one poll needs, read from the sensor's row and its pack."""

    sensor_id: int
    pack_dir: Path
    path: str  # the sensor's Python file, from the pack root
    class_name: str
    state: Any
    parameters: dict[str, Any]
    timeout_s: float
    python: str | None = None  # the pack's virtualenv interpreter, when it has requirements
    watch_dirs: tuple[Path, ...] = ()


@dataclass(frozen=True)
class PollResult:
    """What a poll found (`payloads`, `state`) or why it found nothing (`error`)."""

    status: PollStatus
    payloads: list[Any] = field(default_factory=list)
    state: Any = None
    error: str | None = None
    duration_s: float = 0.0


def allowed_dirs(tenant_name: str, configured: Sequence[tuple[str, Sequence[str]]]) -> tuple[Path, ...]:
    """The directories `tenant_name`'s sensors may read: its own entries and `*`'s, existing ones only."""
    found: list[Path] = []
    for tenant, dirs in configured:
        if tenant in (tenant_name, "*"):
            found += [Path(d) for d in dirs if Path(d).is_dir() and Path(d) not in found]
    return tuple(found)


def _with_stderr(message: str, outcome: Outcome) -> str:
    tail = outcome.stderr.text().strip()[-STDERR_TAIL:]
    return f"{message}\n{tail}" if tail else message


def interpret(outcome: Outcome, timeout_s: float) -> PollResult:
    """The poll's result from what its process did and wrote on the result channel."""
    duration = round(outcome.duration_s, 3)
    if outcome.timed_out:
        return PollResult("timed_out", error=_with_stderr(f"poll timed out after {timeout_s:g}s", outcome),
                          duration_s=duration)
    if outcome.spawn_error is not None:
        return PollResult("failed", error=outcome.spawn_error, duration_s=duration)
    channel = outcome.channel
    if channel is not None and channel.truncated:
        return PollResult("failed", error=f"poll() returned more than {MAX_OUTPUT_BYTES} bytes of JSON",
                          duration_s=duration)
    doc: Any = None
    if channel is not None and channel.data:
        try:
            doc = json.loads(bytes(channel.data))
        except ValueError:
            doc = None
    if isinstance(doc, dict) and "error" in doc:
        return PollResult("failed", error=_with_stderr(str(doc["error"]), outcome), duration_s=duration)
    if not isinstance(doc, dict) or not isinstance(doc.get("payloads"), list):
        why = f"the poll process ended (exit code {outcome.exit_code}) without an answer"
        return PollResult("failed", error=_with_stderr(why, outcome), duration_s=duration)
    payloads = doc["payloads"]
    if len(payloads) > MAX_PAYLOADS:
        return PollResult("failed", duration_s=duration, error=(
            f"poll() returned {len(payloads)} payloads; at most {MAX_PAYLOADS} per poll "
            "(keep the rest in the state and return them on the next poll)"))
    return PollResult("succeeded", payloads=payloads, state=doc.get("state"), duration_s=duration)


def run_poll(job: PollJob) -> PollResult:
    """Run one poll to the end; never raises for the sensor's own failures (they are the result)."""
    pack_dir = job.pack_dir.resolve()
    try:
        path = resolve_entry_point(pack_dir, job.path)
        sandbox = sandbox_for(UID_KEY_BASE + job.sensor_id % UID_KEYS, job.timeout_s)
    except ValidationFailed as exc:  # a file gone from the pack, or ATTUNE_SANDBOX=required without bwrap
        return PollResult("failed", error=exc.message)
    if sandbox is not None:
        sandbox = replace(sandbox, watch_dirs=job.watch_dirs)
    python = job.python or base_python()
    request = RunRequest(
        execution_id=0, runner_type="python3", parameters={"state": job.state, "parameters": job.parameters},
        timeout_s=job.timeout_s, max_output_bytes=MAX_OUTPUT_BYTES, context={"sensor_id": job.sensor_id},
    )
    key = UID_KEY_BASE + job.sensor_id % UID_KEYS
    with work_dir(key, sandbox.uid if sandbox is not None else None) as cwd:
        seen = Prepared(path, cwd, pack_dir, sandbox)
        wrapper = WRAPPER_MOUNT if sandbox is not None else WRAPPER
        outcome = run_process(
            request,
            lambda fd: [python, "-s", str(wrapper), str(fd), str(seen.seen(path)), job.class_name],
            cwd=cwd,
            grace_s=GRACE_S,
            channel=True,
            sandbox=sandbox,
            pack_dir=pack_dir,
            python=python,
            mounts=[(WRAPPER, WRAPPER_MOUNT)],
        )
    return interpret(outcome, job.timeout_s)
