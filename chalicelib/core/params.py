"""Execution parameters checked against the action's schema before any worker sees them.

Messages are written for people ("Missing required parameter: url"), one per
problem, so a failed execution says exactly what to fix.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from chalicelib.core.packs import parameters_schema, parse_parameters, secret_names


def _describe(error: ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"Missing required parameter: {f'{path}.' if path else ''}{missing}"
    if error.validator == "additionalProperties" and not path:
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"Unknown parameter{'s' if len(extra) > 1 else ''}: {', '.join(extra)}"
    where = f"Parameter '{path}'" if path else "Parameters"
    return f"{where}: {error.message}"


@dataclass(frozen=True)
class _Compiled:
    """One declared parameter map, parsed and turned into its validator once."""

    defaults: tuple[tuple[str, Any], ...]
    validator: Draft202012Validator


@lru_cache(maxsize=512)
def _compiled(frozen: str) -> _Compiled:
    """Parsing a declaration checks each parameter's own schema (0.7 ms for `core.local`'s one): once per action.

    Every execution of an action asks with the same declaration, and on the
    rules engine's path that parse was almost half of its work per event.
    """
    declared = json.loads(frozen)
    specs = parse_parameters(declared)
    defaults = tuple((name, spec.default) for name, spec in specs.items() if spec.has_default())
    return _Compiled(defaults, Draft202012Validator(parameters_schema(specs)))


def check(declared: Mapping[str, Any], given: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The parameters to run with (defaults applied) and the problems found (empty when valid).

    Raises `ValidationFailed` for a declaration that is itself invalid, as parsing it always did.
    """
    compiled = _compiled(json.dumps(declared, sort_keys=True, default=str))
    params = dict(given)
    for name, default in compiled.defaults:
        if name not in params:
            params[name] = copy.deepcopy(default)  # the cached default is shared: each run gets its own
    errors = sorted(compiled.validator.iter_errors(params), key=lambda e: (list(e.absolute_path), e.message))
    return params, [_describe(e) for e in errors]


# What a secret shows as wherever it would otherwise appear: parameters, results, datastore reads, audit.
MASK = "********"


@lru_cache(maxsize=512)
def _secret_names(frozen: str) -> frozenset[str]:
    """The declared secrets of one schema, parsed once: every request of an action asks again."""
    return frozenset(secret_names(json.loads(frozen)))


def declared_secrets(declared: Mapping[str, Any]) -> frozenset[str]:
    """The parameters `declared` marks secret, parsed once per declaration (the worker asks for every execution)."""
    return _secret_names(json.dumps(declared, sort_keys=True, default=str))


def split_secrets(declared: Mapping[str, Any], params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(what may be stored and shown, with each secret masked; the secret values alone).

    A parameter declared `secret: true` never reaches the readable
    `parameters` column, the API, the audit log or a notification: only its
    sealed value is stored, and only the worker opens it.
    """
    secret = declared_secrets(declared)
    shown = {k: (MASK if k in secret else v) for k, v in params.items()}
    hidden = {k: v for k, v in params.items() if k in secret}
    return shown, hidden
