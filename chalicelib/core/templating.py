"""Jinja2, always sandboxed: rule criteria and parameters are user input.

Parsing happens at rule creation so a syntax error is a 400 then, not a
failed enforcement later.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from chalicelib.core.errors import ValidationFailed


class _DataFirstEnvironment(ImmutableSandboxedEnvironment):
    """Dots read data first: `{{ parameters.items }}` is the parameter `items`, not `dict.items`.

    Jinja resolves `a.b` as an attribute before a key, so every key that is
    also a dict method name (items, keys, values, get, pop, update...) would
    render as a bound method. Our templates walk JSON documents, where the
    key is always what is meant; methods stay reachable when no key has the name.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        return super().getattr(obj, attribute)


@lru_cache(maxsize=1)
def environment() -> ImmutableSandboxedEnvironment:
    """The one sandboxed environment: no attribute mutation, no unsafe calls, data before methods."""
    return _DataFirstEnvironment(undefined=ChainableUndefined, autoescape=False)


def check_syntax(source: str, where: str) -> None:
    """Raise a 400 naming `where` when `source` does not parse."""
    try:
        environment().parse(source)
    except TemplateSyntaxError as exc:
        raise ValidationFailed(f"{where}: template syntax error at line {exc.lineno}: {exc.message}") from exc
    except (ValueError, RecursionError) as exc:  # a literal past Python's int digits limit, nesting past the stack
        raise ValidationFailed(f"{where}: template cannot be parsed: {str(exc)[:200]}") from exc


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
    except (ValueError, RecursionError) as exc:  # as in check_syntax
        raise ValidationFailed(f"criteria: expression cannot be parsed: {str(exc)[:200]}") from exc
