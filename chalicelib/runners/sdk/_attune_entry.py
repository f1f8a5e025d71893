"""What the action wrapper (runners/wrapper.py) and the sensor wrapper (sensors/wrapper.py) share.

Why here: both run in the tenant's interpreter, in the sandbox, where only
the SDK dir (on PYTHONPATH) and the wrapper files themselves are visible,
so the SDK dir is the one place both can import from. Standard library only,
Python 3.8-compatible (a pack's virtualenv may be another version).

Every import is paid on each action start (a trivial action's whole cost is
the interpreter and these imports), so only `os` and `sys` load up front:
`traceback` only when something failed, `inspect`/`asyncio` only for a
result that is not plain data (an `async def run`). The file is parsed once
with the `_ast` C module (`ast.py` would pull in `enum` and `contextlib`),
and the same tree is compiled and run, so nothing is read twice. JSON goes
through `_json`, the json package's own C scanner and encoder, configured
exactly as `json.loads` and `json.dumps(separators=(",", ":"),
allow_nan=False)` configure them: importing the package itself compiles its
regular expressions, which imports `re` and `enum`, about as much CPU as the
interpreter's own start (measured: bench/sandbox.py, docs/actions.md). An
interpreter without `_json` (or with another one) gets the package.
"""

from __future__ import annotations

import _ast
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # no `typing` import at run time: it is the slowest of the lot
    from collections.abc import Callable
    from typing import Any, BinaryIO, NoReturn

MAX_ERROR_CHARS = 1000
_PLAIN = (dict, list, tuple, str, int, float, bool, type(None))


def one_line(exc: BaseException) -> str:
    """`ValueError: message`, first line only and bounded: the execution's `error`, the sensor's `last_error`."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text[:MAX_ERROR_CHARS]


_WHITESPACE = " \t\n\r"  # JSON's, as json.decoder skips it


class _DecodeContext:
    """What `_json.make_scanner` reads off a JSONDecoder: its defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__
    memo: dict[str, Any] = {}


def _not_serialisable(o: Any) -> Any:
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


def _c_codec() -> tuple[Callable[[str], Any], Callable[[Any], str]]:
    """(loads, dumps) on `_json`, checked on a sample; ImportError/others make `codec` fall back to the package."""
    import _json

    scan = _json.make_scanner(_DecodeContext())  # type: ignore[arg-type]  # any object with these attributes

    def loads(text: str) -> Any:
        start = len(text) - len(text.lstrip(_WHITESPACE))
        try:
            value, end = scan(text, start)
        except StopIteration as exc:
            raise ValueError(f"Expecting value: char {exc.value}") from None
        if text[end:].strip(_WHITESPACE):
            raise ValueError(f"Extra data: char {end}")
        return value

    def dumps(value: Any) -> str:
        # a fresh encoder each time: its `markers` (cycle detection) are not cleaned up after an error
        encode = _json.make_encoder({}, _not_serialisable, _json.encode_basestring_ascii, None, ":", ",",
                                    False, False, False)
        return "".join(encode(value, 0))

    sample = {"a": [1, 1.5, "\u00e9\n", None, True, False], "b": {}}
    if dumps(sample) != '{"a":[1,1.5,"\\u00e9\\n",null,true,false],"b":{}}' or loads(dumps(sample)) != sample:
        raise ValueError("_json does not behave as json does here")
    return loads, dumps


def codec() -> tuple[Callable[[str], Any], Callable[[Any], str]]:
    """`json.loads` and compact, NaN-refusing `json.dumps`, as cheaply as this interpreter allows."""
    try:
        return _c_codec()
    except Exception:  # noqa: BLE001 - any doubt about `_json` (another interpreter): the package itself
        import json

        return json.loads, lambda value: json.dumps(value, separators=(",", ":"), allow_nan=False)


loads, dumps = codec()


def send(channel: BinaryIO, doc: dict[str, Any]) -> None:
    """Write the one document of the result channel."""
    channel.write(dumps(doc).encode())
    channel.flush()


def fail(channel: BinaryIO, exc: BaseException, path: str, message: str | None = None) -> NoReturn:
    """Print the traceback from the tenant file's first frame on (the wrappers' frames are noise), report, exit 1."""
    import traceback

    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != path:
        tb = tb.tb_next
    sys.stdout.flush()
    traceback.print_exception(type(exc), exc, tb)
    sys.stderr.flush()
    send(channel, {"error": message or one_line(exc)})
    raise SystemExit(1)


def start(argv: list[str]) -> tuple[BinaryIO, str]:
    """The result channel and the tenant file's absolute path from `wrapper <result_fd> <file> ...`.

    The channel is not inherited by the tenant's own children (they must not
    hold it open); sys.argv and sys.path[0] become the file's, so it imports
    its siblings and never the platform's modules next to the wrapper.
    """
    result_fd, path = int(argv[1]), os.path.abspath(argv[2])
    os.set_inheritable(result_fd, False)
    sys.argv = [path]
    sys.path[0] = os.path.dirname(path)
    _exit_builtins()
    return os.fdopen(result_fd, "wb"), path


def _exit_builtins() -> None:
    """`exit()` and `quit()` for scripts: `site` defines them, and interpreters started with -S have none."""
    import builtins

    if not hasattr(builtins, "exit"):
        builtins.exit = builtins.quit = sys.exit  # type: ignore[assignment, attr-defined, unused-ignore]


def parse(path: str) -> _ast.Module:
    """The file's syntax tree (SyntaxError/OSError as the tenant's error)."""
    with open(path, "rb") as f:
        tree = compile(f.read(), path, "exec", _ast.PyCF_ONLY_AST)
    assert isinstance(tree, _ast.Module)
    return tree


def execute(tree: _ast.Module, path: str, name: str) -> Any:
    """Run the tree as module `name`, registered in sys.modules (dataclasses and pickling look there).

    With name "__main__" this is what `python file.py` does; otherwise what
    importing the file would do, without the import machinery's own imports.
    """
    module = type(sys)(name)
    module.__file__ = path
    sys.modules[name] = module
    exec(compile(tree, path, "exec"), module.__dict__)  # noqa: S102 - running the tenant's file is the point
    return module


def read_json_stdin() -> Any:
    """The JSON document on stdin; an empty stdin is `{}`."""
    raw = sys.stdin.read()
    return loads(raw) if raw.strip() else {}


def settle(result: Any) -> Any:
    """An awaitable result (`async def run`/`poll`) run to its value; asyncio is imported only then."""
    if isinstance(result, _PLAIN):
        return result
    import inspect

    if not inspect.isawaitable(result):
        return result
    import asyncio

    return asyncio.run(result)  # type: ignore[arg-type]
