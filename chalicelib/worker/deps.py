"""Pack dependencies, built once per content and cached: a virtualenv for `requirements.txt`, `node_modules` for
`package.json`.

Keyed by the hash of the dependency file (plus the lock file, for node), so
a reload that changes requirements builds a new environment and one that
does not reuses the old; two packs pinning different versions of a library
get two environments and run side by side. One process builds at a time
(an exclusive file lock per environment): a second worker asking for the
same one waits and then uses it. Builds go to a temporary directory renamed
into place, so nobody ever sees half an environment. `uv` creates and fills
virtualenvs when installed (an order of magnitude faster), else `venv` + pip.
A failed install raises `DependencyError` carrying the installer's output: the
execution fails with it, the worker carries on.

Locally the environments live under `<data_dir>/deps` (ATTUNE_DEPS_DIR); on
Lambda under /tmp, or baked into a layer at build time (docs/actions.md).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from chalicelib.config import settings
from chalicelib.core.errors import AttuneError

INSTALL_TIMEOUT_S = 600
LOG_TAIL = 4000
READY = ".ready"


class DependencyError(AttuneError):
    """Installing a pack's dependencies failed; the message is the installer's own (its tail)."""

    status = 422
    code = "dependency_error"


def deps_root() -> Path:
    """Where environments are kept: ATTUNE_DEPS_DIR, else `<data_dir>/deps` (Lambda: /tmp/attune-deps)."""
    if settings().deps_dir:
        return Path(str(settings().deps_dir))
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return Path("/tmp/attune-deps")  # noqa: S108 - Lambda's only writable directory
    return Path(settings().data_dir).resolve() / "deps"


def _digest(*files: Path) -> str:
    h = hashlib.sha256()
    for path in files:
        h.update(path.name.encode() + b"\0" + (path.read_bytes() if path.exists() else b"") + b"\0")
    return h.hexdigest()[:20]


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # a second builder waits here, then finds it ready
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# What an installer may see of the worker's environment: how to reach the registries (proxies,
# CA bundles, index settings), never the platform's credentials or database URL.
_PASSED = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "SSL_CERT_FILE",
           "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS")
_PASSED_PREFIXES = ("PIP_", "UV_", "NPM_CONFIG_", "npm_config_")


def installer_env(home: Path) -> dict[str, str]:
    """The environment of pip/uv/npm: registry settings passed through, everything else dropped."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8"}
    env.update({k: v for k, v in os.environ.items() if k in _PASSED or k.startswith(_PASSED_PREFIXES)})
    if "PIP_CERT" in env:  # the CA bundle pip is told to trust: uv and npm must trust it too
        env.setdefault("SSL_CERT_FILE", env["PIP_CERT"])
        env.setdefault("NODE_EXTRA_CA_CERTS", env["PIP_CERT"])
    env.setdefault("UV_NATIVE_TLS", "true")  # the system's trust store, like pip and npm
    return env


def _run(argv: list[str], cwd: Path | None, what: str) -> None:
    home = cwd or deps_root()
    home.mkdir(parents=True, exist_ok=True)
    env = installer_env(home)
    try:
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise DependencyError(f"{what} timed out after {INSTALL_TIMEOUT_S}s") from exc
    except OSError as exc:
        raise DependencyError(f"{what} could not start: {exc}") from exc
    if done.returncode != 0:
        log = (done.stderr or done.stdout or "").strip()[-LOG_TAIL:]
        raise DependencyError(f"{what} failed (exit {done.returncode}): {log}")


def _build(target: Path, build: Callable[[Path], None]) -> Path:
    if (target / READY).exists():
        return target
    with _exclusive(target.with_name(target.name + ".lock")):
        if (target / READY).exists():
            return target
        staging = target.with_name(f"{target.name}.build-{uuid.uuid4().hex[:8]}")
        try:
            build(staging)
            (staging / READY).write_text("ok\n")
            if target.exists():  # a half-built leftover of a crash
                shutil.rmtree(target)
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def base_python() -> str:
    """The interpreter virtualenvs are made from: the worker's base Python (never its own virtualenv)."""
    return str(getattr(sys, "_base_executable", None) or sys.executable)


def python_env(pack_dir: Path, owner: str) -> Path | None:
    """The virtualenv for the pack's `requirements.txt` (its interpreter: `<env>/bin/python`), or None.

    `owner` scopes the cache (a tenant id, or "system": system packs share theirs).
    """
    requirements = pack_dir / "requirements.txt"
    if not requirements.is_file() or not requirements.read_text().strip():
        return None
    target = deps_root() / "venvs" / owner / _digest(requirements)

    def build(staging: Path) -> None:
        uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
        if Path(uv).exists():
            _run([uv, "venv", "--quiet", "--python", base_python(), str(staging)], None, "uv venv")
            _run([uv, "pip", "install", "--quiet", "--python", str(staging / "bin" / "python"),
                  "-r", str(requirements)], None, "installing requirements.txt (uv pip)")
        else:
            _run([base_python(), "-m", "venv", str(staging)], None, "python -m venv")
            _run([str(staging / "bin" / "pip"), "install", "--quiet", "-r", str(requirements)], None,
                 "installing requirements.txt (pip)")

    return _build(target, build)


def node_modules(pack_dir: Path, owner: str) -> Path | None:
    """The `node_modules` for the pack's `package.json` (npm ci with a lockfile, else npm install), or None."""
    package = pack_dir / "package.json"
    if not package.is_file():
        return None
    lock = pack_dir / "package-lock.json"
    target = deps_root() / "node" / owner / _digest(package, lock)

    def build(staging: Path) -> None:
        npm = shutil.which("npm")
        if npm is None:
            raise DependencyError("npm is not installed; node actions with a package.json need it")
        staging.mkdir(parents=True)
        shutil.copy2(package, staging / "package.json")
        if lock.is_file():
            shutil.copy2(lock, staging / "package-lock.json")
        verb = ["ci"] if lock.is_file() else ["install"]
        _run([npm, *verb, "--no-audit", "--no-fund", "--ignore-scripts", "--omit=dev"], staging,
             f"npm {verb[0]}")

    return _build(target, build) / "node_modules"
