"""What every runner shares: the request/result contract and how a finished process becomes a result.

The worker hands a `RunRequest` to a runner and gets a `RunResult` back; the
runner owns one OS process for the whole time. The process machinery (process
group, SIGTERM -> grace -> SIGKILL, reaping, a scrubbed environment) lives in
`chalicelib.runners.process` and bounded output capture in
`chalicelib.runners.output`, so that python3 and shell (and later node)
behave the same on the hard parts.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from chalicelib.core.errors import ValidationFailed
from chalicelib.core.runners import ActionSpec
from chalicelib.runners.output import OutputBuffer, parse_json_output
from chalicelib.runners.sandbox import Sandbox, inside, sandbox_for, work_dir

DEFAULT_GRACE_S = 5.0


def describe_exit(exit_code: int | None) -> str:
    """One line for a failed process: "exit code 1", or the signal that killed it."""
    if exit_code is None:
        return "the action did not run"
    if exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        return f"killed by signal {name}"
    return f"exit code {exit_code}"


@dataclass(frozen=True)
class RunRequest:
    """One action execution as the worker asks for it; parameters are already validated."""

    execution_id: int
    runner_type: str
    parameters: dict[str, Any]
    code: str | None = None
    entry_point: str | None = None
    pack_dir: Path | None = None
    python: str | None = None
    node_modules: Path | None = None  # the pack's, for node actions with a package.json
    timeout_s: float = 600
    max_output_bytes: int = 1024 * 1024
    context: dict[str, Any] = field(default_factory=dict)
    spec: ActionSpec | None = None  # the whole typed action (http_config, image, retry...) for runners that need it


@dataclass
class RunResult:
    """What the worker stores as the execution's result and final status."""

    status: str
    exit_code: int | None
    stdout: str
    stderr: str
    output: Any
    error: str | None
    timed_out: bool
    pid: int | None
    duration_s: float


class Runner(Protocol):
    """Runs one action to completion in its own process; the worker's only view of a runner."""

    def run(
        self,
        request: RunRequest,
        *,
        cancel: threading.Event | None = None,
        on_started: Callable[[int], None] | None = None,
    ) -> RunResult: ...


@dataclass
class Outcome:
    """The raw facts of one finished process, before a runner interprets them."""

    exit_code: int | None
    stdout: OutputBuffer
    stderr: OutputBuffer
    channel: OutputBuffer | None
    timed_out: bool = False
    canceled: bool = False
    killed: bool = False
    pid: int | None = None
    duration_s: float = 0.0
    spawn_error: str | None = None


def check_request(request: RunRequest) -> None:
    """Refuse requests no process should be started for, with messages a user can act on."""
    if request.timeout_s <= 0:
        raise ValidationFailed(f"timeout must be positive, got {request.timeout_s}")
    if request.max_output_bytes <= 0:
        raise ValidationFailed(f"max_output_bytes must be positive, got {request.max_output_bytes}")
    if request.code is not None and request.entry_point:
        raise ValidationFailed("an action has either inline code or an entry_point, not both")
    if request.code is None and not request.entry_point:
        raise ValidationFailed("the action has neither inline code nor an entry_point")


def resolve_entry_point(pack_dir: Path | None, entry_point: str) -> Path:
    """The action file inside the pack; anything that would escape the pack is refused.

    Resolving follows symlinks, so a link pointing outside the pack is refused
    as well as `../` and absolute paths.
    """
    if pack_dir is None:
        raise ValidationFailed(f"entry_point {entry_point!r} needs the pack's files, but no pack_dir was given")
    root = pack_dir.resolve()
    if Path(entry_point).is_absolute():
        raise ValidationFailed(f"entry_point {entry_point!r} must be relative to the pack")
    target = (root / entry_point).resolve()
    if not target.is_relative_to(root):
        raise ValidationFailed(f"entry_point {entry_point!r} points outside the pack")
    if not target.is_file():
        raise ValidationFailed(f"entry_point {entry_point!r} does not exist in the pack")
    return target


@dataclass(frozen=True)
class Prepared:
    """Where one action runs: the file to run, its fresh work dir (cwd), the pack, its sandbox.

    Paths here are the host's; `seen` gives the path the action itself sees
    (in the sandbox, the work dir is WORK_MOUNT and the pack PACK_MOUNT), which
    is what an argv or an environment variable for the action must name.
    """

    path: Path
    work_dir: Path
    pack_dir: Path | None
    sandbox: Sandbox | None

    def seen(self, path: Path) -> Path:
        """`path` as the action sees it: unchanged when it runs unconfined."""
        if self.sandbox is None:
            return path
        return inside(path, work_dir=self.work_dir, pack_dir=self.pack_dir)


@contextmanager
def action_file(request: RunRequest, filename: str) -> Iterator[Prepared]:
    """The pack's entry point (or inline code, written into the work dir), a fresh work dir, the sandbox.

    The work dir is the action's cwd and HOME, private to it and removed
    afterwards; the pack stays read-only. Under ATTUNE_SANDBOX=required
    without a usable bwrap, SandboxUnavailable (a ValidationFailed) is raised
    before anything starts.
    """
    check_request(request)
    path: Path | None = None
    pack_dir = request.pack_dir.resolve() if request.pack_dir is not None else None
    if request.code is None:
        assert request.entry_point is not None  # check_request guarantees it
        path = resolve_entry_point(request.pack_dir, request.entry_point)
    sandbox = sandbox_for(request.execution_id, request.timeout_s)
    with work_dir(request.execution_id, sandbox.uid if sandbox is not None else None) as cwd:
        if path is None:
            assert request.code is not None
            path = cwd / filename
            path.write_text(request.code, encoding="utf-8")
        yield Prepared(path, cwd, pack_dir, sandbox)


def conclude(request: RunRequest, outcome: Outcome, *, output: Any = None, error: str | None = None) -> RunResult:
    """Turn the raw process facts into the status and one-line error the execution records.

    Precedence: canceled, then timeout, then a failure to start, then the
    runner's own error (e.g. run() raised), then a non-zero exit. An
    interrupted action has no output: its stdout is partial by definition.
    """
    exit_code = outcome.exit_code
    if outcome.canceled or outcome.timed_out:
        output = None
    # Which signal stopped it: SIGTERM, or SIGKILL once the grace period ran out.
    stopped = " (SIGKILL after the grace period)" if outcome.killed else " (SIGTERM)"
    if outcome.canceled:
        status, message = "canceled", "canceled"
    elif outcome.timed_out:
        status, message = "failed", f"timed out after {request.timeout_s:g}s{stopped}"
    elif outcome.spawn_error is not None:
        status, message = "failed", outcome.spawn_error
    elif error is not None:
        status, message = "failed", error
    elif exit_code != 0:
        status, message = "failed", describe_exit(exit_code)
    else:
        status, message = "succeeded", None
    return RunResult(
        status=status,
        exit_code=exit_code,
        stdout=outcome.stdout.text(),
        stderr=outcome.stderr.text(),
        output=output,
        error=message,
        timed_out=outcome.timed_out,
        pid=outcome.pid,
        duration_s=round(outcome.duration_s, 3),
    )


def stdout_output(outcome: Outcome) -> Any:
    """The action's stdout as JSON, when all of it is JSON and none of it was cut."""
    if outcome.stdout.truncated:
        return None
    return parse_json_output(outcome.stdout.text())
