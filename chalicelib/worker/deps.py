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

The build steps run tenant-controlled code (a requirement's setup.py, a
build backend), so they run in the actions' sandbox (sandbox.build_sandbox):
the registry's network, a private copy of the pack's files as its cwd (the
pack version's own files are not there to change), only the environment
being built writable (/attune/venv, /attune/build), the owner's own download
cache (/attune/cache) and that work dir, as the owner's build uid, with
limits, and an environment of registry settings only (`installer_env`): no
data dir, no database, no platform credentials. A virtualenv is built at
/attune/venv, where actions see it, and `--relocatable`, so it also works
at its host path (ATTUNE_SANDBOX=off, the tests). Unconfined only where
actions are too: ATTUNE_SANDBOX=off, or auto without a usable bwrap.
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
from dataclasses import dataclass
from pathlib import Path

from chalicelib.config import settings
from chalicelib.core.errors import AttuneError
from chalicelib.runners import launch, sandbox
from chalicelib.runners.sandbox import (
    MOUNT_ROOT,
    VENV_MOUNT,
    WORK_MOUNT,
    Sandbox,
    base_python,
    python_prefixes,
    work_dir,
)

INSTALL_TIMEOUT_S = 600
# Where a confined build sees its things (its copy of the pack, a virtualenv at VENV_MOUNT, where actions see it).
CACHE_MOUNT = MOUNT_ROOT / "cache"
PACK_COPY = WORK_MOUNT / "pack"
NODE_BUILD_MOUNT = MOUNT_ROOT / "build"
UV_MOUNT = MOUNT_ROOT / "uv"
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


@dataclass(frozen=True)
class _Builder:
    """How one environment's build steps run: confined (`sandbox`) or not, and where things are inside.

    `target` is the host dir being built, `cache` the owner's download
    cache; `seen` names a host path (the target, the pack's files, a tool)
    as the build step sees it.
    """

    sandbox: Sandbox | None
    pack_dir: Path
    target: Path
    target_mount: Path
    cache: Path
    tools: tuple[tuple[Path, Path], ...] = ()

    def seen(self, path: Path) -> str:
        """`path` as the build step names it: unchanged unconfined."""
        if self.sandbox is None:
            return str(path)
        for candidate in (path, path.resolve()):  # the pack dir is kept resolved
            for host, mount in ((self.target, self.target_mount), (self.pack_dir, PACK_COPY), *self.tools):
                if candidate.is_relative_to(host):
                    return str(mount / candidate.relative_to(host))
        return str(path)

    def seal(self) -> None:
        """A confined build's result handed to root: no sandbox uid (its builder's included) may change it after."""
        if self.sandbox is None:
            return
        for root, dirs, files in os.walk(self.target):
            for name in (*dirs, *files):
                os.chown(os.path.join(root, name), 0, 0, follow_symlinks=False)
        os.chown(self.target, 0, 0)

    def run(self, argv: list[str], what: str, cwd: Path | None = None) -> None:
        """Run one step (`argv` naming paths as `seen` does); DependencyError with the installer's tail if it fails.

        Confined, the cwd is a private copy of the pack (requirements name
        local paths relative to it) and HOME/TMPDIR a fresh work dir;
        unconfined, `cwd` (host).
        """
        try:
            done = self._run(argv, cwd)
        except subprocess.TimeoutExpired as exc:
            raise DependencyError(f"{what} timed out after {INSTALL_TIMEOUT_S}s") from exc
        except (OSError, ValueError) as exc:
            raise DependencyError(f"{what} could not start: {exc}") from exc
        if done.returncode != 0:
            log = (done.stderr or done.stdout or b"").decode(errors="replace").strip()[-LOG_TAIL:]
            raise DependencyError(f"{what} failed (exit {done.returncode}): {log}")

    def _run(self, argv: list[str], cwd: Path | None) -> subprocess.CompletedProcess[bytes]:
        if self.sandbox is None:
            env = installer_env(self.cache)
            return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, timeout=INSTALL_TIMEOUT_S, check=False)
        with work_dir(0, self.sandbox.uid) as work:
            _private_copy(self.pack_dir, work / PACK_COPY.name, self.sandbox.uid)
            env = installer_env(WORK_MOUNT)
            env.update({"TMPDIR": str(WORK_MOUNT), "UV_CACHE_DIR": str(CACHE_MOUNT / "uv"),
                        "npm_config_cache": str(CACHE_MOUNT / "npm")})
            return launch.run(
                self.sandbox, argv, timeout_s=INSTALL_TIMEOUT_S, cwd=work, env=env,
                read_only=python_prefixes(), mounts=self.tools,
                writable=[(self.target, self.target_mount), (self.cache, CACHE_MOUNT)], chdir=PACK_COPY,
            )


def _private_copy(pack_dir: Path, dest: Path, uid: int) -> None:
    """The build step's own copy of the pack, owned by its uid: local requirements may build in their source dir.

    (setuptools writes `*.egg-info` next to `setup.py`.) The pack version's
    files themselves are never bound into a build, so nothing a build does
    changes them; links are copied as links, resolved inside the sandbox.
    """
    shutil.copytree(pack_dir, dest, symlinks=True)
    for root, dirs, files in os.walk(dest):
        for name in (*dirs, *files):
            os.chown(os.path.join(root, name), uid, uid, follow_symlinks=False)
    os.chown(dest, uid, uid)


def _builder(pack_dir: Path, owner: str, staging: Path, mount: Path, tools: dict[Path, Path]) -> _Builder:
    """The build's confinement (None sandbox: unconfined), with its target and the owner's cache made and owned."""
    try:
        box = sandbox.build_sandbox(owner, INSTALL_TIMEOUT_S)
    except sandbox.SandboxUnavailable as exc:
        raise DependencyError(exc.message) from exc
    cache = deps_root() / "cache" / owner
    staging.mkdir(parents=True)
    cache.mkdir(parents=True, exist_ok=True)
    if box is not None:  # the build's uid writes its target and its cache, nothing else
        for path in (staging, cache):
            os.chown(path, box.uid, box.uid)
    return _Builder(box, pack_dir.resolve(), staging, mount, cache, tuple(tools.items()))


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


def python_env(pack_dir: Path, owner: str) -> Path | None:
    """The virtualenv for the pack's `requirements.txt` (its interpreter: `<env>/bin/python`), or None.

    `owner` scopes the cache (a tenant id, or "system": system packs share theirs).
    """
    requirements = pack_dir / "requirements.txt"
    if not requirements.is_file() or not requirements.read_text().strip():
        return None
    target = deps_root() / "venvs" / owner / _digest(requirements)

    def build(staging: Path) -> None:
        uv = Path(shutil.which("uv") or Path(sys.executable).with_name("uv"))
        tools = {uv: UV_MOUNT} if uv.exists() else {}
        b = _builder(pack_dir, owner, staging, VENV_MOUNT, tools)
        venv, reqs = b.seen(staging), b.seen(requirements)
        if uv.exists():
            b.run([b.seen(uv), "venv", "--quiet", "--allow-existing", "--relocatable", "--python", base_python(), venv],
                  "uv venv")
            b.run([b.seen(uv), "pip", "install", "--quiet", "--python", f"{venv}/bin/python", "-r", reqs],
                  "installing requirements.txt (uv pip)", cwd=pack_dir)
        else:
            b.run([base_python(), "-m", "venv", venv], "python -m venv")
            b.run([f"{venv}/bin/pip", "install", "--quiet", "-r", reqs], "installing requirements.txt (pip)",
                  cwd=pack_dir)
        b.seal()

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
        b = _builder(pack_dir, owner, staging, NODE_BUILD_MOUNT, {})
        shutil.copy2(package, staging / "package.json")
        if lock.is_file():
            shutil.copy2(lock, staging / "package-lock.json")
        verb = ["ci"] if lock.is_file() else ["install"]
        b.run([npm, *verb, "--no-audit", "--no-fund", "--ignore-scripts", "--omit=dev", "--prefix", b.seen(staging)],
              f"npm {verb[0]}", cwd=staging)
        b.seal()

    return _build(target, build) / "node_modules"
