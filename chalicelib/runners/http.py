"""The `http` runner: one templated HTTP request made by the worker itself, with httpx, no subprocess.

An action's `http_config` (method, url, headers, body, timeout, verify_ssl)
is rendered with Jinja2's sandbox over `params` (the non-secret parameters),
`secret` (the parameters the action declares `secret: true`) and `datastore`
(the tenant's datastore, read lazily). Secrets are kept out of `params` so
that `{{ params | tojson }}` as a body does not ship the API token too.

The request goes to a tenant-chosen URL from inside the platform, so every
hop is checked against the SSRF policy (`chalicelib.netguard`) *before*
connecting, and the connection goes to the checked address itself: the URL's
host is replaced by that IP while the original name travels in the `Host`
header and as the TLS SNI (httpcore's `sni_hostname`), so certificates are
still verified against the name and a second DNS answer (rebinding) never
enters into it. Redirects are followed here, at most `MAX_REDIRECTS`, each
target checked the same way; credentials are not forwarded across origins.

The result's `output` is `{"status_code", "reason", "headers", "body", "url",
"truncated"}`: `body` is parsed when the response says it is JSON, else text,
cut at `max_output_bytes` with the truncation marker; `exit_code` is None.
A non-2xx answer fails the execution with the response kept; connection
errors, refused destinations and timeouts fail it with a message.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import httpx

from chalicelib.config import settings
from chalicelib.core.criteria import render
from chalicelib.core.errors import AttuneError, ValidationFailed
from chalicelib.models.packs import HTTP_METHODS
from chalicelib.netguard import DestinationRefused, resolve_and_check
from chalicelib.runners.base import DEFAULT_GRACE_S, RunRequest, RunResult
from chalicelib.runners.output import OutputBuffer, parse_json_output

MAX_REDIRECTS = 5
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
POLL_S = 0.05  # how often a running request looks at the cancel event
DEFAULT_PORTS = {"http": 80, "https": 443}

# (host, port) -> the addresses that may be contacted; raises DestinationRefused.
Checker = Callable[[str, int], list[str]]
DatastoreOpener = Callable[[int], AbstractContextManager[Mapping[str, Any]]]


class HttpFailure(Exception):
    """The request could not be made or completed; the message is the execution's error."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.timed_out = timed_out


@dataclass(frozen=True)
class HttpCall:
    """One request, fully rendered: what goes on the wire for the first hop."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    timeout_s: float = 30.0
    verify: bool = True


@dataclass
class Exchange:
    """What came back for one hop: the response with its body (bounded) and the URL by name."""

    status_code: int
    reason: str
    headers: dict[str, str]
    body: OutputBuffer
    url: str


# -- templating: pure ----------------------------------------------------------
def split_parameters(
    parameters: Mapping[str, Any], secret_names: Iterable[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(params, secret): the templates' two namespaces, secrets only in the second."""
    names = set(secret_names)
    params = {k: v for k, v in parameters.items() if k not in names}
    secret = {k: v for k, v in parameters.items() if k in names}
    return params, secret


def secret_names_of(request: RunRequest) -> list[str]:
    """The action's secret parameter names.

    The worker passes the names in `context["secret_names"]` when it knows
    them; otherwise they are recovered from the secret values it put on the
    spec (`spec.secrets`, values of at least 4 characters).
    """
    given = request.context.get("secret_names")
    if given is not None:
        return [str(name) for name in given]
    values = set(request.spec.secrets) if request.spec is not None else set()
    return [name for name, value in request.parameters.items() if isinstance(value, str) and value in values]


def mentions_datastore(config: Mapping[str, Any]) -> bool:
    """Whether any template of the config reads the datastore (then, and only then, a transaction is opened)."""
    return "datastore" in json.dumps(config, default=str)


def _text(value: Any, where: str) -> str:
    if value is None:
        raise ValidationFailed(f"http_config.{where} rendered to nothing")
    if isinstance(value, str):
        return str(value)
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def _headers(value: Any) -> dict[str, str]:
    """Headers from a mapping, or from a template that rendered to a JSON object."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ValidationFailed(f"http_config.headers: not a JSON object of name -> value ({exc})") from exc
    if not isinstance(value, dict):
        raise ValidationFailed(f"http_config.headers: expected name -> value, got {type(value).__name__}")
    headers: dict[str, str] = {}
    for name, item in value.items():
        if item is None:
            continue
        text = item if isinstance(item, str) else json.dumps(item)
        if any(c in str(name) + text for c in "\r\n\x00") or not str(name).strip():
            raise ValidationFailed(f"http_config.headers: header {str(name)!r} has an invalid name or value")
        headers[str(name)] = str(text)
    return headers


def _body(value: Any, headers: dict[str, str]) -> bytes | None:
    """Text is sent as it is; any other value as JSON (with a JSON Content-Type unless one was given)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return str(value).encode("utf-8")
    if not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = "application/json"
    return json.dumps(value, allow_nan=False).encode("utf-8")


def build_call(config: Mapping[str, Any], context: Mapping[str, Any], *, timeout_s: float) -> HttpCall:
    """Render `http_config` over `context` into the request to make; ValidationFailed/TemplateFailure says why not.

    The action's own `timeout` (`timeout_s`) caps `http_config.timeout`.
    """
    rendered = render({k: v for k, v in config.items() if k in ("url", "method", "headers", "body")},
                      context, "http_config")
    url = _text(rendered.get("url"), "url").strip()
    parsed = httpx.URL(url) if url else None
    if parsed is None or parsed.scheme not in DEFAULT_PORTS or not parsed.host:
        raise ValidationFailed(f"http_config.url must be an http:// or https:// URL with a host, got {url!r}")
    method = _text(rendered.get("method") or "GET", "method").strip().upper()
    if method not in HTTP_METHODS:
        raise ValidationFailed(f"http_config.method must be one of {', '.join(HTTP_METHODS)}, got {method!r}")
    headers = _headers(rendered.get("headers"))
    content = _body(rendered.get("body"), headers)
    limit = config.get("timeout")
    timeout = min(float(limit), timeout_s) if isinstance(limit, int | float) and limit > 0 else timeout_s
    verify = config.get("verify_ssl", config.get("verify_tls", True))
    return HttpCall(method, url, headers, content, timeout, bool(verify))


# -- redirects: pure -------------------------------------------------------------
def _origin(url: httpx.URL) -> tuple[str, str, int]:
    return url.scheme, url.host.lower(), url.port or DEFAULT_PORTS.get(url.scheme, 0)


def next_hop(call: HttpCall, status_code: int, location: str | None, secrets: Iterable[str] = ()) -> HttpCall | None:
    """The request a redirect asks for, or None when the response is not one to follow.

    As browsers and httpx do: 303 (and 301/302 after a POST) become a GET
    without body; across origins the credentials (Authorization, Cookie, and
    any header carrying a secret parameter's value) are not sent on.
    """
    if status_code not in REDIRECT_CODES or not location:
        return None
    current = httpx.URL(call.url)
    target = current.join(location.strip())
    if target.scheme not in DEFAULT_PORTS or not target.host:
        raise HttpFailure(f"redirect from {call.url} to {str(target)!r} refused: not an http(s) URL")
    method, content, headers = call.method, call.content, dict(call.headers)
    if (status_code == 303 and method != "HEAD") or (status_code in (301, 302) and method == "POST"):
        method, content = "GET", None
        headers = {k: v for k, v in headers.items() if k.lower() not in ("content-type", "content-length")}
    if _origin(target) != _origin(current):
        values = [s for s in secrets if s]
        headers = {k: v for k, v in headers.items()
                   if k.lower() not in CREDENTIAL_HEADERS and not any(s in v for s in values)}
    return replace(call, method=method, url=str(target), headers=headers, content=content)


# -- the result: pure -------------------------------------------------------------
def response_body(buffer: OutputBuffer, content_type: str) -> Any:
    """JSON when the response says it is JSON and all of it arrived; else the (possibly cut) text."""
    text = buffer.text()
    if "json" in content_type.lower() and not buffer.truncated:
        parsed = parse_json_output(text)
        if parsed is not None or text.strip() == "null":
            return parsed
    return text


def exchange_output(exchange: Exchange) -> dict[str, Any]:
    """The execution's `result.output` for a response (see the module docstring)."""
    return {
        "status_code": exchange.status_code,
        "reason": exchange.reason,
        "headers": exchange.headers,
        "body": response_body(exchange.body, exchange.headers.get("content-type", "")),
        "url": exchange.url,
        "truncated": exchange.body.truncated,
    }


def _flat_headers(headers: httpx.Headers) -> dict[str, str]:
    flat: dict[str, str] = {}
    for name, value in headers.multi_items():
        key = name.lower()
        flat[key] = f"{flat[key]}, {value}" if key in flat else value
    return flat


@lru_cache(maxsize=1)
def _resolvers() -> ThreadPoolExecutor:
    """getaddrinfo blocks: it runs here so a cancel or timeout need not wait for a slow resolver."""
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="http-runner-resolve")


def _policy_check(host: str, port: int) -> list[str]:
    cfg = settings()
    return resolve_and_check(host, port, allow_private=cfg.http_allow_private, allow_hosts=cfg.http_allow_hosts)


class HttpRunner:
    """Runs `runner_type: http` actions in the worker's own thread (an asyncio loop per request)."""

    def __init__(
        self,
        *,
        grace_s: float = DEFAULT_GRACE_S,
        check: Checker | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        datastore: DatastoreOpener | None = None,
    ) -> None:
        # grace_s is the registry's common signature: there is no process to give a grace period to.
        self.grace_s = grace_s
        self.check = check or _policy_check
        self.transport = transport
        self.datastore = datastore

    def run(
        self,
        request: RunRequest,
        *,
        cancel: threading.Event | None = None,
        on_started: Callable[[int], None] | None = None,
    ) -> RunResult:
        """Render, check, send, follow redirects, capture; never raises for what the request does."""
        started = time.monotonic()
        if request.max_output_bytes <= 0 or request.timeout_s <= 0:
            raise ValidationFailed("timeout and max_output_bytes must be positive")
        config = request.spec.http_config if request.spec is not None else None
        if not config:
            raise ValidationFailed("an http action needs an http_config")
        try:
            call = self._render(request, config)
        except AttuneError as exc:
            return _result("failed", error=exc.message, started=started)
        secrets = [str(v) for k, v in request.parameters.items() if k in set(secret_names_of(request))]
        trail: list[str] = []
        try:
            exchange = asyncio.run(self._supervise(call, request.max_output_bytes, cancel, secrets, trail))
        except HttpFailure as exc:
            return _result("failed", error=exc.message, timed_out=exc.timed_out, trail=trail, started=started)
        if exchange is None:
            return _result("canceled", error="canceled", trail=trail, started=started)
        output = exchange_output(exchange)
        error = None
        if not 200 <= exchange.status_code < 300:
            error = f"HTTP {exchange.status_code} {exchange.reason}".rstrip() + f" from {call.method} {exchange.url}"
        return _result("failed" if error else "succeeded", output=output, error=error, trail=trail, started=started)

    def _render(self, request: RunRequest, config: Mapping[str, Any]) -> HttpCall:
        params, secret = split_parameters(request.parameters, secret_names_of(request))
        opener: AbstractContextManager[Mapping[str, Any]] = nullcontext({})
        if mentions_datastore(config):
            tenant_id = request.context.get("tenant_id")
            if tenant_id is None:
                raise ValidationFailed("http_config reads the datastore, but the request names no tenant")
            if self.datastore is None:
                from chalicelib.runners.http_context import datastore_view  # the database, only when needed

                opener = datastore_view(int(tenant_id))
            else:
                opener = self.datastore(int(tenant_id))
        with opener as view:
            return build_call(config, {"params": params, "secret": secret, "datastore": view},
                              timeout_s=request.timeout_s)

    async def _supervise(
        self, call: HttpCall, limit: int, cancel: threading.Event | None, secrets: list[str], trail: list[str]
    ) -> Exchange | None:
        """The exchange, or None when canceled; the action's deadline covers resolving, redirects and the body."""
        deadline = time.monotonic() + call.timeout_s
        task = asyncio.ensure_future(self._follow(call, limit, secrets, trail))
        try:
            while not task.done():
                if cancel is not None and cancel.is_set():
                    task.cancel()
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    task.cancel()
                    raise HttpFailure(f"timed out after {call.timeout_s:g}s waiting for {call.url}", timed_out=True)
                await asyncio.wait({task}, timeout=min(POLL_S, remaining))
            return task.result()
        finally:
            if not task.done():
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _follow(self, call: HttpCall, limit: int, secrets: list[str], trail: list[str]) -> Exchange:
        timeout = httpx.Timeout(call.timeout_s)
        async with httpx.AsyncClient(transport=self.transport, verify=call.verify, trust_env=False,
                                     follow_redirects=False, timeout=timeout) as client:
            hop: HttpCall | None = call
            for redirects in range(MAX_REDIRECTS + 1):
                assert hop is not None
                exchange, location = await self._one(client, hop, limit, trail, first=redirects == 0)
                following = next_hop(hop, exchange.status_code, location, secrets)
                if following is None:
                    return exchange
                hop = following
            raise HttpFailure(f"too many redirects (more than {MAX_REDIRECTS}) starting at {call.url}")

    async def _one(
        self, client: httpx.AsyncClient, call: HttpCall, limit: int, trail: list[str], *, first: bool
    ) -> tuple[Exchange, str | None]:
        """One hop: check the destination, connect to a checked address, read a bounded body."""
        url = httpx.URL(call.url)
        host, port = url.host, url.port or DEFAULT_PORTS[url.scheme]
        loop = asyncio.get_running_loop()
        try:
            addresses = await loop.run_in_executor(_resolvers(), self.check, host, port)
        except DestinationRefused as exc:
            raise HttpFailure(str(exc) if first else f"redirect to {call.url} refused: {exc}") from exc
        last: Exception | None = None
        for address in addresses:
            pinned = url.copy_with(host=address)
            own = {k: v for k, v in call.headers.items() if k.lower() != "host"}  # the Host is the URL's
            headers = {"Host": url.netloc.decode("ascii"), **own}
            is_name = not _is_ip(host)
            extensions = {"sni_hostname": url.raw_host.decode("ascii")} if is_name and url.scheme == "https" else {}
            outgoing = client.build_request(call.method, pinned, headers=headers, content=call.content,
                                            extensions=extensions)
            try:
                response = await client.send(outgoing, stream=True)
            except httpx.ConnectError as exc:
                last = exc
                continue
            except httpx.TimeoutException as exc:
                raise HttpFailure(f"timed out after {call.timeout_s:g}s waiting for {call.url}",
                                  timed_out=True) from exc
            except httpx.HTTPError as exc:
                raise HttpFailure(f"HTTP request {call.method} {call.url} failed: {_describe(exc)}") from exc
            try:
                trail.append(f"{call.method} {call.url} -> {response.status_code}")
                location = response.headers.get("location") if response.status_code in REDIRECT_CODES else None
                body = OutputBuffer(limit)
                if location is None:
                    async for chunk in response.aiter_bytes():
                        body.feed(chunk)
                        if body.truncated:
                            break
            except httpx.TimeoutException as exc:
                raise HttpFailure(f"timed out after {call.timeout_s:g}s reading the response of {call.url}",
                                  timed_out=True) from exc
            except httpx.HTTPError as exc:
                raise HttpFailure(f"reading the response of {call.url} failed: {_describe(exc)}") from exc
            finally:
                await response.aclose()
            exchange = Exchange(response.status_code, response.reason_phrase, _flat_headers(response.headers),
                                body, call.url)
            return exchange, location
        where = f"{host}:{port}" + (f" ({', '.join(addresses)})" if addresses != [host] else "")
        raise HttpFailure(f"could not connect to {where}: {_describe(last) if last else 'no address'}")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _result(
    status: str,
    *,
    output: Any = None,
    error: str | None = None,
    timed_out: bool = False,
    trail: list[str] | None = None,
    started: float,
) -> RunResult:
    """A RunResult for the worker; stdout lists the hops taken, one `METHOD url -> status` a line."""
    return RunResult(
        status=status,
        exit_code=None,
        stdout="\n".join(trail or []),
        stderr="",
        output=output,
        error=error,
        timed_out=timed_out,
        pid=None,
        duration_s=round(time.monotonic() - started, 3),
    )
