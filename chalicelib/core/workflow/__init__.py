"""Workflows: the language (`model`) and its compilation to Step Functions (`asl`), both pure.

A workflow action's definition is parsed once at registration (every
mistake a 400 naming the task) and compiled to a state machine whose every
task is a message to the runtime; the runtime (elsewhere) answers them.
"""

from __future__ import annotations

from chalicelib.core.workflow.asl import (
    CANCELED,
    INQUIRY_EXPIRED,
    QUEUE_PLACEHOLDER,
    TASK_FAILED,
    TASK_TIMED_OUT,
    WORKFLOW_FAILED,
    asl_digest,
    compile_asl,
    state_names,
    substitute,
)
from chalicelib.core.workflow.model import (
    InquirySpec,
    Task,
    Workflow,
    implicit_with_items,
    levels,
    parse_workflow,
    referenced_actions,
    topological_order,
)

__all__ = [
    "CANCELED",
    "INQUIRY_EXPIRED",
    "QUEUE_PLACEHOLDER",
    "TASK_FAILED",
    "TASK_TIMED_OUT",
    "WORKFLOW_FAILED",
    "InquirySpec",
    "Task",
    "Workflow",
    "asl_digest",
    "compile_asl",
    "implicit_with_items",
    "levels",
    "parse_workflow",
    "referenced_actions",
    "state_names",
    "substitute",
    "topological_order",
]
