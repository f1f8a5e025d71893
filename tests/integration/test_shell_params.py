"""Shell actions get each parameter as a file (`$ATTUNE_PARAMS/<name>`), and core.local runs `cmd` from it.

Real subprocesses, sandboxed when bwrap runs here (as the worker runs them).
What would make these fail: a string written as JSON (quoted), a value
mangled on the way (quotes, newlines, `$(...)`, non-ASCII), a name that
escapes the work dir, core.local running something other than `cmd`
verbatim, or parameters leaking into the environment or argv.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chalicelib.packs.bootstrap import PACKS_DIR
from chalicelib.runners import RunRequest, RunResult, runner_for

CORE = PACKS_DIR / "core"
# Everything bash would interpret if it were pasted into a command line unquoted.
HOSTILE = "it's \"quoted\" $(echo no) `echo no` \\ * ; | & \u00e9\u4e2d\n  second line\t end"


def _run(parameters: dict[str, Any], *, code: str | None = None, entry_point: str | None = None,
         pack_dir: Path | None = None, execution_id: int = 4242, context: dict[str, Any] | None = None) -> RunResult:
    request = RunRequest(execution_id=execution_id, runner_type="shell", parameters=parameters, code=code,
                         entry_point=entry_point, pack_dir=pack_dir, context=context or {})
    return runner_for("shell").run(request)


def test_each_parameter_is_a_file_strings_raw_the_rest_json() -> None:
    # GIVEN a shell action that prints its parameter files back as one JSON document
    code = (
        'printf \'{"s": %s, "n": %s, "obj": %s, "flag": %s, "none": %s}\' '
        '"$(printf %s "$(<"$ATTUNE_PARAMS/s")" | python3 -c "import json,sys; print(json.dumps(sys.stdin.read()))")" '
        '"$(<"$ATTUNE_PARAMS/n")" "$(<"$ATTUNE_PARAMS/obj")" "$(<"$ATTUNE_PARAMS/flag")" "$(<"$ATTUNE_PARAMS/none")"\n'
    )
    params = {"s": HOSTILE, "n": 3.5, "obj": {"a": [1, "x"]}, "flag": True, "none": None}
    # WHEN it runs
    result = _run(params, code=code)
    # THEN each came back as given: the string byte for byte (not JSON-quoted), the others as JSON
    assert result.status == "succeeded", result.stderr
    assert result.output == params


def test_odd_names_stay_on_stdin_only_and_nothing_is_written_outside_the_work_dir(tmp_path: Path) -> None:
    # GIVEN parameters whose names are paths or dot-names
    marker = tmp_path / "escaped"
    params = {"../escaped": "x", "/etc/attune-x": "x", ".": "x", "a/b": "x", "ok": "fine"}
    code = 'ls -A "$ATTUNE_PARAMS"; cat >/dev/null\n'
    # WHEN a shell action lists its parameter dir
    result = _run(params, code=code)
    # THEN only the plain name is a file; the others were not written anywhere
    assert result.status == "succeeded", result.stderr
    assert result.stdout.split() == ["ok"]
    assert not marker.exists() and not Path("/etc/attune-x").exists()


def test_parameters_are_not_in_the_environment_or_argv() -> None:
    # GIVEN a secret-looking parameter
    code = 'env; tr "\\0" " " </proc/$$/cmdline\n'
    # WHEN the action prints its own environment and command line
    result = _run({"token": "tok-do-not-leak-9f8e"}, code=code)
    # THEN the value is in neither (only the directory's path is in the environment)
    assert result.status == "succeeded", result.stderr
    assert "tok-do-not-leak-9f8e" not in result.stdout
    assert "ATTUNE_PARAMS=" in result.stdout


def test_core_local_runs_cmd_verbatim_with_bash() -> None:
    # GIVEN the system pack's core.local and a cmd full of quoting, a heredoc and a non-zero exit
    cmd = "printf '%s|' \"$0\" >/dev/null; cat <<'END'\n" + HOSTILE + "\nEND\nexit 7"
    # WHEN it runs from the pack, as the worker runs it
    result = _run({"cmd": cmd}, entry_point="actions/local.sh", pack_dir=CORE)
    # THEN bash ran exactly that text: the heredoc printed as written, its exit code is ours
    assert result.exit_code == 7, result.stderr
    assert result.stdout == HOSTILE + "\n"


def test_core_local_reads_no_stdin_and_fails_clearly_without_cmd() -> None:
    # GIVEN a cmd that reads stdin (core.local gives it /dev/null, not the parameters' JSON)
    result = _run({"cmd": "cat; echo done"}, entry_point="actions/local.sh", pack_dir=CORE)
    assert result.status == "succeeded", result.stderr
    assert result.stdout == "done\n"
    # AND without a cmd (the API refuses it first; a direct run must not succeed silently)
    missing = _run({}, entry_point="actions/local.sh", pack_dir=CORE)
    assert missing.status == "failed"
    assert "cmd parameter is missing" in missing.stderr


def test_core_local_cmd_with_json_output_becomes_the_output() -> None:
    doc = {"a": 1, "b": ["x", None]}
    result = _run({"cmd": f"echo '{json.dumps(doc)}'"}, entry_point="actions/local.sh", pack_dir=CORE)
    assert result.status == "succeeded", result.stderr
    assert result.output == doc


def test_core_local_cmd_sees_dollar_zero_as_bash_c_would_set_it() -> None:
    # GIVEN a cmd that prints $0 and its arguments (core.local evaluates it in its own bash, no second one)
    result = _run({"cmd": 'echo "$0" "$#"'}, entry_point="actions/local.sh", pack_dir=CORE)
    # THEN $0 reads "bash", as under `bash -c`, not the wrapper's path, and it has no positional arguments
    assert result.status == "succeeded", result.stderr
    assert result.stdout == "bash 0\n"
