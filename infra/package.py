"""`make package`: the deployable stack in build/sam (template plus every code artifact it names).

1. `chalice package --merge-template infra/template.yaml` writes the API
   (app.py and chalicelib as deployment.zip, and the REST and WebSocket APIs'
   resources) merged with this repository's one definition of the rest.
2. Each `functions/<name>` folder the template's `CodeUri`s name is staged
   beside it (`build/sam/functions/<name>`), as SAM resolves relative paths
   against the template's directory.
3. `SharedLayer` (`ContentUri: layer/`) gets `python/`: the runtime
   dependencies of infra/requirements-runtime.txt, installed for Lambda's
   platform (manylinux x86_64, CPython 3.11, wheels only), and chalicelib.
   The dependencies are cached in build/layer-deps and reinstalled only when
   the requirements file changes: that install is the slow step.

Everything staged is byte-compiled: Lambda's /var/task and /opt are
read-only, so without .pyc files every cold start compiles every module.
`aws cloudformation package` then uploads the folders and zips (infra/README.md).
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "infra" / "requirements-runtime.txt"
STAGE = "prod"
LAMBDA_PLATFORM = ("--platform", "manylinux2014_x86_64", "--implementation", "cp", "--python-version", "3.11",
                   "--only-binary=:all:")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache")


def bin_path(name: str) -> str:
    """A tool of this virtualenv (chalice, pip), whichever python runs this script."""
    return str(Path(sys.executable).with_name(name))


def chalice_package(out: Path) -> None:
    """The API and the merged template: out/sam.yaml and out/deployment.zip."""
    if out.exists():
        shutil.rmtree(out)
    env = {**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
    subprocess.run([bin_path("chalice"), "package", "--stage", STAGE, "--merge-template",
                    str(ROOT / "infra" / "template.yaml"), str(out)], cwd=ROOT, env=env, check=True)


def compile_zip(archive: Path) -> None:
    """Add byte-compiled modules to a zip Lambda will unpack read-only (chalice writes sources only)."""
    with tempfile.TemporaryDirectory(prefix="attune-zip-") as work:
        with zipfile.ZipFile(archive) as found:
            found.extractall(work)
        compileall.compile_dir(work, quiet=1)
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as rewritten:
            for path in sorted(Path(work).rglob("*")):
                if path.is_file():
                    rewritten.write(path, path.relative_to(work).as_posix())


def stage_functions(out: Path) -> list[str]:
    """Copy each functions/<name> folder next to the template; returns the names staged."""
    names = sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))
    for name in names:
        shutil.copytree(ROOT / "functions" / name, out / "functions" / name, ignore=IGNORED)
    return names


def layer_dependencies(cache: Path) -> Path:
    """The runtime dependencies for Lambda's platform, installed once per version of the requirements file."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]
    stamp = cache / ".requirements-sha256"
    if stamp.is_file() and stamp.read_text() == digest:
        return cache / "python"
    if cache.exists():
        shutil.rmtree(cache)
    subprocess.run([bin_path("pip"), "install", "--quiet", "--disable-pip-version-check", "--no-compile",
                    "--target", str(cache / "python"), *LAMBDA_PLATFORM, "-r", str(REQUIREMENTS)], check=True)
    stamp.write_text(digest)
    return cache / "python"


def stage_layer(out: Path, deps: Path) -> None:
    """SharedLayer's content: layer/python/<dependencies> and layer/python/chalicelib."""
    target = out / "layer" / "python"
    shutil.copytree(deps, target, ignore=IGNORED)
    shutil.copytree(ROOT / "chalicelib", target / "chalicelib", ignore=IGNORED)


def main(argv: list[str] | None = None) -> int:
    """Build build/sam (or --out) from the working tree."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "sam")
    parser.add_argument("--deps-cache", type=Path, default=ROOT / "build" / "layer-deps")
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    chalice_package(out)
    names = stage_functions(out)
    stage_layer(out, layer_dependencies(args.deps_cache.resolve()))
    compileall.compile_dir(str(out), quiet=1)
    compile_zip(out / "deployment.zip")
    print(f"packaged {out / 'sam.yaml'}: the API (deployment.zip), {len(names)} function folders, the layer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
