"""An execution's `result` as the worker stores it: the documented shape, storable, without secrets.

Pure functions: the worker builds every result through `result_doc`, so the
shape (`exit_code`, `stdout`, `stderr`, `output`, `error`) is written once.
"""

from __future__ import annotations

from typing import Any

from chalicelib.core.params import MASK

MIN_SECRET_LEN = 4  # masking "1" or "ab" everywhere would mangle the output and hide nothing


def _jsonb_safe(value: Any) -> Any:
    """PostgreSQL's jsonb refuses U+0000 in strings; an action that prints NUL must still get its result stored."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, list):
        return [_jsonb_safe(v) for v in value]
    if isinstance(value, dict):
        return {_jsonb_safe(k): _jsonb_safe(v) for k, v in value.items()}
    return value


def _redact(value: Any, secrets: tuple[str, ...]) -> Any:
    """Mask the values of the action's secret parameters wherever the action echoed them."""
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, MASK)
        return value
    if isinstance(value, list):
        return [_redact(v, secrets) for v in value]
    if isinstance(value, dict):
        return {k: _redact(v, secrets) for k, v in value.items()}
    return value


def secret_values(declared: dict[str, Any] | None, parameters: dict[str, Any]) -> tuple[str, ...]:
    """The string values given for parameters declared `secret` (longest first, so none is masked in part)."""
    found = {
        value
        for name, spec in (declared or {}).items()
        if isinstance(spec, dict) and spec.get("secret")
        and isinstance(value := parameters.get(name), str) and len(value) >= MIN_SECRET_LEN
    }
    return tuple(sorted(found, key=len, reverse=True))


def result_doc(
    *,
    exit_code: int | None = None,
    stdout: str = "",
    stderr: str = "",
    output: Any = None,
    error: str | None = None,
    secrets: tuple[str, ...] = (),
) -> dict[str, Any]:
    """An execution's `result` in the shape the API documents, storable and without the action's secrets."""
    raw = {"exit_code": exit_code, "stdout": stdout, "stderr": stderr, "output": output, "error": error}
    result: dict[str, Any] = _jsonb_safe(_redact(raw, secrets))
    return result
