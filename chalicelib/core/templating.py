"""Jinja2, always sandboxed: rule criteria and parameters are user input.

Parsing happens at rule creation so a syntax error is a 400 then, not a
failed enforcement later.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import TemplateSyntaxError, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from chalicelib.core.errors import ValidationFailed


@lru_cache(maxsize=1)
def environment() -> ImmutableSandboxedEnvironment:
    """The one sandboxed environment: no attribute mutation, no unsafe calls."""
    return ImmutableSandboxedEnvironment(undefined=Undefined, autoescape=False)


def check_syntax(source: str, where: str) -> None:
    """Raise a 400 naming `where` when `source` does not parse."""
    try:
        environment().parse(source)
    except TemplateSyntaxError as exc:
        raise ValidationFailed(f"{where}: template syntax error at line {exc.lineno}: {exc.message}") from exc


def check_tree(value: Any, where: str) -> None:
    """Check every string inside a parameters tree."""
    if isinstance(value, str):
        if "{{" in value or "{%" in value:
            check_syntax(value, where)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_tree(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_tree(item, f"{where}[{index}]")


def check_criteria(source: str) -> None:
    """Criteria are a template (`{{ trigger.data.x == 1 }}`) or a bare expression (`trigger.data.x == 1`)."""
    if "{{" in source or "{%" in source:
        check_syntax(source, "criteria")
        return
    try:
        environment().compile_expression(source)
    except TemplateSyntaxError as exc:
        raise ValidationFailed(f"criteria: expression syntax error: {exc.message}") from exc
