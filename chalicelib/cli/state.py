"""What every `attune` command shares: where the API is, whether to print JSON, and the CLI's errors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from chalicelib.cli.session import DEFAULT_URL, Session

F = TypeVar("F", bound=Callable[..., Any])
WS_OFF = ("", "off", "none", "no")


@dataclass
class State:
    """The global options (`--url`, `--ws-url`, `--json`), as the group read them."""

    url: str = DEFAULT_URL
    ws_url: str | None = None
    json: bool = False

    def session(self) -> Session:
        """A session with the API as the logged-in user."""
        if self.ws_url is not None and self.ws_url.lower() in WS_OFF:
            session = Session(self.url)
            session.ws_url = None
            return session
        return Session(self.url, ws_url=self.ws_url)


def state() -> State:
    """The current command's State (made by the top-level group)."""
    return click.get_current_context().ensure_object(State)


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(State).json = True


def json_option(func: F) -> F:
    """`--json` on a command: print the API's JSON instead of a table (also accepted before the command)."""
    option = click.option("--json", "json_flag", is_flag=True, expose_value=False, callback=_set_json,
                          is_eager=False, help="Print the API's JSON answer instead of a table.")
    return option(func)
