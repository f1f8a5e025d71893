"""Bodies of the inquiry endpoints."""

from __future__ import annotations

from typing import Any

from chalicelib.models.base import Contract


class InquiryResponse(Contract):
    """`POST /api/v1/inquiries/{id}/respond`: the answer, checked against the inquiry's JSON schema."""

    response: Any
