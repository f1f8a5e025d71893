"""The OpenAPI document, built from the live route table so it cannot drift from the code."""

from __future__ import annotations

import re
from typing import Any

from chalice import Chalice
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}},
        }
    },
}
ERRORS = {
    "400": "Malformed or invalid input",
    "401": "Missing, expired or invalid token",
    "403": "The role does not allow this",
    "404": "Not found (or another tenant's)",
    "409": "Conflicts with an existing resource",
    "413": "Body too large",
    "422": "Refers to something that does not exist or cannot be used",
}


def _operation(path: str, method: str, entry: Any, names: dict[type[BaseModel], str]) -> dict[str, Any]:
    fn = entry.view_function
    meta: dict[str, Any] = getattr(fn, "__attune__", {})
    doc = (fn.__doc__ or "").strip()
    op: dict[str, Any] = {
        "operationId": entry.view_name,
        "summary": doc.splitlines()[0] if doc else entry.view_name,
        "tags": [path.strip("/").split("/")[2] if path.startswith("/api/v1/") else path.strip("/").split("/")[0]],
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", path)
        ],
        "responses": {
            str(meta.get("status", 200)): {"description": "Success", "content": {"application/json": {}}},
            **{
                code: {
                    "description": text,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                }
                for code, text in ERRORS.items()
            },
        },
    }
    if meta.get("permission") is None and path.startswith("/api/v1/") is False:
        op["security"] = []
    elif meta.get("permission") is not None:
        op["security"] = [{"bearer": []}]
        op["x-attune-permission"] = str(meta["permission"])
    body = meta.get("body")
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{names[body]}"}}},
        }
    return op


def document(app: Chalice) -> dict[str, Any]:
    """OpenAPI 3.1 for every route of `app`."""
    models = {
        meta["body"]
        for methods in app.routes.values()
        for entry in methods.values()
        if (meta := getattr(entry.view_function, "__attune__", {})).get("body") is not None
    }
    ordered = sorted(models, key=lambda m: m.__name__)
    keys, schemas = models_json_schema(
        [(m, "validation") for m in ordered], ref_template="#/components/schemas/{model}"
    )
    names = {m: keys[(m, "validation")]["$ref"].rsplit("/", 1)[-1] for m in ordered}
    components: dict[str, Any] = dict(schemas.get("$defs", {}))
    components["Error"] = ERROR_SCHEMA
    paths: dict[str, Any] = {}
    for path, methods in sorted(app.routes.items()):
        for method, entry in sorted(methods.items()):
            paths.setdefault(path, {})[method.lower()] = _operation(path, method, entry, names)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Attune API", "version": "1"},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
