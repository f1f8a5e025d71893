"""Action parameter maps: validated as declared, converted to JSON Schema (pure, no I/O)."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from chalicelib.core.errors import ValidationFailed
from chalicelib.core.packs import apply_defaults, dump_parameters, parameters_schema, parse_parameters, secret_names
from chalicelib.core.params import check, declared_secrets
from chalicelib.models.packs import ActionFields

PARAMS: dict[str, Any] = {
    "message": {"type": "string", "required": True, "description": "what to say"},
    "count": {"type": "integer", "default": 1, "minimum": 1, "maximum": 10},
    "level": {"type": "string", "enum": ["info", "warn"], "default": "info"},
    "token": {"type": "string", "secret": True},
    "tags": {"type": "array", "items": {"type": "string"}, "default": []},
    "anything": {},
}


def errors(schema: dict[str, Any], instance: Any) -> list[str]:
    return [e.message for e in Draft202012Validator(schema).iter_errors(instance)]


def test_schema_shape() -> None:
    # GIVEN a parameter map WHEN converted THEN it is an object schema with one property per parameter
    schema = parameters_schema(PARAMS)
    Draft202012Validator.check_schema(schema)
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["message"]
    assert schema["properties"]["count"] == {"type": "integer", "default": 1, "minimum": 1, "maximum": 10}
    assert schema["properties"]["token"]["writeOnly"] is True
    assert schema["properties"]["anything"] == {}


def test_generated_schema_validates_execution_parameters() -> None:
    # GIVEN the generated schema
    schema = parameters_schema(PARAMS)
    # WHEN good and bad parameters are validated THEN only the good ones pass
    assert errors(schema, {"message": "hi", "count": 3, "level": "warn", "tags": ["a"], "anything": [1]}) == []
    assert any("'message' is a required property" in e for e in errors(schema, {"count": 1}))
    assert any("is not of type 'integer'" in e for e in errors(schema, {"message": "m", "count": "3"}))
    assert any("is not one of" in e for e in errors(schema, {"message": "m", "level": "debug"}))
    assert any("greater than the maximum" in e for e in errors(schema, {"message": "m", "count": 11}))
    assert any("Additional properties" in e for e in errors(schema, {"message": "m", "mesage": "typo"}))


def test_required_with_default_is_satisfied_by_the_default() -> None:
    schema = parameters_schema({"n": {"type": "integer", "required": True, "default": 2}})
    assert "required" not in schema
    assert apply_defaults({"n": {"type": "integer", "required": True, "default": 2}}, {}) == {"n": 2}


def test_apply_defaults_fills_only_missing_values() -> None:
    # GIVEN declared defaults WHEN an execution gives some values THEN given values win
    assert apply_defaults(PARAMS, {"message": "m", "count": 5}) == {
        "message": "m", "count": 5, "level": "info", "tags": []
    }


def test_explicit_null_default_is_a_default() -> None:
    assert apply_defaults({"x": {"default": None}}, {}) == {"x": None}


def test_immutable_parameter_only_accepts_its_default() -> None:
    schema = parameters_schema({"cmd": {"type": "string", "default": "uptime", "immutable": True}})
    assert errors(schema, {"cmd": "uptime"}) == []
    assert errors(schema, {"cmd": "rm -rf /"}) != []


def test_secret_names() -> None:
    assert secret_names(PARAMS) == ["token"]


def test_declared_secrets_are_parsed_once_per_declaration(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a declaration asked about once (the worker asks for every execution of an action)
    declared = {**PARAMS, "once_only": {"type": "string", "secret": True}}
    assert declared_secrets(declared) == {"token", "once_only"}
    # WHEN it is asked again, with parsing made to fail THEN the answer comes from the first parse
    from chalicelib.core import params

    def refuse(_raw: Any) -> Any:
        raise AssertionError("parsed again")

    monkeypatch.setattr(params, "secret_names", refuse)
    assert declared_secrets(dict(reversed(list(declared.items())))) == {"token", "once_only"}


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"n": {"type": "int"}}, "n.type: Input should be 'string', 'integer'"),
        ({"n": {"type": "integer", "default": "5"}}, "default '5' is invalid: '5' is not of type 'integer'"),
        ({"n": {"type": "boolean", "default": 1}}, "default 1 is invalid"),
        ({"n": {"type": "integer", "default": True}}, "default True is invalid"),
        ({"n": {"type": "array", "default": {}}}, "is not of type 'array'"),
        ({"n": {"type": "object", "default": []}}, "is not of type 'object'"),
        ({"n": {"type": "string", "enum": ["a", 1]}}, "enum value 1 is invalid"),
        ({"n": {"type": "string", "enum": []}}, "at least 1 item"),
        ({"n": {"enum": ["a"], "default": "b"}}, "default 'b' is invalid"),
        ({"n": {"type": "integer", "minimum": 5, "default": 1}}, "default 1 is invalid"),
        ({"n": {"type": "integer", "pattern": "^a"}}, "'pattern' applies to strings"),
        ({"n": {"type": "string", "items": {"type": "string"}}}, "'items' applies to arrays"),
        ({"n": {"type": "array", "items": {"type": "nope"}}}, "invalid schema"),
        ({"n": {"immutable": True}}, "needs a default"),
        ({"n": {"type": "string", "requird": True}}, "requird: Extra inputs are not permitted"),
        ({"n": {"required": "yes"}}, "n.required: Input should be a valid boolean"),
        ({"bad-name": {"type": "string"}}, "bad-name.\\[key\\]: String should match pattern"),
        ({"n": "string"}, "n: Input should be a valid dictionary"),
    ],
)
def test_invalid_parameter_maps_are_refused_naming_the_parameter(params: dict[str, Any], problem: str) -> None:
    # GIVEN a parameter map with one mistake WHEN it is validated THEN the error names it
    with pytest.raises(ValidationFailed, match=problem):
        parameters_schema(params)


def test_a_json_schema_given_as_parameters_gets_a_hint() -> None:
    # GIVEN someone passes a JSON Schema where the parameter map belongs
    body = {"runner_type": "shell", "code": "x",
            "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}
    # WHEN validated THEN the message explains the expected shape
    with pytest.raises(ValueError, match="looks like a JSON Schema"):
        ActionFields.model_validate(body)


def test_dump_keeps_what_the_author_declared() -> None:
    # GIVEN parsed parameters WHEN dumped for storage THEN nothing is added and parsing again is stable
    parsed = parse_parameters(PARAMS)
    dumped = dump_parameters(parsed)
    assert dumped == PARAMS
    assert dump_parameters(parse_parameters(dumped)) == dumped


def test_check_applies_defaults_and_names_each_problem() -> None:
    declared = {"cmd": {"type": "string", "required": True}, "n": {"type": "integer", "default": 2}}
    assert check(declared, {"cmd": "true"}) == ({"cmd": "true", "n": 2}, [])
    assert check(declared, {"n": "x", "extra": 1}) == (
        {"n": "x", "extra": 1}, ["Missing required parameter: cmd", "Unknown parameter: extra",
                                 "Parameter 'n': 'x' is not of type 'integer'"])


def test_check_gives_each_execution_its_own_copy_of_a_default() -> None:
    """The parsed declaration is kept between executions; a run that changes its default must not change the next's."""
    declared = {"tags": {"type": "array", "default": ["a"]}}
    first, _ = check(declared, {})
    first["tags"].append("changed")
    assert check(declared, {}) == ({"tags": ["a"]}, [])


def test_check_refuses_an_invalid_declaration_every_time() -> None:
    """Only good declarations are kept: a bad one is refused again on the next execution, not let through."""
    declared = {"n": {"type": "integer", "pattern": "x"}}
    for _ in range(2):
        with pytest.raises(ValidationFailed, match="pattern"):
            check(declared, {"n": 1})
