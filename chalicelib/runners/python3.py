"""The python3 runner: the action file runs under `wrapper.py` in the action's interpreter.

The interpreter is the pack's virtualenv when the worker has built one
(`RunRequest.python`), else the worker's base Python (not its virtualenv:
an action sees the SDK, none of the platform's packages). The wrapper reports `run()`'s
return value on a separate pipe (the result channel), never on stdout.

Without a virtualenv the interpreter starts with `-S`: no `site`, so none of
the base installation's site-packages (not the action's to use) and none of
its `.pth` hooks, which on a developer's Python can cost more than the whole
action (one importing certifi took 25 ms). A virtualenv needs `site` (it is
what puts the pack's site-packages on sys.path), so there only `-s` (no user
site). `-X frozen_modules=on` (3.11+, the worker's own interpreter) keeps
the stdlib's startup modules frozen even where a build would default it
off. Measured in bench/sandbox.py.

Sandboxed executions of a known tenant start warm: they are forked by that
tenant's zygote for the pack version and interpreter (chalicelib/runners/
zygote.py), which runs the same wrapper with the same protocol; the rest
(ATTUNE_ZYGOTE=off, no sandbox, AWS Lambda, no tenant in the context)
start cold as above.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from chalicelib.runners import zygote
from chalicelib.runners.base import (
    DEFAULT_GRACE_S,
    Outcome,
    RunRequest,
    RunResult,
    action_file,
    conclude,
    stdout_output,
)
from chalicelib.runners.process import run_process
from chalicelib.runners.sandbox import WRAPPER, base_python, venv_dir


class Python3Runner:
    """Runs python3 actions: `run(**params)` functions or scripts that read stdin."""

    def __init__(self, *, grace_s: float = DEFAULT_GRACE_S) -> None:
        self.grace_s = grace_s

    def run(
        self,
        request: RunRequest,
        *,
        cancel: threading.Event | None = None,
        on_started: Callable[[int], None] | None = None,
    ) -> RunResult:
        """Run the action to the end; only a malformed request raises (ValidationFailed)."""
        python = request.python or base_python()
        flags = interpreter_flags(python)
        warm = zygote.run(request, python=python, flags=flags, grace_s=self.grace_s, cancel=cancel,
                          on_started=on_started)
        if warm is not None:
            output, error = interpret_channel(warm, request.max_output_bytes)
            return conclude(request, warm, output=output, error=error)
        with action_file(request, "action.py") as job:
            outcome = run_process(
                request,
                lambda fd: [python, *flags, str(job.seen(WRAPPER)), str(fd), str(job.seen(job.path))],
                cwd=job.work_dir,
                grace_s=self.grace_s,
                channel=True,
                cancel=cancel,
                on_started=on_started,
                sandbox=job.sandbox,
                pack_dir=job.pack_dir,
                python=python,
            )
        output, error = interpret_channel(outcome, request.max_output_bytes)
        return conclude(request, outcome, output=output, error=error)


def interpreter_flags(python: str) -> list[str]:
    """`-S` for a bare interpreter, `-s` for a virtualenv's (which needs `site`); see the module's docstring."""
    if venv_dir(python) is not None:  # maybe another Python version: only flags every 3.x knows
        return ["-s"]
    return ["-S", "-X", "frozen_modules=on"]


def interpret_channel(outcome: Outcome, limit: int) -> tuple[Any, str | None]:
    """(output, error) from what the wrapper wrote on the result channel.

    No document (a script, or run() that called sys.exit) means stdout is the
    output when it is JSON. A return value over the output limit fails the
    execution rather than storing a cut, unparsable result.
    """
    channel = outcome.channel
    if channel is None or not channel.data:
        return stdout_output(outcome), None
    if channel.truncated:
        size = len(channel.data) + channel.dropped
        return None, f"run() returned {size} bytes of JSON, over the output limit of {limit} bytes"
    try:
        doc = json.loads(bytes(channel.data))
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or not ({"result", "error"} & doc.keys()):
        return None, "the action wrote something unreadable on the result channel"
    if "error" in doc:
        return None, str(doc["error"])
    return doc["result"], None
