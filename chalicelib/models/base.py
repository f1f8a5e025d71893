"""Base for our own contracts: unknown fields are errors, types are not coerced."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Contract(BaseModel):
    """A request body or message we define: `extra="forbid"`, strict types."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
