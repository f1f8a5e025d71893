"""Runners: execute one action as a real subprocess for the worker.

    result = runner_for(request.runner_type).run(request, cancel=event, on_started=record_running)

See docs/actions.md for the contract an action sees.
"""

from __future__ import annotations

from chalicelib.runners.base import Runner, RunRequest, RunResult
from chalicelib.runners.output import TRUNCATION_MARKER
from chalicelib.runners.registry import runner_for, runner_types

__all__ = ["TRUNCATION_MARKER", "RunRequest", "RunResult", "Runner", "runner_for", "runner_types"]
