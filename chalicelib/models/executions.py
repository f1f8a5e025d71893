"""Bodies of the execution endpoints."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from chalicelib.models.base import Contract


class NewExecution(Contract):
    """`POST /api/v1/executions`: run an action directly."""

    action_ref: Annotated[str, Field(min_length=3, max_length=200, pattern=r"^[a-z0-9][a-z0-9_-]*\.[A-Za-z0-9_.-]+$")]
    parameters: dict[str, Any] = Field(default_factory=dict)
