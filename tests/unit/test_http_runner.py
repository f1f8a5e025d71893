"""The http runner without a network: templating, the result's shape, redirect and SSRF checks.

Name resolution is a fake table judged by the real SSRF policy
(`core.netpolicy.allowed_addresses`), and the wire is httpx's MockTransport,
so what the runner would connect to (the checked IP, with the name in `Host`
and as SNI) is visible in each request the transport gets.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from chalicelib.core.criteria import TemplateFailure
from chalicelib.core.errors import ValidationFailed
from chalicelib.core.netpolicy import allowed_addresses
from chalicelib.core.runners import ActionSpec
from chalicelib.runners import TRUNCATION_MARKER, runner_for
from chalicelib.runners.base import RunRequest
from chalicelib.runners.http import (
    MAX_REDIRECTS,
    HttpCall,
    HttpFailure,
    HttpRunner,
    build_call,
    next_hop,
    secret_names_of,
    split_parameters,
)

PUBLIC = "93.184.216.34"
OTHER_PUBLIC = "93.184.216.35"
DNS = {
    "api.example.com": [PUBLIC],
    "other.example.com": [OTHER_PUBLIC],
    "evil.example.com": ["127.0.0.1"],
    "metadata.example.com": ["169.254.169.254"],
    "mixed.example.com": [PUBLIC, "10.0.0.7"],
}

Handler = Callable[[httpx.Request], Any]


def fake_check(host: str, port: int) -> list[str]:
    """Resolution from the table above, judged by the real policy with no allowance."""
    return allowed_addresses(host, port, DNS.get(host, [host]))


def spec(http_config: dict[str, Any], secrets: tuple[str, ...] = ()) -> ActionSpec:
    return ActionSpec("p.call", "http", http_config=http_config, secrets=secrets)


def request(http_config: dict[str, Any], parameters: dict[str, Any] | None = None, *,
            secrets: tuple[str, ...] = (), timeout_s: float = 30, max_output_bytes: int = 1024 * 1024,
            context: dict[str, Any] | None = None) -> RunRequest:
    return RunRequest(execution_id=7, runner_type="http", parameters=parameters or {}, timeout_s=timeout_s,
                      max_output_bytes=max_output_bytes, spec=spec(http_config, secrets),
                      context=context if context is not None else {"tenant_id": 3, "execution_id": 7})


class Wire:
    """A MockTransport that records every request it is sent."""

    def __init__(self, handler: Handler) -> None:
        self.seen: list[httpx.Request] = []

        async def record(req: httpx.Request) -> httpx.Response:
            self.seen.append(req)
            await req.aread()
            answer = handler(req)
            if asyncio.iscoroutine(answer):
                answer = await answer
            assert isinstance(answer, httpx.Response)
            return answer

        self.transport = httpx.MockTransport(record)

    def runner(self, **kwargs: Any) -> HttpRunner:
        return HttpRunner(check=fake_check, transport=self.transport, **kwargs)


def ok_json(req: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"echo": req.content.decode() or None, "method": req.method},
                          headers={"X-Trace": "abc"})


# -- templating --------------------------------------------------------------------
def test_every_field_is_templated_over_params_secret_and_datastore() -> None:
    # GIVEN a config that uses all three namespaces
    config = {
        "url": "https://{{ datastore.api_host }}/users/{{ params.user_id }}",
        "method": "{{ params.verb }}",
        "headers": {"Authorization": "Bearer {{ secret.api_token }}", "X-Count": "{{ params.user_id }}"},
        "body": {"name": "{{ params.name }}", "count": "{{ params.user_id }}"},
        "timeout": 5,
        "verify_ssl": False,
    }
    params, secret = split_parameters({"user_id": 42, "verb": "put", "name": "ada", "api_token": "t0ken"},
                                      ["api_token"])
    # WHEN it is rendered
    call = build_call(config, {"params": params, "secret": secret, "datastore": {"api_host": "api.example.com"}},
                      timeout_s=30)
    # THEN every part has its value, native types kept in a JSON body
    assert call.url == "https://api.example.com/users/42"
    assert call.method == "PUT"
    assert call.headers["Authorization"] == "Bearer t0ken"
    assert call.headers["X-Count"] == "42"
    assert call.headers["Content-Type"] == "application/json"
    assert call.content is not None and json.loads(call.content) == {"name": "ada", "count": 42}
    assert call.timeout_s == 5 and call.verify is False


def test_secrets_are_not_in_params_so_params_tojson_does_not_leak_them() -> None:
    params, secret = split_parameters({"user": "ada", "api_token": "t0ken"}, ["api_token"])
    call = build_call({"url": "http://api.example.com/", "method": "POST", "body": "{{ params | tojson }}",
                       "headers": {"Content-Type": "application/json"}},
                      {"params": params, "secret": secret, "datastore": {}}, timeout_s=30)
    assert call.content is not None and json.loads(call.content) == {"user": "ada"}
    assert call.headers == {"Content-Type": "application/json"}  # a text body keeps the headers as given


def test_headers_may_be_one_template_rendering_a_json_object() -> None:
    # the shape of core.http: headers: "{{ params.headers | tojson }}"
    call = build_call({"url": "http://api.example.com/", "headers": "{{ params.headers | tojson }}"},
                      {"params": {"headers": {"X-A": "1", "X-B": 2}}, "secret": {}, "datastore": {}}, timeout_s=30)
    assert call.headers == {"X-A": "1", "X-B": "2"}
    assert call.method == "GET" and call.content is None


def test_the_action_timeout_caps_the_http_timeout() -> None:
    call = build_call({"url": "http://api.example.com/", "timeout": 60}, {"params": {}}, timeout_s=2.5)
    assert call.timeout_s == 2.5
    assert build_call({"url": "http://api.example.com/"}, {"params": {}}, timeout_s=9).timeout_s == 9


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"url": "{{ params.url }}"}, "url"),
        ({"url": "ftp://api.example.com/x"}, "http:// or https://"),
        ({"url": "http:///nohost"}, "with a host"),
        ({"url": "http://api.example.com/", "method": "{{ params.m }}"}, "method must be one of"),
        ({"url": "http://api.example.com/", "headers": {"X-A": "a\r\nX-Injected: 1"}}, "invalid name or value"),
        ({"url": "http://api.example.com/", "headers": "{{ params.m }}"}, "not a JSON object"),
    ],
)
def test_a_config_that_renders_to_a_bad_request_is_refused(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationFailed, match=message):
        build_call(config, {"params": {"m": "FETCH"}, "secret": {}, "datastore": {}}, timeout_s=30)


def test_a_broken_template_is_a_template_failure_naming_the_field() -> None:
    with pytest.raises(TemplateFailure, match=r"http_config\.url"):
        build_call({"url": "http://x/{{ params.a | nosuchfilter }}"}, {"params": {"a": 1}}, timeout_s=30)


def test_secret_names_come_from_the_context_or_else_from_the_secret_values() -> None:
    params = {"api_token": "t0ken-value", "user": "ada"}
    named = request({"url": "http://x/"}, params, context={"secret_names": ["user"]})
    assert secret_names_of(named) == ["user"]
    recovered = request({"url": "http://x/"}, params, secrets=("t0ken-value",))
    assert secret_names_of(recovered) == ["api_token"]


# -- redirects ------------------------------------------------------------------------
def test_303_becomes_a_get_without_body_and_307_keeps_method_and_body() -> None:
    call = HttpCall("POST", "http://api.example.com/a/b", {"Content-Type": "application/json"}, b"{}")
    see_other = next_hop(call, 303, "../c")
    assert see_other is not None
    assert (see_other.method, see_other.url, see_other.content) == ("GET", "http://api.example.com/c", None)
    assert "Content-Type" not in see_other.headers
    temporary = next_hop(call, 307, "/d")
    assert temporary is not None
    assert (temporary.method, temporary.url, temporary.content) == ("POST", "http://api.example.com/d", b"{}")
    assert next_hop(call, 200, "/ignored") is None
    assert next_hop(call, 302, None) is None


def test_credentials_do_not_follow_a_redirect_to_another_origin() -> None:
    call = HttpCall("GET", "https://api.example.com/", {"Authorization": "Bearer t0ken-value",
                                                         "X-Api-Key": "t0ken-value", "Accept": "text/plain"})
    same = next_hop(call, 302, "/elsewhere", ["t0ken-value"])
    assert same is not None and same.headers == call.headers
    other = next_hop(call, 302, "https://other.example.com/", ["t0ken-value"])
    assert other is not None and other.headers == {"Accept": "text/plain"}


def test_a_redirect_to_a_non_http_scheme_is_refused() -> None:
    with pytest.raises(HttpFailure, match="not an http"):
        next_hop(HttpCall("GET", "http://api.example.com/"), 302, "file:///etc/passwd")


# -- the runner over a mock wire ---------------------------------------------------------
def test_the_request_goes_to_the_checked_address_with_the_name_in_host_and_sni() -> None:
    # GIVEN an https action to a public name
    wire = Wire(ok_json)
    # WHEN it runs
    result = wire.runner().run(request({"url": "https://api.example.com:8443/v1?q=1", "method": "POST",
                                        "body": "{{ params.text }}"}, {"text": "hi"}))
    # THEN the connection went to the resolved IP, the name travelled as Host and SNI
    assert result.status == "succeeded", result
    (sent,) = wire.seen
    assert sent.url.host == PUBLIC and sent.url.port == 8443 and sent.url.path == "/v1"
    assert sent.headers["host"] == "api.example.com:8443"
    assert sent.extensions["sni_hostname"] == "api.example.com"
    assert sent.method == "POST" and sent.content == b"hi"
    # AND the result has the documented shape
    assert result.exit_code is None and result.error is None and result.pid is None
    assert result.output == {
        "status_code": 200, "reason": "OK", "body": {"echo": "hi", "method": "POST"},
        "headers": {"x-trace": "abc", "content-length": result.output["headers"]["content-length"],
                    "content-type": "application/json"},
        "url": "https://api.example.com:8443/v1?q=1", "truncated": False,
    }
    assert result.stdout == "POST https://api.example.com:8443/v1?q=1 -> 200"


def test_a_text_body_stays_text_and_json_parses_only_when_the_response_says_json() -> None:
    wire = Wire(lambda req: httpx.Response(200, text='{"looks": "json"}', headers={"Content-Type": "text/plain"}))
    result = wire.runner().run(request({"url": "http://api.example.com/"}))
    assert result.output["body"] == '{"looks": "json"}'


def test_a_non_2xx_answer_fails_with_the_response_kept() -> None:
    wire = Wire(lambda req: httpx.Response(404, json={"detail": "no such user"}))
    result = wire.runner().run(request({"url": "http://api.example.com/users/9"}))
    assert result.status == "failed"
    assert result.error == "HTTP 404 Not Found from GET http://api.example.com/users/9"
    assert result.output["status_code"] == 404 and result.output["body"] == {"detail": "no such user"}


def test_a_big_body_is_cut_at_max_output_bytes_with_the_marker() -> None:
    wire = Wire(lambda req: httpx.Response(200, content=b"x" * 5000, headers={"Content-Type": "application/json"}))
    result = wire.runner().run(request({"url": "http://api.example.com/"}, max_output_bytes=100))
    assert result.status == "succeeded"
    assert result.output["body"] == "x" * 100 + TRUNCATION_MARKER
    assert result.output["truncated"] is True


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://127.0.0.1:8080/", "127.0.0.1"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("http://evil.example.com/", "127.0.0.1"),
        ("http://mixed.example.com/", "10.0.0.7"),
    ],
)
def test_an_internal_destination_is_refused_before_anything_is_sent(url: str, address: str) -> None:
    wire = Wire(ok_json)
    result = wire.runner().run(request({"url": url}))
    assert result.status == "failed"
    assert result.error is not None and "refusing to contact" in result.error and address in result.error
    assert wire.seen == []


def test_a_redirect_to_an_internal_address_is_refused_and_not_followed() -> None:
    # GIVEN a public server that redirects to the cloud metadata service
    def handler(req: httpx.Request) -> httpx.Response:
        if req.headers["host"] == "api.example.com":
            return httpx.Response(302, headers={"Location": "http://metadata.example.com/latest/"})
        return httpx.Response(200, text="SECRET-CREDENTIALS")

    wire = Wire(handler)
    # WHEN the action runs
    result = wire.runner().run(request({"url": "http://api.example.com/start"}))
    # THEN the redirect is refused with a message naming it, and only the first hop was sent
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.startswith("redirect to http://metadata.example.com/latest/ refused: refusing to contact")
    assert [r.headers["host"] for r in wire.seen] == ["api.example.com"]
    assert "SECRET" not in repr(result)


def test_allowed_redirects_are_followed_to_the_checked_address_of_each_hop() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.headers["host"] == "api.example.com":
            return httpx.Response(301, headers={"Location": "http://other.example.com/moved"})
        return httpx.Response(200, json={"at": str(req.url.path)})

    wire = Wire(handler)
    result = wire.runner().run(request({"url": "http://api.example.com/old",
                                        "headers": {"Authorization": "Bearer {{ secret.tok }}"}},
                                       {"tok": "t0ken-value"}, secrets=("t0ken-value",)))
    assert result.status == "succeeded", result
    assert [r.url.host for r in wire.seen] == [PUBLIC, OTHER_PUBLIC]
    assert "authorization" in wire.seen[0].headers and "authorization" not in wire.seen[1].headers
    assert result.output["url"] == "http://other.example.com/moved" and result.output["body"] == {"at": "/moved"}
    assert result.stdout.splitlines() == ["GET http://api.example.com/old -> 301",
                                          "GET http://other.example.com/moved -> 200"]


def test_more_than_five_redirects_fail() -> None:
    wire = Wire(lambda req: httpx.Response(302, headers={"Location": f"/hop{len(wire.seen)}"}))
    result = wire.runner().run(request({"url": "http://api.example.com/hop0"}))
    assert result.status == "failed"
    assert result.error is not None and f"too many redirects (more than {MAX_REDIRECTS})" in result.error
    assert len(wire.seen) == MAX_REDIRECTS + 1


def test_a_server_that_does_not_answer_times_out() -> None:
    async def stall(req: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()  # never set: only the runner's deadline ends this
        raise AssertionError("unreachable")

    wire = Wire(stall)
    result = wire.runner().run(request({"url": "http://api.example.com/slow"}, timeout_s=0.3))
    assert result.status == "failed" and result.timed_out is True
    assert result.error == "timed out after 0.3s waiting for http://api.example.com/slow"
    assert result.output is None


def test_cancel_stops_a_request_in_flight() -> None:
    cancel = threading.Event()

    async def stall(req: httpx.Request) -> httpx.Response:
        cancel.set()  # the user cancels while the request is in flight
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    wire = Wire(stall)
    result = wire.runner().run(request({"url": "http://api.example.com/slow"}, timeout_s=30), cancel=cancel)
    assert result.status == "canceled" and result.error == "canceled" and result.timed_out is False
    assert result.duration_s < 5  # not the 30 s timeout
    assert len(wire.seen) == 1


def test_a_template_error_fails_the_execution_without_sending() -> None:
    wire = Wire(ok_json)
    result = wire.runner().run(request({"url": "http://api.example.com/{{ params.a | nosuchfilter }}"}, {"a": 1}))
    assert result.status == "failed" and result.error is not None and "http_config.url" in result.error
    assert wire.seen == []


def test_the_datastore_is_opened_for_the_tenant_only_when_a_template_reads_it() -> None:
    opened: list[int] = []

    @contextmanager
    def datastore(tenant_id: int) -> Iterator[Mapping[str, Any]]:
        opened.append(tenant_id)
        yield {"base_path": "v2"}

    wire = Wire(ok_json)
    runner = wire.runner(datastore=datastore)
    assert runner.run(request({"url": "http://api.example.com/plain"})).status == "succeeded"
    assert opened == []
    result = runner.run(request({"url": "http://api.example.com/{{ datastore.base_path }}/x"}))
    assert result.status == "succeeded" and opened == [3]
    assert wire.seen[-1].url.path == "/v2/x"


def test_the_worker_finds_the_http_runner_in_the_registry() -> None:
    assert isinstance(runner_for("http"), HttpRunner)
