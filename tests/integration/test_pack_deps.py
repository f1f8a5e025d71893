"""Pack dependencies: a virtualenv per requirements.txt and node_modules per package.json, built once.

Real installs from the package registries (uv, npm), into a temporary deps dir.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from chalicelib.config import settings
from chalicelib.worker import deps

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def deps_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ATTUNE_DEPS_DIR", str(tmp_path / "deps"))
    settings.cache_clear()
    yield tmp_path / "deps"
    settings.cache_clear()


def _pack(root: Path, name: str, files: dict[str, str]) -> Path:
    pack = root / name
    pack.mkdir()
    for path, text in files.items():
        (pack / path).write_text(text)
    return pack


def _version(python: Path, module: str) -> str:
    out = subprocess.run([str(python), "-c", f"import {module}; print({module}.__version__)"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_two_packs_pin_different_versions_side_by_side(tmp_path: Path) -> None:
    # GIVEN two packs pinning different versions of one library (T3.19)
    old = _pack(tmp_path, "old", {"requirements.txt": "six==1.15.0\n"})
    new = _pack(tmp_path, "new", {"requirements.txt": "six==1.16.0\n"})
    # WHEN both environments are asked for at once
    found: dict[str, Path | None] = {}
    threads = [threading.Thread(target=lambda n=n, p=p: found.__setitem__(n, deps.python_env(p, "t1")))
               for n, p in (("old", old), ("new", new))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    # THEN each has its own, with its own version
    env_old, env_new = found["old"], found["new"]
    assert env_old is not None and env_new is not None and env_old != env_new
    assert _version(env_old / "bin" / "python", "six") == "1.15.0"
    assert _version(env_new / "bin" / "python", "six") == "1.16.0"


def test_built_once_and_shared_by_concurrent_askers(tmp_path: Path) -> None:
    pack = _pack(tmp_path, "p", {"requirements.txt": "six==1.16.0\n"})
    results: list[Path | None] = []
    threads = [threading.Thread(target=lambda: results.append(deps.python_env(pack, "t1"))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    # THEN one environment (one build: no staging leftovers), the same for all
    assert len(set(results)) == 1 and results[0] is not None
    siblings = [p.name for p in results[0].parent.iterdir() if ".build-" in p.name]
    assert siblings == []
    # AND changed requirements build a new one (a reload with new dependencies)
    (pack / "requirements.txt").write_text("six==1.15.0\n")
    assert deps.python_env(pack, "t1") != results[0]


def test_a_failing_install_names_the_installers_error(tmp_path: Path) -> None:
    pack = _pack(tmp_path, "bad", {"requirements.txt": "attune-no-such-package-xyz==0.0.1\n"})
    with pytest.raises(deps.DependencyError) as caught:
        deps.python_env(pack, "t1")
    assert "attune-no-such-package-xyz" in caught.value.message
    # AND nothing half-built is left to be mistaken for ready
    assert not any((p / deps.READY).exists() for p in (deps.deps_root() / "venvs" / "t1").glob("*") if p.is_dir())


def test_no_requirements_no_env(tmp_path: Path) -> None:
    assert deps.python_env(_pack(tmp_path, "plain", {"pack.yaml": "ref: plain\n"}), "t1") is None


def test_node_modules_from_package_json(tmp_path: Path) -> None:
    pack = _pack(tmp_path, "js", {"package.json": '{"name": "js", "version": "1.0.0", '
                                                  '"dependencies": {"is-number": "7.0.0"}}'})
    modules = deps.node_modules(pack, "t1")
    assert modules is not None and (modules / "is-number" / "package.json").is_file()
    assert deps.node_modules(pack, "t1") == modules  # cached


def test_a_bad_package_json_fails_clearly(tmp_path: Path) -> None:
    pack = _pack(tmp_path, "badjs", {"package.json": "{not json"})
    with pytest.raises(deps.DependencyError) as caught:
        deps.node_modules(pack, "t1")
    assert "npm install failed" in caught.value.message
