"""The shell runner: a script run by bash, or by the interpreter its `#!` line names.

Parameters arrive as one JSON document on stdin (`params=$(cat)`, then `jq`),
never as variables or arguments. Each top-level parameter is also a file in
the action's private work dir, `$ATTUNE_PARAMS/<name>` (a string as its raw
text, anything else as JSON), because a shell script that needs one string
should not start an interpreter to decode it: `jq` or `python3 -c` costs
about 20 ms of CPU per run here, more than the sandboxed bash itself, and
`"$(<"$ATTUNE_PARAMS/cmd")"` is a bash builtin (core.local does exactly that).
The output is stdout parsed as JSON when the whole of it is JSON.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from chalicelib.runners import zygote
from chalicelib.runners.base import (
    DEFAULT_GRACE_S,
    RunRequest,
    RunResult,
    action_file,
    conclude,
    stdout_output,
)
from chalicelib.runners.process import run_process
from chalicelib.runners.python3 import interpreter_flags
from chalicelib.runners.sandbox import base_python

DEFAULT_SHELL = "/bin/bash"
PARAMS_DIR = "params"  # in the work dir; `$ATTUNE_PARAMS` names it as the action sees it
# A file name per parameter: names a shell can quote without care, never `.`/`..` or a path.
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")


def write_parameter_files(parameters: Mapping[str, Any], work_dir: Path) -> Path:
    """`work_dir/params/<name>` for each top-level parameter: a string raw, anything else as compact JSON.

    The files are in the execution's own work dir (0700, its uid), so they
    reach nobody stdin would not; a name that is not a plain file name is
    left out (it is still on stdin). Returns the directory.
    """
    target = work_dir / PARAMS_DIR
    target.mkdir()
    for name, value in parameters.items():
        if not _PARAM_NAME.fullmatch(name):
            continue
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), allow_nan=False)
        (target / name).write_text(text, encoding="utf-8")
    return target


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
        """Run the script to the end; only a malformed request raises (ValidationFailed).

        Sandboxed executions of a known tenant exec the script in the tenant's
        zygote for the pack (runners/zygote.py, the one its python3 actions
        fork from): a fork and an exec in a sandbox that exists already,
        instead of a bwrap sandbox of its own; anything else starts cold.
        """
        python = request.python or base_python()

        def command(host: Path, seen: Path, sub: Path, seen_dir: Path) -> tuple[list[str], dict[str, str]]:
            params = write_parameter_files(request.parameters, sub)
            return command_for(host, seen), {"ATTUNE_PARAMS": str(seen_dir / params.name)}

        warm = zygote.run(request, python=python, flags=interpreter_flags(python), grace_s=self.grace_s,
                          cancel=cancel, on_started=on_started, command=command, filename="action.sh")
        if warm is not None:
            return conclude(request, warm, output=stdout_output(warm))
        with action_file(request, "action.sh") as job:
            argv = command_for(job.path, job.seen(job.path))
            params = write_parameter_files(request.parameters, job.work_dir)
            outcome = run_process(
                request,
                lambda _fd: argv,
                cwd=job.work_dir,
                grace_s=self.grace_s,
                cancel=cancel,
                on_started=on_started,
                sandbox=job.sandbox,
                pack_dir=job.pack_dir,
                extra_env={"ATTUNE_PARAMS": str(job.seen(params))},
            )
        return conclude(request, outcome, output=stdout_output(outcome))
