"""How runners turn raw process facts into a result: capture limits, JSON output, errors, statuses.

Pure: no process is started here (tests/integration/test_runners.py does that).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from chalicelib.runners.base import (
    Outcome,
    RunRequest,
    conclude,
    describe_exit,
    stdout_output,
)
from chalicelib.runners.output import TRUNCATION_MARKER, OutputBuffer, parse_json_output
from chalicelib.runners.python3 import interpret_channel
from chalicelib.runners.shell import command_for
from chalicelib.runners.wrapper import defines_run, one_line


def _buf(data: bytes, limit: int = 1024) -> OutputBuffer:
    buf = OutputBuffer(limit)
    buf.feed(data)
    return buf


def _outcome(
    stdout: bytes = b"",
    *,
    exit_code: int | None = 0,
    channel: bytes | None = None,
    timed_out: bool = False,
    canceled: bool = False,
    killed: bool = False,
) -> Outcome:
    return Outcome(
        exit_code,
        _buf(stdout),
        _buf(b""),
        None if channel is None else _buf(channel, limit=64),
        timed_out=timed_out,
        canceled=canceled,
        killed=killed,
        pid=123,
        duration_s=0.5,
    )


REQUEST = RunRequest(execution_id=1, runner_type="shell", parameters={}, code="true", timeout_s=5)


# --- OutputBuffer --------------------------------------------------------------------


def test_buffer_under_the_limit_keeps_everything_without_marker() -> None:
    buf = _buf(b"hello\n", limit=6)
    assert (buf.text(), buf.truncated, buf.dropped) == ("hello\n", False, 0)


def test_buffer_over_the_limit_keeps_the_head_counts_the_rest_and_marks_the_cut() -> None:
    # GIVEN a 10-byte limit WHEN 25 bytes arrive in pieces
    buf = OutputBuffer(10)
    for chunk in (b"abcdef", b"ghijklmnop", b"qrstuvwxy"):
        buf.feed(chunk)
    # THEN the first 10 bytes are kept, the rest counted, and the text says it was cut
    assert bytes(buf.data) == b"abcdefghij"
    assert buf.dropped == 15 and buf.truncated
    assert buf.text() == "abcdefghij" + TRUNCATION_MARKER
    assert TRUNCATION_MARKER == "\n... (output truncated)"


def test_buffer_cut_inside_a_multibyte_character_drops_the_half() -> None:
    buf = _buf("aé€".encode(), limit=4)  # a(1) é(2) €(3): the limit cuts the euro sign
    assert buf.text() == "aé" + TRUNCATION_MARKER


def test_buffer_invalid_utf8_is_replaced_not_fatal() -> None:
    assert _buf(b"ok \xff\xfe").text() == "ok \ufffd\ufffd"


# --- JSON output -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        ('{"a": 1}\n', {"a": 1}),
        ("  [1, 2]  \n\n", [1, 2]),
        ("42\n", 42),
        ("true", True),
        ("hello world\n", None),
        ('{"a": 1}\nmore text\n', None),
        ("", None),
        ("   \n", None),
        ('{"x": NaN}', None),
        ("Infinity", None),
    ],
)
def test_stdout_is_the_output_only_when_all_of_it_is_json(stdout: str, expected: object) -> None:
    assert parse_json_output(stdout) == expected


def test_cut_stdout_is_never_parsed() -> None:
    assert parse_json_output('{"a": 1}', truncated=True) is None
    assert stdout_output(Outcome(0, _buf(b'{"a": 1}', limit=3), _buf(b""), None)) is None


# --- exit descriptions and statuses ------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "text"),
    [(1, "exit code 1"), (127, "exit code 127"), (-9, "killed by signal SIGKILL"), (-15, "killed by signal SIGTERM")],
)
def test_describe_exit(code: int, text: str) -> None:
    assert describe_exit(code) == text


def test_success_keeps_output_and_streams() -> None:
    result = conclude(REQUEST, _outcome(b'{"ok": true}'), output={"ok": True})
    assert (result.status, result.error, result.exit_code, result.output) == ("succeeded", None, 0, {"ok": True})
    assert result.stdout == '{"ok": true}' and result.pid == 123 and result.duration_s == 0.5


def test_nonzero_exit_fails_and_keeps_json_output() -> None:
    result = conclude(REQUEST, _outcome(exit_code=2), output={"why": "disk full"})
    assert (result.status, result.error, result.output) == ("failed", "exit code 2", {"why": "disk full"})


def test_timeout_wins_over_the_exit_code_and_drops_partial_output() -> None:
    result = conclude(REQUEST, _outcome(b"1", exit_code=-15, timed_out=True), output=1)
    assert (result.status, result.error, result.timed_out, result.output) == (
        "failed",
        "timed out after 5s (SIGTERM)",
        True,
        None,
    )
    killed = conclude(REQUEST, _outcome(exit_code=-9, timed_out=True, killed=True))
    assert killed.error == "timed out after 5s (SIGKILL after the grace period)"


def test_cancel_wins_over_everything() -> None:
    result = conclude(REQUEST, _outcome(b"partial", exit_code=143, canceled=True), error="ValueError: x")
    assert (result.status, result.error, result.stdout, result.exit_code) == ("canceled", "canceled", "partial", 143)


def test_runner_error_wins_over_the_bare_exit_code() -> None:
    result = conclude(REQUEST, _outcome(exit_code=1), error="ValueError: bad port")
    assert (result.status, result.error) == ("failed", "ValueError: bad port")


def test_spawn_error_is_a_failure_without_pid() -> None:
    outcome = Outcome(None, _buf(b""), _buf(b""), None, spawn_error="could not start the action: [Errno 2] ...")
    result = conclude(REQUEST, outcome)
    assert result.status == "failed" and result.pid is None and result.error is not None
    assert result.error.startswith("could not start")


# --- the python3 result channel ---------------------------------------------------------------


def test_channel_result_is_the_output_even_when_none() -> None:
    assert interpret_channel(_outcome(b'{"x": 1}', channel=b'{"result": [1, 2]}'), 64) == ([1, 2], None)
    assert interpret_channel(_outcome(b'{"x": 1}', channel=b'{"result": null}'), 64) == (None, None)


def test_no_channel_document_falls_back_to_json_stdout() -> None:
    assert interpret_channel(_outcome(b'{"x": 1}', channel=b""), 64) == ({"x": 1}, None)


def test_channel_error_becomes_the_error() -> None:
    assert interpret_channel(_outcome(channel=b'{"error": "KeyError: \'a\'"}'), 64) == (None, "KeyError: 'a'")


def test_channel_overflow_and_garbage_fail_clearly() -> None:
    output, error = interpret_channel(_outcome(channel=b'{"result": "' + b"y" * 100 + b'"}'), 64)
    assert output is None and error is not None and "over the output limit of 64 bytes" in error
    _output, error = interpret_channel(_outcome(channel=b"{nope"), 64)
    assert error == "the action wrote something unreadable on the result channel"


# --- the wrapper's decisions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def run(**kw):\n    return kw\n", True),
        ("async def run():\n    pass\n", True),
        ("run = lambda: 1\n", True),
        ("from mylib import run\n", True),
        ("from mylib import go as run\n", True),
        ("class run:\n    pass\n", True),
        ("import sys\nprint(sys.stdin.read())\n", False),
        ("def main():\n    def run():\n        pass\n", False),
        ("if __name__ == '__main__':\n    run = 1\n", False),
        ("from mylib import run as go\n", False),
    ],
)
def test_wrapper_uses_run_only_when_the_module_binds_it_at_top_level(source: str, expected: bool) -> None:
    assert defines_run(ast.parse(source)) is expected


def test_wrapper_one_line_error() -> None:
    assert one_line(ValueError("bad\nsecond line")) == "ValueError: bad"
    assert one_line(KeyError("a")) == "KeyError: 'a'"
    assert one_line(RuntimeError()) == "RuntimeError"
    assert len(one_line(ValueError("x" * 5000))) == 1000


# --- shell command lines -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first_line", "argv_head"),
    [
        ("#!/usr/bin/env python3\n", ["/usr/bin/env", "python3"]),
        ("#!/bin/sh -eu\n", ["/bin/sh", "-eu"]),
        ("#! /bin/bash\n", ["/bin/bash"]),
    ],
)
def test_shebang_names_the_interpreter(tmp_path: Path, first_line: str, argv_head: list[str]) -> None:
    script = tmp_path / "a.sh"
    script.write_text(first_line + "echo hi\n")
    assert command_for(script) == [*argv_head, str(script)]


def test_script_without_shebang_runs_under_bash(tmp_path: Path) -> None:
    script = tmp_path / "a.sh"
    script.write_text("echo hi\n")
    argv = command_for(script)
    assert argv[0].endswith("bash") and argv[1:] == [str(script)]
