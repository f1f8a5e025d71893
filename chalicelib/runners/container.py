"""The container runner: an action's code run in its declared `image` through the Docker or Podman CLI.

The container gets what a sandboxed process gets, and no more: the pack
read-only at /attune/pack, parameters as JSON on stdin, no network, a
read-only root with a private /tmp, no capabilities or new privileges,
memory, CPU and process limits. It is named after the execution and removed
afterwards; on timeout or cancel it is killed (the CLI's `kill`, then `rm -f`),
so none leaks. Where no engine answers (no Docker on these machines), the
execution fails at once with "container engine unavailable: ...".

On AWS the same action is an ECS RunTask of the image with the pack mounted
from S3 (docs/actions.md); this runner is the local and long-lived-worker path.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

from chalicelib.config import sandbox_settings
from chalicelib.core import status
from chalicelib.runners.base import DEFAULT_GRACE_S, RunRequest, RunResult, describe_exit
from chalicelib.runners.output import OutputBuffer, parse_json_output

ENGINES = ("docker", "podman")
PROBE_TIMEOUT_S = 5.0
PROBE_TTL_S = 30.0
POLL_S = 0.1
_probe_lock = threading.Lock()
_probed: tuple[float, str | None, str] = (0.0, None, "")


def engine() -> tuple[str | None, str]:
    """(the CLI of an engine that answers, or None; why not). Probed at most every 30 s per process."""
    global _probed
    with _probe_lock:
        at, found, reason = _probed
        if time.monotonic() - at < PROBE_TTL_S:
            return found, reason
        found, reason = None, f"neither {' nor '.join(ENGINES)} is installed"
        for name in ENGINES:
            cli = shutil.which(name)
            if cli is None:
                continue
            try:
                probe = subprocess.run([cli, "info"], capture_output=True, timeout=PROBE_TIMEOUT_S, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                reason = f"{name} does not answer: {exc}"
                continue
            if probe.returncode == 0:
                found, reason = cli, ""
                break
            reason = f"{name} info failed: {probe.stderr.decode(errors='replace').strip()[:200]}"
        _probed = (time.monotonic(), found, reason)
        return found, reason


def command_for(request: RunRequest) -> list[str]:
    """What runs inside the image: the inline code with sh, or the entry point by its kind."""
    if request.code is not None:
        return ["sh", "-c", request.code]
    if request.entry_point is None:
        return []
    path = str(PurePosixPath("/attune/pack") / request.entry_point)
    if path.endswith(".py"):
        return ["python3", path]
    if path.endswith(".js"):
        return ["node", path]
    return ["sh", path]


def docker_argv(cli: str, request: RunRequest, name: str, image: str) -> list[str]:
    """The `run` command line: confined as the sandbox confines a process."""
    limits = sandbox_settings()
    argv = [cli, "run", "--rm", "-i", "--name", name, "--network", "none", "--read-only", "--tmpfs", "/tmp",  # noqa: S108 - the container's own /tmp
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--pids-limit", str(limits.processes),
            "--memory", f"{limits.memory_mb}m", "--cpus", "1", "--workdir", "/attune/pack"]
    if request.pack_dir is not None:
        argv += ["--volume", f"{request.pack_dir}:/attune/pack:ro"]
    return [*argv, image, *command_for(request)]


@dataclass
class ContainerRunner:
    """Runs an action in a container; one container per execution, removed afterwards."""

    grace_s: float = DEFAULT_GRACE_S

    def run(
        self,
        request: RunRequest,
        *,
        cancel: threading.Event | None = None,
        on_started: Callable[[int], None] | None = None,
    ) -> RunResult:
        """Run to completion, timeout or cancel; never raises for the action's own failures."""
        started = time.monotonic()
        image = request.spec.image if request.spec is not None else None
        cli, reason = engine()
        if cli is None or not image:
            error = f"container engine unavailable: {reason}" if cli is None else "the action names no image"
            return RunResult(status.FAILED, None, "", "", None, error, False, None, 0.0)
        name = f"attune-exec-{request.execution_id}-{uuid.uuid4().hex[:8]}"
        stdout, stderr = OutputBuffer(request.max_output_bytes), OutputBuffer(request.max_output_bytes)
        proc = subprocess.Popen(docker_argv(cli, request, name, image), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if on_started is not None:
            on_started(proc.pid)
        readers = [threading.Thread(target=_drain, args=(stream, buf), daemon=True)
                   for stream, buf in ((proc.stdout, stdout), (proc.stderr, stderr))]
        for reader in readers:
            reader.start()
        _feed_parameters(proc, request)
        timed_out = canceled = False
        while proc.poll() is None:
            if time.monotonic() - started > request.timeout_s:
                timed_out = True
            elif cancel is not None and cancel.is_set():
                canceled = True
            if timed_out or canceled:
                _stop(cli, name, proc, self.grace_s)
                break
            time.sleep(POLL_S)
        proc.wait()
        for reader in readers:
            reader.join(5)
        subprocess.run([cli, "rm", "-f", name], capture_output=True, timeout=30, check=False)  # none leak
        return _result(proc.returncode, stdout, stderr, timed_out=timed_out, canceled=canceled, request=request,
                       started=started)


def _drain(stream: object, buf: OutputBuffer) -> None:
    while chunk := stream.read(65536):  # type: ignore[attr-defined]
        buf.feed(chunk)


def _feed_parameters(proc: subprocess.Popen[bytes], request: RunRequest) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(json.dumps(request.parameters).encode())
        proc.stdin.close()
    except BrokenPipeError:
        pass


def _stop(cli: str, name: str, proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM the container, SIGKILL after the grace: the CLI's `stop -t`."""
    subprocess.run([cli, "stop", "-t", str(int(grace_s)), name], capture_output=True, timeout=grace_s + 30,
                   check=False)
    if proc.poll() is None:
        proc.kill()


def _result(code: int | None, stdout: OutputBuffer, stderr: OutputBuffer, *, timed_out: bool, canceled: bool,
            request: RunRequest, started: float) -> RunResult:
    text = stdout.text()
    duration = round(time.monotonic() - started, 3)
    if canceled:
        final, error = status.CANCELED, "canceled"
    elif timed_out:
        final, error = status.FAILED, f"timed out after {request.timeout_s:g}s; the container was stopped"
    elif code == 0:
        final, error = status.SUCCEEDED, None
    else:
        final, error = status.FAILED, describe_exit(code)
    return RunResult(final, code, text, stderr.text(), parse_json_output(text, truncated=stdout.truncated),
                     error, timed_out, None, duration)
