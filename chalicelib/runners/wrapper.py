"""Entry point of every python3 action process: `python wrapper.py <result_fd> <action.py>`.

Runs under the action's interpreter (a pack virtualenv may be another Python
version), so it uses the standard library only and stays 3.8-compatible. What
it shares with the sensor wrapper (the result channel, error reports, running
a file as a module) is `_attune_entry`, on the SDK path; see there why it
imports so little: a trivial action's cost is the interpreter and its imports.

Two modes, chosen by reading the file's syntax tree (so nothing runs twice):
- the file binds a top-level `run`: it is run as a module, the JSON
  object on stdin becomes `run(**params)`, and the return value is written as
  `{"result": ...}` on the result channel, a pipe the runner passed as an
  extra descriptor, so the action's own prints never mix with it;
- otherwise it runs as `__main__` and reads stdin itself.
An exception prints its traceback (from the action's frames) to stderr,
writes `{"error": "ValueError: ..."}` on the channel and exits 1.
"""

from __future__ import annotations

import _ast
import sys

try:
    from _attune_entry import dumps, execute, fail, one_line, parse, read_json_stdin, settle, start
except ImportError:  # imported by the platform (its tests), not started as an action's entry point
    from chalicelib.runners.sdk._attune_entry import (
        dumps,
        execute,
        fail,
        one_line,
        parse,
        read_json_stdin,
        settle,
        start,
    )

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

MODULE_NAME = "attune_action_main"
_BINDERS = (_ast.FunctionDef, _ast.AsyncFunctionDef, _ast.ClassDef)


def _bound_names(node: _ast.stmt) -> list[str]:
    if isinstance(node, _BINDERS):
        return [node.name]
    if isinstance(node, _ast.Assign):
        return [t.id for t in node.targets if isinstance(t, _ast.Name)]
    if isinstance(node, (_ast.AnnAssign, _ast.AugAssign)) and isinstance(node.target, _ast.Name):
        return [node.target.id]
    if isinstance(node, (_ast.Import, _ast.ImportFrom)):
        return [alias.asname or alias.name.split(".")[0] for alias in node.names]
    return []


def defines_run(tree: _ast.Module) -> bool:
    """Whether the module binds the name `run` at top level (def, class, assignment or import)."""
    return any("run" in _bound_names(node) for node in tree.body)


def _read_params() -> dict[str, Any]:
    params = read_json_stdin()
    if not isinstance(params, dict):
        raise TypeError(f"the parameters on stdin must be a JSON object, got {type(params).__name__}")
    return params


def _call_run(channel: BinaryIO, tree: _ast.Module, path: str) -> None:
    try:
        params = _read_params()
        run = getattr(execute(tree, path, MODULE_NAME), "run", None)
        if not callable(run):
            raise TypeError("the action's `run` is not callable")
        result = settle(run(**params))
    except Exception as exc:  # noqa: BLE001 - any error of action code becomes a failed execution
        fail(channel, exc, path)
    try:
        payload = dumps({"result": result})
    except (TypeError, ValueError) as exc:
        fail(channel, exc, path, f"run() returned a value that is not JSON-serialisable: {one_line(exc)}")
    channel.write(payload.encode())
    channel.flush()


def _run_script(channel: BinaryIO, tree: _ast.Module, path: str) -> None:
    try:
        execute(tree, path, "__main__")
    except Exception as exc:  # noqa: BLE001 - any error of action code becomes a failed execution
        fail(channel, exc, path)


def main(argv: list[str]) -> None:
    """Run the action file named in argv, reporting on the descriptor named in argv."""
    channel, path = start(argv)
    with channel:
        try:
            tree = parse(path)
        except (OSError, SyntaxError, ValueError) as exc:
            fail(channel, exc, path)
        if defines_run(tree):
            _call_run(channel, tree, path)
        else:
            _run_script(channel, tree, path)


if __name__ == "__main__":
    main(sys.argv)
