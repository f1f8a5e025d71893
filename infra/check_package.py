"""`make check-package`: what can be proven about build/sam without an AWS account.

1. cfn-lint passes on the packaged (merged) template.
2. The SAM transform translates it (aws-sam-translator, offline: local code
   paths are swapped for the S3 URIs `aws cloudformation package` would
   write, and the one managed policy SAM attaches is named from a table
   instead of asked of IAM).
3. Every function's handler imports from its artifact as Lambda would load
   it, in a clean virtualenv that holds nothing: the artifact (its folder,
   or deployment.zip unpacked) and the layer's `python/` are the whole path,
   so a module that only the development environment has (moto, pytest,
   pgserver, ...) fails here rather than on AWS. Each import runs in a fresh
   process and reports its cold import time (`bench/package.py` measures it
   repeatedly; the check only refuses a handler that does not import).

Exit status 0 when every check passes; the failures are printed otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
# Development-only distributions that must not be importable next to a deployed handler.
FORBIDDEN = ("moto", "pytest", "pgserver", "localstack_client", "uv", "hypothesis", "cfnlint", "samtranslator")
# Lambda's own modules, as SAM names them; the ARN is the only thing the transform needs.
MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "AWSLambdaSQSQueueExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole",
    "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}
# Runs inside the clean virtualenv: the artifact and the layer are the path, as /var/task and /opt/python are.
IMPORT_PROBE = """
import importlib, importlib.util, json, sys, time
task, layer, handler = sys.argv[1:4]
forbidden = sys.argv[4].split(",")
sys.path[:0] = [task, layer]
present = [name for name in forbidden if importlib.util.find_spec(name) is not None]
started, cpu_started = time.perf_counter(), time.process_time()
module_name, _, attr = handler.rpartition(".")
module = importlib.import_module(module_name)
entry = getattr(module, attr)
elapsed_ms = (time.perf_counter() - started) * 1000
cpu_ms = (time.process_time() - cpu_started) * 1000
import chalicelib
print(json.dumps({"import_ms": round(elapsed_ms, 1), "cpu_ms": round(cpu_ms, 1), "callable": callable(entry),
                  "dev_modules": present, "module_file": module.__file__, "chalicelib": chalicelib.__file__}))
"""


@dataclass(frozen=True)
class Handler:
    """One function of the packaged template: where its code is and what Lambda calls."""

    logical_id: str
    code: Path  # the folder Lambda would unpack as /var/task
    handler: str  # module.attribute
    environment: dict[str, str]


def load_template(path: Path) -> dict[str, Any]:
    """The packaged template (chalice writes YAML with long-form intrinsics only)."""
    found: dict[str, Any] = yaml.safe_load(path.read_text())
    return found


def cfn_lint(template: Path) -> list[str]:
    """cfn-lint's findings on the packaged template (none when it passes)."""
    proc = subprocess.run([str(Path(sys.executable).with_name("cfn-lint")), str(template)],
                          capture_output=True, text=True, check=False)
    return [] if proc.returncode == 0 else [f"cfn-lint: {proc.stdout.strip()} {proc.stderr.strip()}".strip()]


def with_s3_uris(template: dict[str, Any]) -> dict[str, Any]:
    """The template as `aws cloudformation package` leaves it: every local code path an S3 URI."""
    copy: dict[str, Any] = json.loads(json.dumps(template))
    for logical, resource in copy["Resources"].items():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                props[key] = f"s3://attune-artifacts/{logical}.zip"
    return copy


class _Policies:
    """The managed-policy lookup the transform asks IAM for, answered from a table (offline)."""

    def load(self) -> dict[str, str]:
        return dict(MANAGED_POLICIES)


def sam_translate(template: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """The CloudFormation the SAM transform makes of the template, or why it refused."""
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.translator.transform import transform

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # the pseudo parameters' region; nothing is called
    try:
        translated: dict[str, Any] = transform(with_s3_uris(template), {}, _Policies())
    except InvalidDocumentException as exc:
        return None, [f"SAM transform: {cause.message}" for cause in exc.causes]
    return translated, []


def _placeholder(value: Any) -> str:
    """An environment value as a string: intrinsics become a recognisable dummy (nothing is resolved)."""
    return value if isinstance(value, str) else "unresolved-intrinsic"


def handlers(template: dict[str, Any], out: Path) -> list[Handler]:
    """Every AWS::Serverless::Function with its unpacked code folder (deployment.zip is extracted once)."""
    global_env = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    unpacked: dict[str, Path] = {}
    found: list[Handler] = []
    for logical, resource in sorted(template["Resources"].items()):
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        code = (out / props["CodeUri"]).resolve()
        if code.suffix == ".zip":
            if code not in unpacked:
                target = out.parent / "check" / code.stem
                with zipfile.ZipFile(code) as archive:
                    archive.extractall(target)
                unpacked[code] = target
            code = unpacked[code]
        env = {**global_env, **props.get("Environment", {}).get("Variables", {})}
        found.append(Handler(logical, code, props["Handler"], {k: _placeholder(v) for k, v in env.items()}))
    return found


def clean_venv(where: Path) -> Path:
    """A virtualenv with nothing installed (not even pip): the interpreter Lambda's runtime stands for."""
    python = where / "bin" / "python"
    if not python.exists():
        venv.EnvBuilder(with_pip=False, clear=True, symlinks=True).create(where)
    return python


def import_handler(python: Path, fn: Handler, layer: Path) -> dict[str, Any]:
    """Import one handler in a fresh isolated process; its report, or the error it died with."""
    env = {"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
           "AWS_LAMBDA_FUNCTION_NAME": fn.logical_id, "PYTHONDONTWRITEBYTECODE": "1", **fn.environment}
    started = time.perf_counter()
    proc = subprocess.run([str(python), "-I", "-c", IMPORT_PROBE, str(fn.code), str(layer), fn.handler,
                           ",".join(FORBIDDEN)], cwd=fn.code, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    wall_ms = round((time.perf_counter() - started) * 1000, 1)
    if proc.returncode != 0:
        return {"function": fn.logical_id, "handler": fn.handler, "ok": False, "wall_ms": wall_ms,
                "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    inside = [str(fn.code), str(layer)]
    problems = []
    if report["dev_modules"]:
        problems.append(f"development modules importable: {report['dev_modules']}")
    if not report["callable"]:
        problems.append(f"{fn.handler} is not callable")
    if not any(str(report["chalicelib"]).startswith(p) for p in inside):
        problems.append(f"chalicelib came from {report['chalicelib']}, outside the artifact and the layer")
    return {"function": fn.logical_id, "handler": fn.handler, "ok": not problems, "wall_ms": wall_ms,
            "import_ms": report["import_ms"], "cpu_ms": report["cpu_ms"],
            **({"error": "; ".join(problems)} if problems else {})}


def check_imports(template: dict[str, Any], out: Path) -> list[dict[str, Any]]:
    """Import every handler of the packaged template; one report per function."""
    python = clean_venv(out.parent / "check-venv")
    layer = out / "layer" / "python"
    return [import_handler(python, fn, layer) for fn in handlers(template, out)]


def main(argv: list[str] | None = None) -> int:
    """Run the three checks on build/sam (or --out); print a summary, and JSON with --json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "sam")
    parser.add_argument("--json", action="store_true", help="print the import reports as JSON")
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    template_path = out / "sam.yaml"
    if not template_path.is_file():
        print(f"no {template_path}: run `make package` first", file=sys.stderr)
        return 2
    template = load_template(template_path)
    failures = cfn_lint(template_path)
    translated, problems = sam_translate(template)
    failures += problems
    if translated is not None:
        kinds = [r["Type"] for r in translated["Resources"].values()]
        print(f"SAM transform: {len(kinds)} resources, {kinds.count('AWS::Lambda::Function')} Lambda functions")
    imports = check_imports(template, out)
    for report in imports:
        mark = "ok " if report["ok"] else "FAIL"
        timing = (f"{report['import_ms']:7.1f} ms ({report['cpu_ms']:.0f} ms CPU)" if "import_ms" in report
                  else "    -     ")
        print(f"{mark} {report['function']:28} {report['handler']:22} {timing}  {report.get('error', '')}")
        if not report["ok"]:
            failures.append(f"{report['function']}: {report['error']}")
    if args.json:
        print(json.dumps(imports, indent=2))
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
