"""Entry point of every sensor poll: `python sensor_wrapper.py <result_fd> <sensor.py> <ClassName>`.

Runs in the sandbox under the pack's interpreter (its virtualenv may be
another Python version), so it uses the standard library only and stays
3.8-compatible, like the actions' wrapper, with which it shares the result
channel, error reports and running a file as a module (`_attune_entry`, on
the SDK path). stdin holds
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

import inspect
import sys

try:
    from _attune_entry import execute, fail, one_line, parse, read_json_stdin, send, settle, start
except ImportError:  # imported by the platform (its tests), not started as a poll's entry point
    from chalicelib.runners.sdk._attune_entry import (
        execute,
        fail,
        one_line,
        parse,
        read_json_stdin,
        send,
        settle,
        start,
    )

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MODULE_NAME = "attune_sensor_main"


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
    channel, path = start(argv)
    class_name = argv[3]
    with channel:
        try:
            doc = read_json_stdin()
            module = execute(parse(path), path, MODULE_NAME)
            sensor = _build(module, class_name, dict(doc.get("parameters") or {}))
            payloads, state = _split(settle(sensor.poll(doc.get("state"))))
        except Exception as exc:  # noqa: BLE001 - any error of sensor code is the poll's error
            fail(channel, exc, path)
        try:
            send(channel, {"payloads": payloads, "state": state})
        except (TypeError, ValueError) as exc:
            fail(channel, exc, path, f"poll() returned something that is not JSON-serialisable: {one_line(exc)}")


if __name__ == "__main__":
    main(sys.argv)
