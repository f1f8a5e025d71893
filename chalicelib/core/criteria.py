"""Rule criteria and parameter rendering, in Jinja2's sandbox.

A string that is exactly one `{{ expression }}` evaluates to the expression's
native value, so `"{{ trigger.data.count }}"` of an int arrives as an int and
criteria yield real booleans; any other template renders to a string. An
undefined name is falsy in criteria and `None` in parameters, so a payload
without the field does not match rather than erroring; a broken template is
a `TemplateFailure` with the message that fails the enforcement.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from jinja2 import TemplateError, Undefined

from chalicelib.core.errors import AttuneError
from chalicelib.core.templating import environment

_SINGLE = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)
_FALSY_TEXT = frozenset({"", "false", "none", "null", "0", "no", "undefined"})


class TemplateFailure(AttuneError):
    """A template that could not be evaluated; its message says where and why."""

    status = 422
    code = "template_error"


def _single_expression(source: str) -> str | None:
    match = _SINGLE.match(source)
    if match and "{{" not in match.group("expr") and "{%" not in source:
        return match.group("expr")
    return None


def evaluate(source: str, context: Mapping[str, Any], where: str) -> Any:
    """The value of a template or bare expression; Undefined becomes None."""
    expr = _single_expression(source)
    try:
        if expr is not None or ("{{" not in source and "{%" not in source):
            value = environment().compile_expression(expr if expr is not None else source)(**context)
        else:
            value = environment().from_string(source).render(**context)
    except TemplateError as exc:
        raise TemplateFailure(f"{where}: {exc.message or type(exc).__name__}") from exc
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        raise TemplateFailure(f"{where}: {type(exc).__name__}: {exc}") from exc
    return None if isinstance(value, Undefined) else value


def matches(criteria: str | None, context: Mapping[str, Any]) -> bool:
    """Whether a rule's criteria hold; no criteria always match."""
    if criteria is None or not criteria.strip():
        return True
    value = evaluate(criteria, context, "criteria")
    if isinstance(value, str):
        return value.strip().lower() not in _FALSY_TEXT
    return bool(value)


def render(tree: Any, context: Mapping[str, Any], where: str = "parameters") -> Any:
    """Render every template string inside a parameters tree, keeping native types."""
    if isinstance(tree, str):
        if "{{" in tree or "{%" in tree:
            return evaluate(tree, context, where)
        return tree
    if isinstance(tree, dict):
        return {key: render(value, context, f"{where}.{key}") for key, value in tree.items()}
    if isinstance(tree, list):
        return [render(value, context, f"{where}[{index}]") for index, value in enumerate(tree)]
    return tree
