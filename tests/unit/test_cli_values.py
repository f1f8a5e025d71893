"""`key=value` arguments of `attune run` and `attune inquiry respond`: JSON when it parses, else text."""

from __future__ import annotations

import pytest

from chalicelib.cli.values import BadArgument, parse_pairs, parse_value, string_fields


@pytest.mark.parametrize(("text", "value"), [
    ("3", 3), ("2.5", 2.5), ("true", True), ("null", None), ('"quoted"', "quoted"), ("[1, 2]", [1, 2]),
    ('{"a": 1}', {"a": 1}), ("hello world", "hello world"), ("", ""), ("prod", "prod"), ("01234", "01234"),
])
def test_values_are_json_when_they_parse_else_text(text: str, value: object) -> None:
    assert parse_value(text) == value


def test_pairs_become_a_parameter_map() -> None:
    # GIVEN arguments as a shell passes them WHEN parsed THEN each is typed by its value
    given = ["message=disk full", "count=3", "items=[\"a\",\"b\"]", "ok=false", "expr=a=b"]
    assert parse_pairs(given) == {"message": "disk full", "count": 3, "items": ["a", "b"], "ok": False,
                                  "expr": "a=b"}


def test_colon_equals_keeps_the_text() -> None:
    assert parse_pairs(["zip:=12345", "flag:=true"]) == {"zip": "12345", "flag": "true"}


@pytest.mark.parametrize(("pair", "problem"), [
    ("message", "is not key=value"),
    ("=x", "is not a parameter name"),
    ("1abc=x", "is not a parameter name"),
    ("a b=x", "is not a parameter name"),
])
def test_bad_pairs_are_refused_naming_them(pair: str, problem: str) -> None:
    with pytest.raises(BadArgument, match=problem) as err:
        parse_pairs([pair])
    assert repr(pair) in str(err.value)


def test_a_key_given_twice_is_refused() -> None:
    with pytest.raises(BadArgument, match="'a' is given twice"):
        parse_pairs(["a=1", "a=2"])


def test_declared_string_parameters_keep_their_text() -> None:
    # GIVEN an action whose `message` is a string WHEN message=42 is given THEN it stays "42"
    strings = string_fields({"message": {"type": "string"}, "count": {"type": "integer"}, "odd": "x"})
    assert strings == {"message"}
    assert parse_pairs(["message=42", "count=42"], strings) == {"message": "42", "count": 42}
