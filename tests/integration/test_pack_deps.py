"""Pack dependencies: a virtualenv per requirements.txt and node_modules per package.json, built once.

Real installs from the package registries (uv, npm), into a temporary deps dir.
"""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest

from chalicelib.config import settings
from chalicelib.runners import sandbox
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


BACKEND = '''
import json, os

def _report():
    seen = {"uid": os.getuid(), "secret_in_env": "attune-secret-xyz" in json.dumps(dict(os.environ))}
    try:
        seen["init_environ"] = "attune-secret-xyz" in open("/proc/1/environ").read()
    except OSError as exc:
        seen["init_environ"] = type(exc).__name__
    for name, path in (("data_file", DATA_FILE), ("data_dir", DATA_DIR)):
        try:
            seen[name] = open(path).read() if name == "data_file" else sorted(os.listdir(path))
        except OSError as exc:
            seen[name] = type(exc).__name__
    try:
        open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "planted.py"), "w").write("x = 1\\n")
        seen["pack_write"] = "written"
    except OSError as exc:
        seen["pack_write"] = type(exc).__name__
    raise RuntimeError("REPORT" + json.dumps(seen) + "END")

def get_requires_for_build_wheel(config_settings=None):
    return []

def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    _report()

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _report()
'''


def test_a_requirements_build_step_reaches_neither_the_data_dir_nor_the_workers_environment(
    tmp_path: Path, deps_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not sandbox.available():
        pytest.skip("bubblewrap cannot run here: builds run unconfined (ATTUNE_SANDBOX=auto)")
    # GIVEN a worker whose environment and data dir hold secrets
    monkeypatch.setenv("ATTUNE_DATABASE_URL", "postgresql://postgres:attune-secret-xyz@/attune")
    secret = deps_dir.parent / "secret.txt"
    secret.write_text("attune-secret-xyz")
    # AND a pack requiring a local package whose build backend (tenant code, run by the installer) looks for them
    # (an in-tree PEP 517 backend: nothing to download, the test stays offline)
    pack = _pack(tmp_path, "evil", {"requirements.txt": "./evilpkg\n"})
    (pack / "evilpkg").mkdir()
    (pack / "evilpkg" / "pyproject.toml").write_text(
        '[project]\nname = "evilpkg"\nversion = "1.0"\n\n'
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n')
    (pack / "evilpkg" / "backend.py").write_text(
        f"DATA_FILE = {str(secret)!r}\nDATA_DIR = {str(deps_dir.parent)!r}\n" + BACKEND)
    # WHEN the worker builds the pack's environment
    with pytest.raises(deps.DependencyError) as caught:
        deps.python_env(pack, "t1")
    # THEN the backend ran (its report is in the installer's error) ...
    message = caught.value.message
    assert "REPORT" in message, message
    seen = json.loads("{" + message.rsplit("REPORT{", 1)[1].split("}END", 1)[0] + "}")
    # ... as the owner's build uid, without the worker's environment or the data dir
    assert seen["uid"] >= sandbox.BUILD_UID_BASE, seen
    assert seen["secret_in_env"] is False and seen["init_environ"] is not True, seen
    assert seen["data_file"] == "FileNotFoundError" and seen["data_dir"] == "FileNotFoundError", seen
    # AND what it wrote went to its own copy of the pack, never into the pack version's files
    assert seen["pack_write"] == "written" and not (pack / "evilpkg" / "planted.py").exists()


def test_a_sandboxed_build_is_relocatable_and_names_no_host_path(tmp_path: Path) -> None:
    if not sandbox.available():
        pytest.skip("bubblewrap cannot run here: builds run unconfined (ATTUNE_SANDBOX=auto)")
    env = deps.python_env(_pack(tmp_path, "p", {"requirements.txt": "six==1.16.0\n"}), "t1")
    assert env is not None
    # THEN it was built where actions see it, and its files name neither the deps dir nor the data dir
    cfg = (env / "pyvenv.cfg").read_text()
    assert "relocatable = true" in cfg and str(env) not in cfg, cfg
    assert _version(env / "bin" / "python", "six") == "1.16.0"  # and it works at its host path too
    # AND once built it belongs to root: no sandbox uid, its builder's included, can change it
    assert {p.lstat().st_uid for p in [env, *env.rglob("*")]} == {0}
