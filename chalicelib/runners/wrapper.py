"""Entry point of every python3 action process: `python wrapper.py <result_fd> <action.py>`.

Runs under the action's interpreter (a pack virtualenv may be another Python
version), so it uses the standard library only and stays 3.8-compatible.

Two modes, chosen by reading the file's syntax tree (so nothing runs twice):
- the file binds a top-level `run`: it is imported as a module, the JSON
  object on stdin becomes `run(**params)`, and the return value is written as
  `{"result": ...}` on the result channel, a pipe the runner passed as an
  extra descriptor, so the action's own prints never mix with it;
- otherwise it runs as `__main__` and reads stdin itself.
An exception prints its traceback (from the action's frames) to stderr,
writes `{"error": "ValueError: ..."}` on the channel and exits 1.
"""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import inspect
import json
import os
import runpy
import sys
import traceback
from typing import Any, BinaryIO, NoReturn

MODULE_NAME = "attune_action_main"
_MAX_ERROR_CHARS = 1000


def _bound_names(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name):
        return [node.target.id]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [alias.asname or alias.name.split(".")[0] for alias in node.names]
    return []


def defines_run(tree: ast.Module) -> bool:
    """Whether the module binds the name `run` at top level (def, class, assignment or import)."""
    return any("run" in _bound_names(node) for node in tree.body)


def one_line(exc: BaseException) -> str:
    """`ValueError: message`, first line only and bounded: the execution's `error`."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text[:_MAX_ERROR_CHARS]


def _send(channel: BinaryIO, doc: dict[str, Any]) -> None:
    channel.write(json.dumps(doc, separators=(",", ":"), allow_nan=False).encode())
    channel.flush()


def _fail(channel: BinaryIO, exc: BaseException, path: str, message: str | None = None) -> NoReturn:
    """Show the traceback from the action's first frame on (the wrapper's own frames are noise)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != path:
        tb = tb.tb_next
    sys.stdout.flush()
    traceback.print_exception(type(exc), exc, tb)
    sys.stderr.flush()
    _send(channel, {"error": message or one_line(exc)})
    raise SystemExit(1)


def _read_params() -> dict[str, Any]:
    raw = sys.stdin.read()
    params = json.loads(raw) if raw.strip() else {}
    if not isinstance(params, dict):
        raise TypeError(f"the parameters on stdin must be a JSON object, got {type(params).__name__}")
    return params


def _load(path: str) -> Any:
    """Import the action file as a module (registered, so dataclasses and pickling work)."""
    spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module


def _call_run(channel: BinaryIO, path: str) -> None:
    try:
        params = _read_params()
        run = getattr(_load(path), "run", None)
        if not callable(run):
            raise TypeError("the action's `run` is not callable")
        result = run(**params)
        if inspect.isawaitable(result):
            result = asyncio.run(result)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - any error of action code becomes a failed execution
        _fail(channel, exc, path)
    try:
        payload = json.dumps({"result": result}, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        _fail(channel, exc, path, f"run() returned a value that is not JSON-serialisable: {one_line(exc)}")
    channel.write(payload.encode())
    channel.flush()


def _run_script(channel: BinaryIO, path: str) -> None:
    try:
        runpy.run_path(path, run_name="__main__")
    except Exception as exc:  # noqa: BLE001 - any error of action code becomes a failed execution
        _fail(channel, exc, path)


def main(argv: list[str]) -> None:
    """Run the action file named in argv, reporting on the descriptor named in argv."""
    result_fd, path = int(argv[1]), os.path.abspath(argv[2])
    os.set_inheritable(result_fd, False)  # the action's own children must not hold the channel open
    sys.argv = [path]
    sys.path[0] = os.path.dirname(path)  # the action imports its siblings, not the runner's modules
    with os.fdopen(result_fd, "wb") as channel:
        try:
            with open(path, "rb") as f:
                tree = ast.parse(f.read(), filename=path)
        except (OSError, SyntaxError, ValueError) as exc:
            _fail(channel, exc, path)
        if defines_run(tree):
            _call_run(channel, path)
        else:
            _run_script(channel, path)


if __name__ == "__main__":
    main(sys.argv)
