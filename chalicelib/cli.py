"""The `attune` command: `attune dev` runs the local cloud; `migrate` and `provision` its steps.

Options only set the environment variables that `chalicelib.config.settings()`
reads, so a role process, a test and the command line all configure Attune
the same way.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from chalicelib.config import settings


def _set_env(args: argparse.Namespace) -> None:
    for option, var in (("api_port", "ATTUNE_API_PORT"), ("ws_port", "ATTUNE_WS_PORT"),
                        ("data_dir", "ATTUNE_DATA_DIR"), ("moto_port", "ATTUNE_MOTO_PORT")):
        value = getattr(args, option, None)
        if value is not None:
            os.environ[var] = str(value)
    settings.cache_clear()


def _dev(_args: argparse.Namespace) -> int:
    from chalicelib.local.cloud import run_dev

    return run_dev()


def _migrate(_args: argparse.Namespace) -> int:
    from chalicelib.db.migrate import apply_migrations
    from chalicelib.local import embedded_pg

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
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


def _provision(args: argparse.Namespace) -> int:
    from chalicelib.local.provision import dump, provision

    if not settings().aws_endpoint_url:
        print("AWS_ENDPOINT_URL is not set: `attune provision` creates resources in moto or "
              "LocalStack only; deploy to AWS as infra/README.md describes", file=sys.stderr)
        return 2
    print(dump(provision(args.template)))
    return 0


def parser() -> argparse.ArgumentParser:
    """The command line (also what `attune --help` prints)."""
    top = argparse.ArgumentParser(prog="attune", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help="run the whole local cloud in the foreground")
    dev.add_argument("--api-port", type=int, help="HTTP API port (ATTUNE_API_PORT, 18080)")
    dev.add_argument("--ws-port", type=int, help="WebSocket port (ATTUNE_WS_PORT, 18081)")
    dev.add_argument("--data-dir", help="state directory (ATTUNE_DATA_DIR, .attune)")
    dev.add_argument("--moto-port", type=int, help="moto port (ATTUNE_MOTO_PORT, 18082)")
    dev.set_defaults(func=_dev)
    migrate = sub.add_parser("migrate", help="apply database migrations to ATTUNE_DATABASE_URL "
                                             "(the embedded server when unset)")
    migrate.add_argument("--data-dir", help="state directory of the embedded server")
    migrate.set_defaults(func=_migrate)
    prov = sub.add_parser("provision", help="create infra/template.yaml's resources at "
                                            "AWS_ENDPOINT_URL (moto, LocalStack)")
    prov.add_argument("--template", type=Path, help="template path (infra/template.yaml)")
    prov.set_defaults(func=_provision)
    return top


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `attune` console script."""
    args = parser().parse_args(argv)
    _set_env(args)
    if args.command != "dev":
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        for noisy in ("botocore", "pgserver"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
