"""Untrusted JSON: what json.loads accepts but nothing after it can hold is a 400 naming the problem."""

from __future__ import annotations

import pytest

from chalicelib.core.errors import BadRequest
from chalicelib.core.jsondoc import MAX_DEPTH, as_id, ascii_digits, parse


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"[" * 957 + b"]" * 957, "nested deeper"),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "nested deeper"),
        (b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1), "nested deeper"),
        (b"9" * 4301, "digits"),
        (b'"\\ud800"', "lone surrogate"),
        (b'{"\\udfff": 1}', "lone surrogate"),
        (b'[1, {"x": ["\\ud83d"]}]', "lone surrogate"),
        (b"NaN", "not valid JSON"),
        (b"[-Infinity]", "not valid JSON"),
        (b"1e400", "out of range"),
        (b"{bad", "malformed JSON"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_hostile_documents_are_refused(raw: bytes, problem: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse(raw, "body")
    assert problem in caught.value.message and caught.value.status == 400


def test_sane_documents_pass_unchanged() -> None:
    deep = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert parse(deep) is not None
    assert parse(b'{"emoji": "\\ud83d\\ude00", "n": 12345678901234567890, "f": 1.5e300}') == {
        "emoji": "\U0001f600", "n": 12345678901234567890, "f": 1.5e300,
    }


@pytest.mark.parametrize(("text", "digits", "ident"), [
    ("42", True, 42), ("0", True, None), ("²", False, None), ("1²", False, None), ("①", False, None),
    ("9223372036854775807", True, 2**63 - 1), ("9223372036854775808", True, None), ("9" * 5000, True, None),
    ("-1", False, None), ("", False, None), ("٣", False, None),
])
def test_ids_are_plain_decimal_and_in_range(text: str, digits: bool, ident: int | None) -> None:
    assert ascii_digits(text) is digits and as_id(text) == ident
