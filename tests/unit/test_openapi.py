"""The OpenAPI document: a valid OpenAPI 3.1 description, generated from the views' declarations.

Fast and without I/O (the document is built from the route table), so it
runs in `make test` and in CI: openapi-spec-validator checks the document,
and the response models are checked against the field tuples the views
render, so a field added to a row's rendering without its model fails here.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest
from openapi_spec_validator import validate
from pydantic import BaseModel

from app import app
from chalicelib.api import actions, audit, auth, context, inquiries, packs
from chalicelib.api.openapi import document
from chalicelib.api.params import BoolParam, ChoiceParam, IntParam, TextParam
from chalicelib.core.errors import BadRequest
from chalicelib.db.automation import ENFORCEMENT_FIELDS, RULE_FIELDS, TRIGGER_FIELDS
from chalicelib.db.executions import EXECUTION_FIELDS
from chalicelib.db.pipeline import EVENT_FIELDS
from chalicelib.db.sensors import SENSOR_FIELDS
from chalicelib.models import responses

DOC = document(app)
OPERATIONS = [(path, method, op) for path, item in DOC["paths"].items() for method, op in item.items()]


def _fields(model: type[BaseModel]) -> set[str]:
    return {info.alias or name for name, info in model.model_fields.items()}


def test_the_document_is_valid_openapi() -> None:
    # GIVEN the document built from the app's routes WHEN validated THEN it is valid OpenAPI 3.1
    validate(DOC)
    assert DOC["openapi"] == "3.1.0"


def test_every_route_is_an_operation_with_a_unique_id() -> None:
    # GIVEN every Chalice route THEN each is in the document, once, with an operationId unique across the API
    routes = {(path, method.lower()) for path, methods in app.routes.items() for method in methods}
    assert routes == {(path, method) for path, method, _ in OPERATIONS}
    ids = [op["operationId"] for _, _, op in OPERATIONS]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(("path", "method", "op"), OPERATIONS, ids=[f"{m.upper()} {p}" for p, m, _ in OPERATIONS])
def test_every_operation_declares_its_success_body_and_errors(path: str, method: str, op: dict[str, Any]) -> None:
    # GIVEN an operation THEN its success answer has a schema (a model, not "some object")...
    success = [code for code in op["responses"] if code.startswith("2")]
    assert success, op["responses"]
    if path != "/api/v1/openapi.json":
        for code in success:
            assert "$ref" in op["responses"][code]["content"]["application/json"]["schema"], (code, op)
    # ... every error it may return has the error contract's schema ...
    declared = {int(code) for code in op["responses"]}
    for code in declared - {int(c) for c in success}:
        if path != "/health":
            assert op["responses"][str(code)]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"}
    # ... and the statuses its kind implies are there
    assert 503 in declared
    if op["security"] == [{"bearer": []}]:
        assert {401, 429} <= declared
    if "{" in path:
        assert 404 in declared
    if "requestBody" in op or any(p["in"] == "query" for p in op.get("parameters", [])):
        assert 400 in declared
    if "requestBody" in op:
        assert 413 in declared
    path_names = set(re.findall(r"{(\w+)}", path))
    assert path_names == {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}


def test_query_parameters_carry_types_enums_defaults_and_bounds() -> None:
    # GIVEN the executions list THEN its query parameters are declared as the parser reads them
    params = {p["name"]: p["schema"] for p in DOC["paths"]["/api/v1/executions"]["get"]["parameters"]
              if p["in"] == "query"}
    assert params["limit"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}
    assert params["offset"]["default"] == 0
    assert "succeeded" in params["status"]["enum"] and params["status"]["type"] == "string"
    assert params["order"]["enum"] == ["asc", "desc"]
    assert params["parent_execution_id"]["type"] == "integer"
    assert {"action_ref", "trace", "enforcement_id"} <= set(params)


def test_statuses_the_api_returns_are_declared() -> None:
    # GIVEN the datastore set (200 on replace) and the health check (503 while starting) THEN both are declared
    put = DOC["paths"]["/api/v1/datastore"]["post"]["responses"]
    assert {"200", "201"} <= set(put)
    assert put["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/DatastoreItem"}
    health = DOC["paths"]["/health"]["get"]["responses"]
    assert health["503"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Health"}
    assert "Retry-After" in DOC["paths"]["/api/v1/rules"]["get"]["responses"]["429"]["headers"]


def test_security_is_bearer_except_public_routes_and_webhooks() -> None:
    # GIVEN the document THEN /api/v1 needs a bearer token; login and health need none; webhooks take their own
    assert DOC["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert DOC["paths"]["/api/v1/rules"]["get"]["security"] == [{"bearer": []}]
    assert DOC["paths"]["/auth/login"]["post"]["security"] == []
    webhook = DOC["paths"]["/api/v1/webhooks/{trigger_id}"]["post"]
    assert {"webhookSignature": []} in webhook["security"] and {} in webhook["security"]
    assert webhook["requestBody"]["required"] is False


def test_pack_reload_body_is_optional_and_modelled() -> None:
    # GIVEN the pack reload THEN its body is PackReload, optional, answered by PackReloaded
    op = DOC["paths"]["/api/v1/packs/{pack_id}/reload"]["post"]
    assert op["requestBody"]["required"] is False
    assert op["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/PackReload"}
    assert op["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PackReloaded"}


@pytest.mark.parametrize(
    ("model", "rendered"),
    [
        (responses.Action, {*actions.ACTION_FIELDS, "code"}),
        (responses.Trigger, {*TRIGGER_FIELDS, "webhook_url", "hmac"}),
        (responses.Rule, set(RULE_FIELDS)),
        (responses.Event, set(EVENT_FIELDS)),
        (responses.Enforcement, set(ENFORCEMENT_FIELDS)),
        (responses.Execution, {*EXECUTION_FIELDS, "tasks"}),
        (responses.Inquiry, set(inquiries.INQUIRY_FIELDS)),
        (responses.Sensor, set(SENSOR_FIELDS)),
        (responses.SensorDetail, {*SENSOR_FIELDS, "state"}),
        (responses.User, set(auth.USER_FIELDS)),
        (responses.Pack, {*packs.PACK_FIELDS, "system", "actions", "files"}),
        (responses.AuditEntry, {"id", *audit.FIELDS}),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else "",
)
def test_response_models_match_what_the_views_render(model: type[BaseModel], rendered: set[str]) -> None:
    # GIVEN a response model and the fields its view renders THEN they are the same set
    assert _fields(model) == rendered


def test_response_models_refuse_undeclared_fields() -> None:
    # GIVEN a response schema THEN an extra field is not allowed, so conformance checks catch drift
    assert DOC["components"]["schemas"]["Rule"]["additionalProperties"] is False


def _call(query: dict[str, str] | None, declared: frozenset[str]) -> context.Call:
    request = SimpleNamespace(query_params=query)
    return context.Call(request, principal=None, cur=None, declared=declared)  # type: ignore[arg-type]


def test_a_view_cannot_read_an_undeclared_query_parameter() -> None:
    # GIVEN a call whose view declared only `limit` WHEN it reads `status` THEN a programming error, not a silent None
    call = _call({"status": "x"}, frozenset({"limit"}))
    with pytest.raises(RuntimeError, match="not declared"):
        call.query("status")


@pytest.mark.parametrize(
    ("param", "raw", "expected"),
    [
        (IntParam("n", "", low=1, high=10, default=5), None, 5),
        (IntParam("n", "", low=1, high=10, default=5), "7", 7),
        (BoolParam("b", ""), "TRUE", True),
        (BoolParam("b", "", default=True), None, True),
        (ChoiceParam("c", "", choices=frozenset({"x", "y"})), "y", "y"),
        (TextParam("t", "", max_length=4, pattern="^[a-z]+$"), "abc", "abc"),
    ],
)
def test_declared_parameters_parse_as_documented(param: Any, raw: str | None, expected: Any) -> None:
    # GIVEN a declared parameter WHEN a valid value (or none) is sent THEN the view reads it as documented
    query = None if raw is None else {param.name: raw}
    assert param.read(_call(query, frozenset({param.name}))) == expected


@pytest.mark.parametrize(
    ("param", "raw", "problem"),
    [
        (IntParam("n", "", low=1, high=10), "11", "between 1 and 10"),
        (IntParam("n", "", low=1, high=10), "1.5", "must be an integer"),
        (BoolParam("b", ""), "maybe", "true or false"),
        (ChoiceParam("c", "", choices=frozenset({"x"})), "z", "one of x"),
        (TextParam("t", "", max_length=4), "abcde", "at most 4"),
        (TextParam("t", ""), "a\x00b", "NUL"),
        (TextParam("t", "", pattern="^[a-z]+$"), "A1", "must match"),
    ],
)
def test_bad_parameter_values_are_a_400_naming_the_parameter(param: Any, raw: str, problem: str) -> None:
    # GIVEN a declared parameter WHEN a value outside its schema is sent THEN 400 naming it and the problem
    with pytest.raises(BadRequest, match=problem) as caught:
        param.read(_call({param.name: raw}, frozenset({param.name})))
    assert f"'{param.name}'" in caught.value.message
