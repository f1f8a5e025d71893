"""Health and the API description: the two unauthenticated read endpoints."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib.api import context
from chalicelib.api.context import PublicCall, public
from chalicelib.api.openapi import document
from chalicelib.config import settings
from chalicelib.core.errors import AttuneError
from chalicelib.db import components
from chalicelib.models.responses import Health
from chalicelib.runners import sandbox

bp = Blueprint(__name__)
_openapi_cache: dict[str, Any] = {}


@bp.route("/health", methods=["GET"])
@public(response=Health, responses={503: Health})
def health(call: PublicCall) -> Response:
    """200 only when the database answers and every expected role beats."""
    expected = list(settings().expected_roles)
    try:
        state = components.health(expected)
    except AttuneError as exc:
        return Response(body={"status": "unavailable", "error": exc.message}, status_code=503)
    # Whether actions started on this machine run confined (the worker runs the same probe).
    body = {"status": "ok" if state["ok"] else "starting", "roles": state["roles"], "sandbox": sandbox.available()}
    return Response(body=body, status_code=200 if state["ok"] else 503)


@bp.route("/api/v1/openapi.json", methods=["GET"])
@public()
def openapi(call: PublicCall) -> dict[str, Any]:
    """The OpenAPI 3.1 description of this API."""
    if "doc" not in _openapi_cache:
        assert context._app is not None
        _openapi_cache["doc"] = document(context._app)
    doc: dict[str, Any] = _openapi_cache["doc"]
    return doc
