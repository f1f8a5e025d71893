"""The step after every `aws cloudformation deploy`: migrate the database, then register the system packs.

Run from a checkout of the release being deployed (the migrations and
`packs/` are read from it), on a machine that reaches the database, with
the deploying AWS credentials:

    ATTUNE_DATABASE_URL=postgresql://... ATTUNE_STACK_NAME=attune-prod \
        .venv/bin/python -m infra.post_deploy

Why a documented step and not a CloudFormation custom resource: the
database is not part of the stack (its URL is a parameter), a custom
resource Lambda would need a VPC path to it and the migration rights the
functions must not hold, and a failed migration inside a stack update rolls
back the stack but not the DDL. Both halves are idempotent and safe to run
again: migrations apply only what is pending (under an advisory lock),
unchanged system packs are left alone. Migrations are additive, so running
this just before or just after the code update keeps old and new functions
working; run it before the first deploy's API is used.
"""

from __future__ import annotations

import argparse
import sys

from chalicelib.config import settings
from chalicelib.db.migrate import apply_migrations
from chalicelib.packs.bootstrap import load_system_packs


def main(argv: list[str] | None = None) -> int:
    """Migrate ATTUNE_DATABASE_URL, then load the system packs into it and the stack's pack bucket."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-packs", action="store_true", help="only migrate")
    args = parser.parse_args(argv)
    url = settings().database_url
    if not url:
        print("ATTUNE_DATABASE_URL is not set: it names the deployed stack's database", file=sys.stderr)
        return 2
    applied = apply_migrations(url)
    print("migrations applied: " + (", ".join(applied) if applied else "none (up to date)"))
    if not args.skip_packs:
        for pack in load_system_packs():
            print(f"system pack {pack.ref} {pack.version}: {pack.outcome}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
