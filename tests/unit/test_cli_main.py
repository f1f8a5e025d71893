"""The `attune` entry point: one click group for the user commands and the local cloud's, exit statuses kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from chalicelib.cli import attune, main

USER_COMMANDS = {"login", "pack", "action", "run", "execution", "trigger", "rule", "inquiry", "key"}
LOCAL_COMMANDS = {"dev", "migrate", "provision"}


def test_every_command_is_on_the_one_group() -> None:
    assert set(attune.commands) == USER_COMMANDS | LOCAL_COMMANDS


def test_help_and_usage_errors_are_exit_statuses_not_exceptions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "execution" in capsys.readouterr().out
    assert main(["run"]) == 2  # a missing argument: click's usage error
    assert "Missing argument 'REF'" in capsys.readouterr().err


def test_a_bad_key_value_fails_before_any_request(tmp_path: Path) -> None:
    # GIVEN no API at all WHEN an argument cannot be read THEN the error is about the argument, exit 1
    runner = CliRunner()
    done = runner.invoke(attune, ["--url", "http://127.0.0.1:9", "inquiry", "respond", "1", "oops"],
                         env={"ATTUNE_CONFIG_DIR": str(tmp_path)})
    assert done.exit_code == 1
    assert "Error: 'oops' is not key=value" in done.output, done.output


def test_pack_register_refuses_a_directory_without_pack_yaml(tmp_path: Path) -> None:
    runner = CliRunner()
    done = runner.invoke(attune, ["pack", "register", str(tmp_path)], env={"ATTUNE_CONFIG_DIR": str(tmp_path)})
    assert done.exit_code == 1 and "no pack.yaml" in done.output
