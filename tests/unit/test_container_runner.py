"""The container runner: confined like a sandboxed process, and a clear failure where no engine answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib.core.runners import ActionSpec
from chalicelib.runners import container
from chalicelib.runners.base import RunRequest


def _request(**kw: object) -> RunRequest:
    spec = ActionSpec("p.c", "container", image="python:3.11-slim")
    return RunRequest(execution_id=7, runner_type="container", parameters={"x": 1}, spec=spec, **kw)  # type: ignore[arg-type]


def test_the_container_is_confined() -> None:
    argv = container.docker_argv("docker", _request(entry_point="actions/job.py", pack_dir=Path("/cache/p")),
                                 "attune-exec-7-x", "python:3.11-slim")
    joined = " ".join(argv)
    # no network, read-only root, no capabilities, no new privileges, limits, the pack read-only
    for part in ("--network none", "--read-only", "--cap-drop ALL", "--security-opt no-new-privileges",
                 "--pids-limit", "--memory", "--cpus", "--volume /cache/p:/attune/pack:ro", "--rm"):
        assert part in joined, part
    assert "--privileged" not in argv
    assert argv[-3:] == ["python:3.11-slim", "python3", "/attune/pack/actions/job.py"]


def test_inline_code_runs_with_sh() -> None:
    assert container.command_for(_request(code="echo hi")) == ["sh", "-c", "echo hi"]


def test_no_engine_fails_at_once_naming_why(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a machine where neither docker nor podman is installed (as CI)
    monkeypatch.setattr(container.shutil, "which", lambda name: None)
    monkeypatch.setattr(container, "_probed", (0.0, None, ""))
    # WHEN a container action runs THEN it fails at once, naming the missing engine
    result = container.ContainerRunner().run(_request(code="echo hi"))
    assert result.status == "failed" and result.exit_code is None
    assert result.error == "container engine unavailable: neither docker nor podman is installed"
