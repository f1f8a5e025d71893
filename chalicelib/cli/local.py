"""`attune dev`, `migrate` and `provision`: running the local cloud and its steps.

Options only set the environment variables that `chalicelib.config.settings()`
reads, so a role process, a test and the command line all configure Attune
the same way.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from chalicelib.config import settings


def _set_env(**values: object) -> None:
    names = {"api_port": "ATTUNE_API_PORT", "ws_port": "ATTUNE_WS_PORT", "data_dir": "ATTUNE_DATA_DIR",
             "moto_port": "ATTUNE_MOTO_PORT"}
    for option, value in values.items():
        if value is not None:
            os.environ[names[option]] = str(value)
    settings.cache_clear()


def _quiet_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("botocore", "pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@click.command("dev")
@click.option("--api-port", type=int, help="HTTP API port (ATTUNE_API_PORT, 18080)")
@click.option("--ws-port", type=int, help="WebSocket port (ATTUNE_WS_PORT, 18081)")
@click.option("--data-dir", help="state directory (ATTUNE_DATA_DIR, .attune)")
@click.option("--moto-port", type=int, help="moto port (ATTUNE_MOTO_PORT, 18082)")
@click.pass_context
def dev(ctx: click.Context, api_port: int | None, ws_port: int | None, data_dir: str | None,
        moto_port: int | None) -> None:
    """Run the whole local cloud in the foreground."""
    _set_env(api_port=api_port, ws_port=ws_port, data_dir=data_dir, moto_port=moto_port)
    from chalicelib.local.role_template import REPO_ROOT, RoleTemplate, compile_sources, role_env

    compile_sources()  # before any process imports them: none compiles them on its own
    # First, so that the roles' imports run while this process imports the cloud and starts the backends.
    template = RoleTemplate(role_env(os.environ), REPO_ROOT)
    from chalicelib.local.cloud import run_dev

    ctx.exit(run_dev(template=template))


@click.command("migrate")
@click.option("--data-dir", help="state directory of the embedded server")
def migrate(data_dir: str | None) -> None:
    """Apply database migrations to ATTUNE_DATABASE_URL (the embedded server when unset)."""
    from chalicelib.db.migrate import apply_migrations
    from chalicelib.local import embedded_pg

    _set_env(data_dir=data_dir)
    _quiet_logging()
    url = settings().database_url
    pg = None
    if not url:
        pg = embedded_pg.start(Path(settings().data_dir))
        url = pg.url
    try:
        applied = apply_migrations(url)
    finally:
        if pg is not None:
            pg.stop()
    click.echo("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))


@click.command("provision")
@click.option("--template", type=click.Path(path_type=Path), help="template path (infra/template.yaml)")
@click.pass_context
def provision(ctx: click.Context, template: Path | None) -> None:
    """Create infra/template.yaml's resources at AWS_ENDPOINT_URL (moto, LocalStack)."""
    from chalicelib.local.provision import dump
    from chalicelib.local.provision import provision as run_provision

    settings.cache_clear()
    _quiet_logging()
    if not settings().aws_endpoint_url:
        print("AWS_ENDPOINT_URL is not set: `attune provision` creates resources in moto or "
              "LocalStack only; deploy to AWS as infra/README.md describes", file=sys.stderr)
        ctx.exit(2)
    click.echo(dump(run_provision(template)))
