"""The remote runner: a script action runs in ActionRunnerFunction, while the worker keeps its lifecycle.

On AWS the worker's role reads the database, the JWT key, the KMS data key
and the queues, so tenant code must not run beside it. When the worker is
told a runner function (ATTUNE_ACTION_RUNNER_FUNCTION), the registry hands
it this runner for python3, shell and node actions instead of a process
runner. It has the same interface: the worker claims, beats, opens secrets,
masks and records exactly as for a local run; only where the process runs
changes. The function gets what the action needs and nothing of the
worker's (`RunnerInvocation`): its parameters (declared secrets opened), its
code or entry point, a presigned URL of its pack archive, its limits, and
the context with the execution-scoped token. Its answer (`RunnerReply`) is
checked before it becomes a RunResult, since the action ran beside the code
that wrote it.

What cannot cross: pack dependencies (a virtualenv or node_modules built by
the worker lives on the worker's disk), so such actions are refused before
they start (`dependency_refusal`); and a cancel, which can only be seen
once the invocation returns, because Lambda cannot stop a running one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from chalicelib.aws import lambdas, storage
from chalicelib.core.errors import ValidationFailed
from chalicelib.core.runners import SCRIPT_RUNNERS
from chalicelib.models.base import Contract
from chalicelib.runners.base import DEFAULT_GRACE_S, RunRequest, RunResult, check_request, resolve_entry_point

log = logging.getLogger(__name__)

# The runners whose tenant code the function can run: python3, shell, node. http and container stay with the worker.
REMOTE_RUNNER_TYPES = SCRIPT_RUNNERS
PACK_URL_TTL_S = 600  # the function fetches the pack first thing; minutes are plenty
DEPENDENCIES = {"python3": "requirements.txt", "node": "package.json"}  # what chalicelib.worker.deps builds from
DEPENDENCY_REFUSAL = (
    "the pack declares dependencies ({file}), which the action runner function cannot install; "
    "packs with dependencies need the container/ECS worker on AWS"
)


class RunnerInvocation(Contract):
    """What the worker sends the runner function: one action, nothing of the platform's."""

    execution_id: int = Field(ge=1)
    runner_type: Literal["python3", "shell", "node"]
    parameters: dict[str, Any]
    code: str | None = None
    entry_point: str | None = None
    pack_url: str | None = None
    timeout_s: float = Field(gt=0)
    max_output_bytes: int = Field(gt=0)
    grace_s: float = Field(default=DEFAULT_GRACE_S, ge=0)
    context: dict[str, Any]


class RunnerReply(Contract):
    """What the runner function answers: a RunResult as a dict (`dataclasses.asdict`)."""

    status: Literal["succeeded", "failed"]
    exit_code: int | None
    stdout: str
    stderr: str
    output: Any
    error: str | None
    timed_out: bool
    pid: int | None
    duration_s: float = Field(ge=0)


def runs_remotely(runner_type: str, runner_function: str | None) -> bool:
    """Whether an action of this type goes to the runner function (one is configured and can run it)."""
    return bool(runner_function) and runner_type in REMOTE_RUNNER_TYPES


def dependency_refusal(runner_type: str, pack_dir: Path | None, runner_function: str | None) -> str | None:
    """Why this pack action cannot run remotely (its pack has dependencies to install), or None.

    Mirrors what `chalicelib.worker.deps` would build: a non-empty
    requirements.txt for python3, a package.json for node.
    """
    name = DEPENDENCIES.get(runner_type)
    if pack_dir is None or name is None or not runs_remotely(runner_type, runner_function):
        return None
    path = pack_dir / name
    if not path.is_file() or (name == "requirements.txt" and not path.read_text(errors="replace").strip()):
        return None
    return DEPENDENCY_REFUSAL.format(file=name)


def build_payload(request: RunRequest, *, pack_url: str | None, grace_s: float) -> dict[str, Any]:
    """The invocation payload for `request`: the fields a runner needs, as JSON-ready values.

    Worker-side paths (pack_dir, python, node_modules) and the typed spec do
    not travel: the function has its own disk and needs none of them.
    """
    invocation = RunnerInvocation.model_validate({
        "execution_id": request.execution_id, "runner_type": request.runner_type,
        "parameters": request.parameters, "code": request.code, "entry_point": request.entry_point,
        "pack_url": pack_url, "timeout_s": float(request.timeout_s), "max_output_bytes": request.max_output_bytes,
        "grace_s": float(grace_s), "context": request.context,
    })
    return invocation.model_dump(mode="json")


def failed(error: str, duration_s: float = 0.0) -> RunResult:
    """A failed result for an action that did not run to an answer."""
    return RunResult(status="failed", exit_code=None, stdout="", stderr="", output=None, error=error,
                     timed_out=False, pid=None, duration_s=round(duration_s, 3))


def to_result(reply: Any, elapsed_s: float) -> RunResult:
    """The function's answer as the RunResult the worker records; an unreadable one is a failure that says so.

    The pid is dropped: it names a process on another machine. A failure the
    function itself reported (a crash: no duration) takes the wall time of
    the invocation.
    """
    try:
        found = RunnerReply.model_validate(reply)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the result"
        return failed(f"the action runner function returned an unreadable result ({where}: {first['msg']})",
                      elapsed_s)
    return RunResult(status=found.status, exit_code=found.exit_code, stdout=found.stdout, stderr=found.stderr,
                     output=found.output, error=found.error, timed_out=found.timed_out, pid=None,
                     duration_s=found.duration_s or round(elapsed_s, 3))


class RemoteRunner:
    """Runs one script action in ActionRunnerFunction; a `Runner` like the process runners.

    `pack_key` is the storage key of the pack archive for pack-file actions:
    the function cannot read the bucket, so it is sent a presigned URL of that
    one object, signed just before the invocation.
    """

    def __init__(self, function_name: str, *, grace_s: float = DEFAULT_GRACE_S, pack_key: str | None = None) -> None:
        self.function_name = function_name
        self.grace_s = grace_s
        self.pack_key = pack_key

    def run(
        self,
        request: RunRequest,
        *,
        cancel: threading.Event | None = None,
        on_started: Callable[[int], None] | None = None,
    ) -> RunResult:
        """Invoke the function and wait for its answer; a malformed request raises ValidationFailed, as locally.

        `on_started` is never called: there is no local process. A cancel set
        before the invocation stops it from starting; one set during it cannot
        stop the function, so the action's real outcome is returned.
        """
        check_request(request)
        pack_url: str | None = None
        if request.code is None:
            assert request.entry_point is not None  # check_request guarantees it
            resolve_entry_point(request.pack_dir, request.entry_point)  # the same refusal as a local run, no invoke
            if self.pack_key is None:
                raise ValidationFailed(f"entry_point {request.entry_point!r} needs the pack, but it has no archive")
        if cancel is not None and cancel.is_set():
            return RunResult(status="canceled", exit_code=None, stdout="", stderr="", output=None, error="canceled",
                             timed_out=False, pid=None, duration_s=0.0)
        if self.pack_key is not None and request.code is None:
            pack_url = storage.presigned_pack_url(self.pack_key, PACK_URL_TTL_S)
        payload = build_payload(request, pack_url=pack_url, grace_s=self.grace_s)
        started = time.monotonic()
        reply = lambdas.invoke_runner(self.function_name, payload)  # looked up now: tests replace the edge
        result = to_result(reply, time.monotonic() - started)
        if cancel is not None and cancel.is_set():
            log.warning("execution %d: stopped while the runner function ran it; the function cannot be stopped, "
                        "so its %s result is kept", request.execution_id, result.status)
        return result
