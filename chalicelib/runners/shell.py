"""The shell runner: a script run by bash, or by the interpreter its `#!` line names.

Parameters arrive as one JSON document on stdin (`params=$(cat)`, then `jq`),
never as variables or arguments; the output is stdout parsed as JSON when the
whole of it is JSON.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from chalicelib.runners.base import (
    DEFAULT_GRACE_S,
    RunRequest,
    RunResult,
    action_file,
    conclude,
    stdout_output,
)
from chalicelib.runners.process import run_process

DEFAULT_SHELL = "/bin/bash"


def command_for(script: Path, seen_as: Path | None = None) -> list[str]:
    """argv for a script: its `#!` interpreter (plus one optional argument, as Linux does), else bash.

    Reading the line ourselves means a pack's script needs no execute bit,
    which archives and S3 round trips often lose. `script` is read on the
    host; the argv names it as `seen_as` (its path inside the sandbox).
    """
    with script.open("rb") as f:
        first = f.readline(512)
    if first.startswith(b"#!"):
        line = first[2:].decode("utf-8", errors="replace").strip()
        interpreter, _, arg = line.partition(" ")
        if interpreter:
            return [interpreter, *([arg.strip()] if arg.strip() else []), str(seen_as or script)]
    return [shutil.which("bash") or DEFAULT_SHELL, str(seen_as or script)]


class ShellRunner:
    """Runs shell actions (inline `code` or a pack script)."""

    def __init__(self, *, grace_s: float = DEFAULT_GRACE_S) -> None:
        self.grace_s = grace_s

    def run(
        self,
        request: RunRequest,
        *,
        cancel: threading.Event | None = None,
        on_started: Callable[[int], None] | None = None,
    ) -> RunResult:
        """Run the script to the end; only a malformed request raises (ValidationFailed)."""
        with action_file(request, "action.sh") as job:
            argv = command_for(job.path, job.seen(job.path))
            outcome = run_process(
                request,
                lambda _fd: argv,
                cwd=job.work_dir,
                grace_s=self.grace_s,
                cancel=cancel,
                on_started=on_started,
                sandbox=job.sandbox,
                pack_dir=job.pack_dir,
            )
        return conclude(request, outcome, output=stdout_output(outcome))
