"""Entry point of every sensor poll: `python sensor_wrapper.py <result_fd> <sensor.py> <ClassName>`.

Runs in the sandbox under the pack's interpreter (its virtualenv may be
another Python version), so it uses the standard library only and stays
3.8-compatible, like the actions' wrapper. stdin holds
`{"state": ..., "parameters": {...}}`: the state the last successful poll
returned (null on the first) and the sensor's trigger parameters. The class
is built with the parameters when its constructor takes an argument, else
with none (they are on `self.parameters` either way); then
`poll(state)` must return `(payloads, new_state)`. The answer goes on the
result channel, a pipe apart from stdout:
`{"payloads": [...], "state": ...}`, or `{"error": "..."}` with the
traceback on stderr and exit 1.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import json
import os
import sys
import traceback
from typing import Any, BinaryIO, NoReturn

MODULE_NAME = "attune_sensor_main"
_MAX_ERROR_CHARS = 1000


def one_line(exc: BaseException) -> str:
    """`ValueError: message`, first line only and bounded: the sensor's `last_error`."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text[:_MAX_ERROR_CHARS]


def _send(channel: BinaryIO, doc: dict[str, Any]) -> None:
    channel.write(json.dumps(doc, separators=(",", ":"), allow_nan=False).encode())
    channel.flush()


def _fail(channel: BinaryIO, exc: BaseException, path: str, message: str | None = None) -> NoReturn:
    """The traceback from the sensor's own first frame on (the wrapper's frames are noise)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != path:
        tb = tb.tb_next
    sys.stdout.flush()
    traceback.print_exception(type(exc), exc, tb)
    sys.stderr.flush()
    _send(channel, {"error": message or one_line(exc)})
    raise SystemExit(1)


def _load(path: str) -> Any:
    spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module


def _takes_argument(cls: type) -> bool:
    try:
        params = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):
        return False
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty for p in params)


def _build(module: Any, class_name: str, parameters: dict[str, Any]) -> Any:
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise TypeError(f"{class_name!r} is not a class of the sensor's module")
    sensor = cls(parameters) if _takes_argument(cls) else cls()
    if not hasattr(sensor, "parameters"):
        sensor.parameters = parameters
    if not callable(getattr(sensor, "poll", None)):
        raise TypeError(f"{class_name} has no poll(self, state) method")
    return sensor


def _split(result: Any) -> tuple[list[Any], Any]:
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise TypeError(f"poll() must return (payloads, new_state), got {type(result).__name__}")
    payloads, state = result
    if payloads is None:
        payloads = []
    if not isinstance(payloads, (list, tuple)):
        raise TypeError(f"poll()'s payloads must be a list (one item per event), got {type(payloads).__name__}")
    return list(payloads), state


def main(argv: list[str]) -> None:
    """Build the sensor named in argv, poll it once, report on the descriptor named in argv."""
    result_fd, path, class_name = int(argv[1]), os.path.abspath(argv[2]), argv[3]
    os.set_inheritable(result_fd, False)  # the sensor's own children must not hold the channel open
    sys.argv = [path]
    sys.path[0] = os.path.dirname(path)  # the sensor imports its siblings, not the platform's modules
    with os.fdopen(result_fd, "wb") as channel:
        try:
            raw = sys.stdin.read()
            doc = json.loads(raw) if raw.strip() else {}
            sensor = _build(_load(path), class_name, dict(doc.get("parameters") or {}))
            result = sensor.poll(doc.get("state"))
            if inspect.isawaitable(result):
                result = asyncio.run(result)  # type: ignore[arg-type]
            payloads, state = _split(result)
        except Exception as exc:  # noqa: BLE001 - any error of sensor code is the poll's error
            _fail(channel, exc, path)
        try:
            answer = json.dumps({"payloads": payloads, "state": state}, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            _fail(channel, exc, path, f"poll() returned something that is not JSON-serialisable: {one_line(exc)}")
        channel.write(answer.encode())
        channel.flush()


if __name__ == "__main__":
    main(sys.argv)
