"""Criteria and parameter templates past the parser's limits are a 400, not a 500 (found by schemathesis)."""

from __future__ import annotations

import pytest

from chalicelib.core.errors import ValidationFailed
from chalicelib.core.templating import check_criteria, check_tree

HOSTILE = [
    "0" * 16384,  # an int literal past Python's 4300-digit conversion limit
    "(" * 16000 + "1" + ")" * 16000,  # nesting past the recursion limit
    "{{ " + "9" * 5000 + " }}",
    "{{ " + "[" * 16000 + " }}",
]


@pytest.mark.parametrize("source", HOSTILE, ids=["digits", "parens", "template-digits", "template-nesting"])
def test_unparsable_criteria_are_a_validation_error(source: str) -> None:
    # GIVEN criteria the template engine cannot parse WHEN checked THEN a 400 naming `criteria`
    with pytest.raises(ValidationFailed, match=r"^criteria: .*cannot be parsed"):
        check_criteria(source)


def test_unparsable_parameter_templates_name_the_parameter() -> None:
    # GIVEN a rule parameter holding such a template WHEN checked THEN a 400 naming the parameter
    with pytest.raises(ValidationFailed, match=r"^parameters\.message: template cannot be parsed"):
        check_tree({"message": "{{ " + "9" * 5000 + " }}"}, "parameters")
