"""The user CLI's connection to the API: real HTTP on the standard library, tokens kept between runs.

urllib rather than httpx because httpx is only a development dependency and
the CLI ships with the runtime one. Tokens live in the user's config
directory (`$ATTUNE_CONFIG_DIR`, else `$XDG_CONFIG_HOME/attune`, else
`~/.config/attune`), one entry per API URL, in a file only its owner can read
(0600): they are bearer credentials. An access token that has expired is
traded for a new pair through `/auth/refresh` once, transparently; refresh
tokens are single-use, so the file is re-read first in case another `attune`
process already traded it.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:18080"
CREDENTIALS = "credentials.json"
TIMEOUT_S = 60.0
MAX_RATE_LIMIT_RETRIES = 5
MAX_RETRY_AFTER_S = 10.0


class CliError(Exception):
    """A failure to show the user as one line (the API's own message when it sent one)."""

    def __init__(self, message: str, *, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body


def config_dir() -> Path:
    """Where the CLI keeps its state; `ATTUNE_CONFIG_DIR` wins so tests and scripts can isolate it."""
    given = os.environ.get("ATTUNE_CONFIG_DIR")
    if given:
        return Path(given)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "attune"


def _read_all(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {path}: {exc}; delete it and run `attune login` again") from exc
    return data if isinstance(data, dict) else {}


def load_tokens(url: str) -> dict[str, Any] | None:
    """The tokens saved for this API URL, if any."""
    entry = _read_all(config_dir() / CREDENTIALS).get(url)
    return entry if isinstance(entry, dict) else None


def save_tokens(url: str, entry: dict[str, Any]) -> Path:
    """Store the tokens for this API URL, readable by the user alone (written 0600 from the start)."""
    directory = config_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / CREDENTIALS
    data = _read_all(path)
    data[url] = entry
    tmp = path.with_name(f".{CREDENTIALS}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)  # atomic: a concurrent reader sees the old file or the new one
    return path


def ws_url_for(api_url: str) -> str | None:
    """The notifications WebSocket of a local cloud (its API port + 1, as `make run` serves it).

    A deployed stack's WebSocket API has its own address: give it with
    `--ws-url` / `ATTUNE_WS_URL`; without one, commands that wait poll.
    """
    parts = urllib.parse.urlsplit(api_url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1") or parts.port is None:
        return None
    return f"ws://{parts.hostname}:{parts.port + 1}"


@dataclass
class Response:
    """What an API call answered."""

    status: int
    body: Any
    headers: dict[str, str]


class Session:
    """Calls to one API as the logged-in user, refreshing the access token once on a 401."""

    def __init__(self, url: str, *, ws_url: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.ws_url = ws_url if ws_url is not None else ws_url_for(self.url)

    # -- raw HTTP -----------------------------------------------------------------
    def send(self, method: str, path: str, body: Any = None, *, token: str | None = None,
             query: dict[str, Any] | None = None) -> Response:
        """One request (retried on 429 after the Retry-After the API asks for); never raises on an HTTP status."""
        target = self.url + path
        given = {k: _query_value(v) for k, v in (query or {}).items() if v is not None}
        if given:
            target += "?" + urllib.parse.urlencode(given)
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json", "User-Agent": "attune-cli"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        for attempt in range(MAX_RATE_LIMIT_RETRIES + 1):
            request = urllib.request.Request(target, data=data, method=method, headers=headers)  # noqa: S310
            answer = self._once(request)
            if answer.status != 429 or attempt == MAX_RATE_LIMIT_RETRIES:
                return answer
            time.sleep(_retry_after(answer.headers))
        raise AssertionError("unreachable")

    def _once(self, request: urllib.request.Request) -> Response:
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp:  # noqa: S310 - the user's own URL
                return Response(resp.status, _decode(resp.read()), dict(resp.headers.items()))
        except urllib.error.HTTPError as exc:
            return Response(exc.code, _decode(exc.read()), dict(exc.headers.items()))
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CliError(f"cannot reach the Attune API at {self.url}: {reason} "
                           "(is it running? set --url or ATTUNE_URL)") from exc

    # -- authenticated calls --------------------------------------------------------
    def call(self, method: str, path: str, body: Any = None, *, query: dict[str, Any] | None = None,
             ok: tuple[int, ...] = (200, 201, 202)) -> Any:
        """An authenticated call; the body on success, else a CliError with the API's message."""
        tokens = self._tokens()
        answer = self.send(method, path, body, token=tokens["access_token"], query=query)
        if answer.status == 401:
            tokens = self._refresh(tokens)
            answer = self.send(method, path, body, token=tokens["access_token"], query=query)
        if answer.status not in ok:
            raise api_error(answer)
        return answer.body

    def access_token(self) -> str:
        """A current access token (refreshed when the saved one no longer works), e.g. for the WebSocket."""
        tokens = self._tokens()
        if self.send("GET", "/api/v1/packs", token=tokens["access_token"], query={"limit": 1}).status == 401:
            tokens = self._refresh(tokens)
        return str(tokens["access_token"])

    def login(self, username: str, password: str) -> Path:
        """Exchange a password for tokens and save them; the path they were saved to."""
        answer = self.send("POST", "/auth/login", {"username": username, "password": password})
        if answer.status != 200:
            raise api_error(answer)
        return save_tokens(self.url, {"username": username, **_pair(answer.body)})

    def _tokens(self) -> dict[str, Any]:
        tokens = load_tokens(self.url)
        if not tokens or not tokens.get("access_token"):
            raise CliError(f"not logged in to {self.url}: run `attune login` first")
        return tokens

    def _refresh(self, used: dict[str, Any]) -> dict[str, Any]:
        current = load_tokens(self.url) or {}
        if current.get("refresh_token") and current.get("refresh_token") != used.get("refresh_token"):
            return current  # another attune process refreshed meanwhile: its pair is the live one
        refresh = used.get("refresh_token")
        if not refresh:
            raise CliError("the session has expired: run `attune login` again")
        answer = self.send("POST", "/auth/refresh", {"refresh_token": refresh})
        if answer.status != 200:
            raise CliError(f"the session has expired ({error_message(answer)}): run `attune login` again",
                           status=answer.status, body=answer.body)
        entry = {**used, **_pair(answer.body)}
        save_tokens(self.url, entry)
        return entry


def _pair(body: Any) -> dict[str, Any]:
    return {"access_token": body["access_token"], "refresh_token": body.get("refresh_token"),
            "expires_in": body.get("expires_in"), "saved_at": int(time.time())}


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _retry_after(headers: dict[str, str]) -> float:
    raw = next((v for k, v in headers.items() if k.lower() == "retry-after"), "1")
    try:
        return min(max(float(raw), 0.1), MAX_RETRY_AFTER_S)
    except ValueError:
        return 1.0


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def error_message(answer: Response) -> str:
    """The API's error message (the error contract), else the status and whatever it sent."""
    body = answer.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        return str(err.get("message") or err.get("code") or answer.status)
    if isinstance(body, dict) and "Message" in body:  # a gateway's own error
        return str(body["Message"])
    return f"HTTP {answer.status}" + (f": {str(body)[:300]}" if body else "")


def api_error(answer: Response) -> CliError:
    """A failed call as the CliError the user sees: `<status>: <API message>`."""
    return CliError(f"{answer.status}: {error_message(answer)}", status=answer.status, body=answer.body)
