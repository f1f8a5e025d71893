"""Action runner Lambda: runs one tenant action, and nothing else, under a role that grants nothing.

On AWS, tenant code must not run inside the worker Lambda, whose role reads
the database URL, the JWT signing key, the KMS data key and the queues. The
worker keeps the execution's lifecycle (claim, heartbeat, result, audit) and
invokes this function synchronously with what the action needs:

    {"execution_id": 7, "runner_type": "python3", "parameters": {...},
     "code": "..." | null, "entry_point": "hello.py" | null,
     "pack_url": "https://<presigned S3 GET of the pack archive>" | null,
     "timeout_s": 60, "max_output_bytes": 1048576, "grace_s": 5,
     "context": {"api_url": ..., "token": <execution-scoped JWT>, ...}}

(`chalicelib.runners.remote.RunnerInvocation`: the worker builds the
payload with it and this handler checks it against it) and stores the
returned RunResult. The function's role may only write its own log group:
no S3 rights either, so pack files arrive as a presigned URL the worker signs
(valid for minutes, for one object). Its environment carries no database URL
and no bucket, and it is not in a VPC. The handler is thin: parse, run with
`chalicelib.runners` exactly as the worker would, return. Nothing here logs
the payload: it holds the action's secrets and its token.

The sensor function sends its polls here too (`{"kind": "sensor_poll", ...}`,
`chalicelib.sensors.remote.SensorPollInvocation`): a sensor's class is tenant
code as well. The poll runs with `chalicelib.sensors.runner.run_poll`, as a
local poll does, and the PollResult goes back; the sensor function records
the state and emits the events.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from chalicelib.core.errors import ValidationFailed
from chalicelib.observability import configure_logging
from chalicelib.runners import RunRequest, RunResult, leftovers, runner_for
from chalicelib.runners.remote import RunnerInvocation
from chalicelib.sensors.remote import POLL_KIND, SensorPollInvocation
from chalicelib.sensors.runner import PollJob, PollResult, run_poll

configure_logging()
# What this environment held before any tenant code ran: after each invocation the rest is removed.
BASELINE = leftovers.snapshot() if leftovers.in_lambda() else None

MAX_PACK_BYTES = 256 * 1024 * 1024
# Kept back from the function's remaining time when capping an action's timeout: the answer must still be sent.
RESERVE_S = 10.0


def fetch_pack(url: str, dest: Path) -> Path:
    """Download the pack archive from its presigned HTTPS URL and unpack it under `dest`.

    tarfile's `data` filter refuses members that would land outside `dest`,
    links out of it and device files: the archive is not trusted here either.
    """
    if urllib.parse.urlsplit(url).scheme != "https":
        raise ValidationFailed("pack_url must be an https URL (a presigned S3 GET)")
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 - https checked above
            data = resp.read(MAX_PACK_BYTES + 1)
    except OSError as exc:  # URLError, HTTPError (an expired URL is a 403), timeouts
        raise ValidationFailed(f"could not fetch the pack archive: {exc}") from exc
    return unpack_pack(data, dest)


def unpack_pack(data: bytes, dest: Path) -> Path:
    """Unpack a downloaded archive under `dest`, refusing one larger than the runner accepts."""
    if len(data) > MAX_PACK_BYTES:
        raise ValidationFailed("the pack archive is larger than the runner accepts")
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            tar.extractall(dest, filter="data")
    except tarfile.TarError as exc:  # not a tar.gz, or a member the data filter refuses
        raise ValidationFailed(f"the pack archive cannot be unpacked: {exc}") from exc
    return dest


def run_request(invocation: RunnerInvocation, pack_dir: Path | None, budget_s: float | None = None) -> RunRequest:
    """The RunRequest the worker would have built, from the invocation's payload.

    `budget_s` is what is left of this function's own time: an action is
    stopped before Lambda kills the function, so that its partial output and
    "timed out" come back instead of a bare "Task timed out".
    """
    timeout_s = invocation.timeout_s
    if budget_s is not None:
        timeout_s = max(1.0, min(timeout_s, budget_s - invocation.grace_s - RESERVE_S))
    return RunRequest(
        execution_id=invocation.execution_id,
        runner_type=invocation.runner_type,
        parameters=dict(invocation.parameters),
        code=invocation.code,
        entry_point=invocation.entry_point,
        pack_dir=pack_dir,
        timeout_s=timeout_s,
        max_output_bytes=invocation.max_output_bytes,
        context=dict(invocation.context),
    )


def _invalid(exc: ValidationError) -> ValidationFailed:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "payload"
    return ValidationFailed(f"the runner was invoked with an invalid payload ({where}: {first['msg']})")


def poll(event: dict[str, Any], work_dir: Path, deadline: float | None = None) -> PollResult:
    """Check a sensor poll's payload, fetch its pack into `work_dir`, and run the poll to its end.

    The poll's timeout is capped to what is left of this function's time, so
    "timed out" comes back rather than Lambda's bare "Task timed out".
    """
    try:
        invocation = SensorPollInvocation.model_validate(event)
    except ValidationError as exc:
        raise _invalid(exc) from exc
    pack_dir = fetch_pack(invocation.pack_url, work_dir / "pack")
    timeout_s = invocation.timeout_s
    if deadline is not None:
        timeout_s = max(1.0, min(timeout_s, deadline - time.monotonic() - RESERVE_S))
    return run_poll(PollJob(
        sensor_id=invocation.sensor_id, pack_dir=pack_dir, path=invocation.entry_point,
        class_name=invocation.class_name, state=invocation.state, parameters=dict(invocation.parameters),
        timeout_s=timeout_s,
    ))


def _deadline(context: Any) -> float | None:
    """When Lambda will stop this invocation (time.monotonic), or None outside Lambda."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return time.monotonic() + remaining() / 1000 if callable(remaining) else None


def run(event: dict[str, Any], work_dir: Path, deadline: float | None = None) -> RunResult:
    """Check the payload, fetch the pack (if any) into `work_dir`, then run the action to completion.

    `runner_for` is given no runner function: this is where the action runs.
    """
    try:
        invocation = RunnerInvocation.model_validate(event)
    except ValidationError as exc:
        raise _invalid(exc) from exc
    pack_dir = fetch_pack(invocation.pack_url, work_dir / "pack") if invocation.pack_url else None
    budget_s = deadline - time.monotonic() if deadline is not None else None
    request = run_request(invocation, pack_dir, budget_s)
    return runner_for(request.runner_type, grace_s=invocation.grace_s).run(request)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point: the RunResult (or a poll's PollResult) as a dict; a refused request is a failed result.

    Whatever the action left behind (processes, /tmp files) is removed before
    this warm environment can take another tenant's invocation.
    """
    try:
        return _handle(event, context)
    finally:
        if BASELINE is not None:
            leftovers.scrub(BASELINE)


def _handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    deadline = _deadline(context)
    if event.get("kind") == POLL_KIND:
        with tempfile.TemporaryDirectory(prefix="attune-poll-") as work:
            try:
                polled = poll(event, Path(work), deadline)
            except ValidationFailed as exc:
                polled = PollResult("failed", error=exc.message)
        return asdict(polled)
    with tempfile.TemporaryDirectory(prefix="attune-run-") as work:
        try:
            result = run(event, Path(work), deadline)
        except ValidationFailed as exc:
            result = RunResult(status="failed", exit_code=None, stdout="", stderr="", output=None,
                               error=exc.message, timed_out=False, pid=None, duration_s=0.0)
    return asdict(result)
