"""The node runner: `module.exports = { run }` with `async run(params)`, its return value the result.

Like every process runner: parameters as JSON on stdin, the context on its
descriptor, the result on a separate channel (`node_wrapper.js`), confined
by the sandbox. The pack's `node_modules` (built by the worker from its
`package.json`: chalicelib/worker/deps.py) is mounted read-only and named by
NODE_PATH, so `require('axios')` finds the pack's own copy and no other pack's.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from chalicelib.core.errors import ValidationFailed
from chalicelib.runners.base import DEFAULT_GRACE_S, RunRequest, RunResult, action_file, conclude
from chalicelib.runners.process import run_process
from chalicelib.runners.python3 import interpret_channel
from chalicelib.runners.sandbox import MOUNT_ROOT

NODE_WRAPPER = Path(__file__).resolve().with_name("node_wrapper.js")
NODE_WRAPPER_MOUNT = MOUNT_ROOT / "node_wrapper.js"
NODE_MODULES_MOUNT = MOUNT_ROOT / "node_modules"


class NodeRunner:
    """Runs node actions under the wrapper, with the pack's node_modules when it has one."""

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
        node = shutil.which("node")
        if node is None:
            raise ValidationFailed("node is not installed on this worker; node actions cannot run here")
        with action_file(request, "action.js") as job:
            confined = job.sandbox is not None
            mounts: list[tuple[Path, Path]] = [(NODE_WRAPPER, NODE_WRAPPER_MOUNT)]
            extra_env: dict[str, str] = {}
            if request.node_modules is not None:
                mounts.append((request.node_modules, NODE_MODULES_MOUNT))
                extra_env["NODE_PATH"] = str(NODE_MODULES_MOUNT if confined else request.node_modules)
            wrapper = NODE_WRAPPER_MOUNT if confined else NODE_WRAPPER
            outcome = run_process(
                request,
                lambda fd: [node, str(wrapper), str(fd), str(job.seen(job.path))],
                cwd=job.work_dir,
                grace_s=self.grace_s,
                channel=True,
                cancel=cancel,
                on_started=on_started,
                sandbox=job.sandbox,
                pack_dir=job.pack_dir,
                mounts=mounts,
                extra_env=extra_env,
            )
        output, error = interpret_channel(outcome, request.max_output_bytes)
        return conclude(request, outcome, output=output, error=error)
