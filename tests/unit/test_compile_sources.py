"""`attune dev` writes our sources' bytecode first, even under PYTHONDONTWRITEBYTECODE (start-up, issue 14)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from chalicelib.cli import local as cli_local
from chalicelib.local import role_template
from chalicelib.local.role_template import compile_sources


def _tree(root: Path) -> dict[str, Path]:
    """A repository-shaped tree: a package module, a function's app and the top-level app."""
    files = {"module": root / "chalicelib" / "sub" / "mod.py", "function": root / "functions" / "fn" / "app.py",
             "app": root / "app.py"}
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("VALUE = 1\n")
    return files


def test_bytecode_is_written_even_when_python_is_told_not_to(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the interpreter's own bytecode writing off, as PYTHONDONTWRITEBYTECODE makes it
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    files = _tree(tmp_path)
    # WHEN the sources are compiled
    compile_sources(tmp_path)
    # THEN each has its cached bytecode where the import system looks for it
    for path in files.values():
        assert Path(importlib.util.cache_from_source(str(path))).is_file(), path


def test_stale_bytecode_is_rewritten_and_fresh_bytecode_left_alone(tmp_path: Path) -> None:
    files = _tree(tmp_path)
    compile_sources(tmp_path)
    cached = {name: Path(importlib.util.cache_from_source(str(path))) for name, path in files.items()}
    before = {name: pyc.stat().st_mtime_ns for name, pyc in cached.items()}
    # GIVEN one source edited since (its mtime moved on)
    edited = files["module"]
    edited.write_text("VALUE = 2\n")
    stat = edited.stat()
    os.utime(edited, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    os.utime(cached["app"], ns=(10**9, 10**9))  # a fresh pyc's own mtime is not what Python compares
    before["app"] = cached["app"].stat().st_mtime_ns
    # WHEN compiled again
    compile_sources(tmp_path)
    # THEN only the edited one was rewritten
    assert cached["module"].stat().st_mtime_ns != before["module"]
    assert cached["app"].stat().st_mtime_ns == before["app"]


def test_a_read_only_tree_raises_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A read-only install: writing the bytecode fails as py_compile meets it there (root is never refused).
    files = _tree(tmp_path)

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("py_compile.compile", refuse)
    compile_sources(tmp_path)
    assert not Path(importlib.util.cache_from_source(str(files["app"]))).exists()


def test_attune_dev_compiles_before_it_starts_any_process(monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    monkeypatch.setattr(role_template, "compile_sources", lambda *a: order.append("compile"))

    class Template:
        def __init__(self, *_args: Any) -> None:
            order.append("template")

    monkeypatch.setattr(role_template, "RoleTemplate", Template)
    monkeypatch.setattr("chalicelib.local.cloud.run_dev", lambda template: order.append("cloud") or 0)
    result = CliRunner().invoke(cli_local.dev, [])
    assert result.exit_code == 0, result.output
    assert order == ["compile", "template", "cloud"]
