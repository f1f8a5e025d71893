"""The OpenAPI document, generated from the live route table and each view's declared contract.

Every operation comes from a Chalice route and the `__attune__` metadata its
decorator (chalicelib/api/context.py) records: the query parameters the view
reads (the same objects that parse them, chalicelib/api/params.py), the
pydantic request body, the pydantic response models, and the errors it may
raise. Nothing here is written per route, so the document cannot drift from
the code; tests validate it (openapi-spec-validator) and check real responses
against it (schemathesis).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from chalice import Chalice
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from chalicelib.core.auth import Permission

ERROR_SCHEMA = {
    "type": "object",
    "description": "The error contract: a stable machine-readable code and a message naming the problem.",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "examples": ["bad_request", "not_found"]},
                "message": {"type": "string"},
                "details": {"description": "Per-field problems, when the body failed validation."},
            },
        }
    },
}
ERRORS = {
    400: "Malformed or invalid input; the message names the field or parameter",
    401: "Missing, expired or invalid credentials",
    403: "The caller's role does not allow this",
    404: "Not found (or another tenant's)",
    409: "Conflicts with the resource's current state or an existing resource",
    413: "Body too large",
    422: "Refers to something that exists but cannot be used",
    429: "Rate limit exceeded; retry after `Retry-After` seconds",
    503: "A dependency (database, AWS) is unavailable or overloaded; retry later",
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying, when the server knows.",
        "required": False,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}
SUCCESS = {200: "OK", 201: "Created", 202: "Accepted"}
WEBHOOK_SECURITY: list[dict[str, list[str]]] = [{}, {"webhookSignature": []}, {"bearer": []}]
SECURITY_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token from POST /auth/login (or a running action's, where admitted).",
    },
    "webhookSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Attune-Signature",
        "description": "`sha256=<hex HMAC of the raw body>` with the trigger's secret; required when it has one.",
    },
}
JSON = "application/json"


def _meta(entry: Any) -> dict[str, Any]:
    meta: dict[str, Any] = getattr(entry.view_function, "__attune__", {})
    return meta


def _models(meta: dict[str, Any]) -> Iterable[tuple[type[BaseModel], JsonSchemaMode]]:
    if meta.get("body") is not None:
        yield meta["body"], "validation"
    if meta.get("response") is not None:
        yield meta["response"], "serialization"
    for model in meta.get("responses", {}).values():
        yield model, "serialization"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def error_statuses(path: str, method: str, meta: dict[str, Any]) -> set[int]:
    """The errors an operation may answer: those its kind implies, and those the view declares it raises."""
    statuses = {503, *meta.get("errors", ())}  # any request may find the database or a dependency unavailable
    permission = meta.get("permission")
    if permission is not None:
        statuses |= {401, 429}  # tokens and the per-user rate limit
        if permission is not Permission.READ:
            statuses.add(403)
    if meta.get("query"):
        statuses.add(400)
    if "{" in path:
        statuses.add(404)
    if meta.get("body") is not None or meta.get("raw_body") is not None:
        statuses |= {400, 413}
    return statuses


def _response(description: str, schema: dict[str, Any], *, headers: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        out["headers"] = RETRY_AFTER
    return out


def _operation(path: str, entry: Any, names: dict[tuple[type[BaseModel], JsonSchemaMode], str]) -> dict[str, Any]:
    meta = _meta(entry)
    doc = (entry.view_function.__doc__ or "").strip()
    summary, _, rest = doc.partition("\n")
    segments = path.strip("/").split("/")
    op: dict[str, Any] = {
        "operationId": entry.view_name,
        "summary": summary.strip() or entry.view_name,
        "tags": [segments[2] if path.startswith("/api/v1/") and len(segments) > 2 else segments[0]],
    }
    if rest.strip():
        op["description"] = " ".join(rest.split())
    params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
              for name in re.findall(r"{(\w+)}", path)]
    params += [p.openapi() for p in meta.get("query", ())]
    if params:
        op["parameters"] = params
    status = int(meta.get("status", 200))
    success = meta.get("response")
    responses: dict[str, Any] = {
        str(status): _response(SUCCESS.get(status, "OK"),
                               _ref(names[(success, "serialization")]) if success else {"type": "object"}),
    }
    for code, model in sorted(meta.get("responses", {}).items()):
        responses[str(code)] = _response(SUCCESS.get(code, ERRORS.get(code, "")),
                                         _ref(names[(model, "serialization")]), headers=code == 503)
    for code in sorted(error_statuses(path, entry.method, meta)):
        if str(code) not in responses:
            responses[str(code)] = _response(ERRORS[code], _ref("Error"), headers=code in (429, 503))
    op["responses"] = responses
    permission = meta.get("permission")
    if permission is not None:
        op["security"] = [{"bearer": []}]
        op["x-attune-permission"] = str(permission)
    elif meta.get("raw_body") is not None:
        op["security"] = WEBHOOK_SECURITY
    else:
        op["security"] = []
    body = meta.get("body")
    if body is not None:
        op["requestBody"] = {"required": bool(meta.get("body_required", True)),
                             "content": {JSON: {"schema": _ref(names[(body, "validation")])}}}
    elif meta.get("raw_body") is not None:
        op["requestBody"] = {"required": False, "content": {JSON: {"schema": meta["raw_body"]}}}
    return op


def document(app: Chalice) -> dict[str, Any]:
    """OpenAPI 3.1 for every route of `app`."""
    entries = [entry for methods in app.routes.values() for entry in methods.values()]
    wanted = sorted({pair for entry in entries for pair in _models(_meta(entry))},
                    key=lambda pair: (pair[0].__name__, pair[1]))
    keys, schemas = models_json_schema(wanted, ref_template="#/components/schemas/{model}")
    names: dict[tuple[type[BaseModel], JsonSchemaMode], str] = {
        pair: str(keys[pair]["$ref"]).rsplit("/", 1)[-1] for pair in wanted
    }
    components: dict[str, Any] = dict(schemas.get("$defs", {}))
    components["Error"] = ERROR_SCHEMA
    paths: dict[str, Any] = {}
    for path, methods in sorted(app.routes.items()):
        for method, entry in sorted(methods.items()):
            paths.setdefault(path, {})[method.lower()] = _operation(path, entry, names)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Attune API",
            "version": "1",
            "description": "Generated from the routes and their pydantic models; see docs/api.md.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": SECURITY_SCHEMES},
    }
