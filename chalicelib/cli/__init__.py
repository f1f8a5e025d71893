"""The `attune` command: the user commands that talk to the API, and `dev`/`migrate`/`provision` that run it.

User commands (`login`, `pack`, `action`, `run`, `execution`, `trigger`,
`rule`, `inquiry`, `key`) are HTTP clients of the API at `--url` /
`ATTUNE_URL`; every one takes `--json` for scripts, shows tables for people,
and on an error prints the API's message and exits non-zero. docs/cli.md
describes each with an example.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from chalicelib.cli import output
from chalicelib.cli.automation import key, rule, trigger
from chalicelib.cli.local import dev, migrate, provision
from chalicelib.cli.packdir import PackDirError
from chalicelib.cli.packs import action, pack
from chalicelib.cli.runs import execution, inquiry, run
from chalicelib.cli.session import DEFAULT_URL, CliError
from chalicelib.cli.state import State, json_option, state
from chalicelib.cli.values import BadArgument


class AttuneGroup(click.Group):
    """The top-level group: turns the CLI's own errors into one `Error: ...` line and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a failed API call, a bad argument or pack directory becomes a ClickException."""
        try:
            return super().invoke(ctx)
        except (CliError, BadArgument, PackDirError) as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=AttuneGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar="ATTUNE_URL", default=DEFAULT_URL, show_default=True,
              help="The Attune API (env ATTUNE_URL).")
@click.option("--ws-url", envvar="ATTUNE_WS_URL", default=None,
              help="The notifications WebSocket (env ATTUNE_WS_URL; default: a local cloud's API port + 1; "
                   "'off' to poll).")
@json_option
@click.pass_context
def attune(ctx: click.Context, url: str, ws_url: str | None) -> None:
    """Attune: event-driven automation on serverless AWS, from the terminal."""
    found = ctx.ensure_object(State)
    found.url, found.ws_url = url.rstrip("/"), ws_url


@attune.command("login")
@click.option("-u", "--username", help="Asked for when not given.")
@click.option("-p", "--password", envvar="ATTUNE_PASSWORD", help="Asked for (hidden) when not given "
              "(env ATTUNE_PASSWORD).")
@json_option
def login(username: str | None, password: str | None) -> None:
    """Log in and keep the tokens (mode 0600) in the config dir; they are refreshed automatically."""
    current = state()
    name = username or click.prompt("Username")
    secret = password or click.prompt("Password", hide_input=True)
    saved = current.session().login(name, secret)
    if current.json:
        output.print_json({"url": current.url, "username": name, "credentials": str(saved)})
    else:
        output.text(f"logged in to {current.url} as {name} (tokens in {saved})")


for command in (pack, action, run, execution, trigger, rule, inquiry, key, dev, migrate, provision):
    attune.add_command(command)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `attune` console script (and `python -m chalicelib.cli`); returns the exit status."""
    try:
        result = attune.main(args=argv, prog_name="attune", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        sys.stderr.write("Aborted.\n")
        return 1
    except KeyboardInterrupt:
        return 130
    return result if isinstance(result, int) else 0


__all__ = ["attune", "main"]
