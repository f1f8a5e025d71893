"""The HTTP runner's SSRF guard: internal destinations are refused unless explicitly allowed.

`core.netpolicy` is judged on literal addresses; `netguard.resolve_and_check`
through the real resolver (numeric forms and `localhost` resolve locally,
from /etc/hosts, without DNS).
"""

from __future__ import annotations

import re

import pytest

from chalicelib.core import netpolicy
from chalicelib.core.netpolicy import DestinationRefused, allowed_addresses, check_address, parse_allow_hosts
from chalicelib.netguard import resolve, resolve_and_check

INTERNAL = [
    ("127.0.0.1", "loopback"),
    ("127.1.2.3", "loopback"),
    ("::1", "loopback"),
    ("0.0.0.0", "unspecified"),  # noqa: S104 - an address under test, not a bind
    ("::", "unspecified"),
    ("169.254.169.254", "link-local"),
    ("169.254.0.1", "link-local"),
    ("fe80::1", "link-local"),
    ("fe80::1%1", "link-local"),
    ("10.0.0.1", "private"),
    ("10.255.255.255", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.1.1", "private"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("100.64.0.1", "shared address space"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", ""),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:7f00:1", "loopback"),
    ("::ffff:169.254.169.254", "link-local"),
    ("::ffff:10.1.2.3", "private"),
    ("::ffff:0.0.0.0", "unspecified"),
    ("::127.0.0.1", "loopback"),
    ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
    ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
    ("fec0::1", ""),
]

PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.215.14", "172.32.0.1", "172.15.255.255", "192.169.0.1",
          "11.0.0.1", "2606:4700:4700::1111", "2001:4860:4860::8888", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address,reason", INTERNAL)
def test_internal_addresses_are_refused(address: str, reason: str) -> None:
    verdict = check_address(address)
    assert verdict.allowed is False, verdict
    assert reason in verdict.reason, verdict
    # AND allow_private lets exactly these through
    assert check_address(address, allow_private=True).allowed is True


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert check_address(address) == netpolicy.Verdict(address, True)


def test_a_name_is_not_an_address() -> None:
    assert check_address("localhost").allowed is False


def test_one_internal_address_refuses_the_whole_host() -> None:
    # A name answering both a public and a loopback address is a rebinding trick.
    with pytest.raises(DestinationRefused, match=re.escape("127.0.0.1, a loopback")):
        allowed_addresses("evil.example", 80, ["93.184.215.14", "127.0.0.1"])
    assert allowed_addresses("ok.example", 443, ["93.184.215.14", "2606:4700:4700::1111", "93.184.215.14"]) == [
        "93.184.215.14", "2606:4700:4700::1111"]


def test_no_address_is_refused() -> None:
    with pytest.raises(DestinationRefused, match="no address"):
        allowed_addresses("nothing.example", 80, [])


def test_the_refusal_names_the_settings_that_permit_it() -> None:
    with pytest.raises(DestinationRefused, match=r"ATTUNE_HTTP_ALLOW_PRIVATE.*ATTUNE_HTTP_ALLOW_HOSTS"):
        allowed_addresses("metadata", 80, ["169.254.169.254"])


@pytest.mark.parametrize("entry,host,port,allowed", [
    ("mock.internal", "mock.internal", 8080, True),
    ("mock.internal", "MOCK.internal.", 80, True),
    ("mock.internal:8080", "mock.internal", 8080, True),
    ("mock.internal:8080", "mock.internal", 8081, False),
    ("mock.internal", "other.internal", 8080, False),
    ("mock.internal", "sub.mock.internal", 8080, False),  # no suffix matching
    ("internal", "mock.internal", 8080, False),
    ("127.0.0.1:18999", "127.0.0.1", 18999, True),
    ("127.0.0.1:18999", "127.0.0.1", 22, False),
    ("[::1]:18999", "::1", 18999, True),
    ("[::1]", "[::1]", 5432, True),
])
def test_allow_hosts(entry: str, host: str, port: int, allowed: bool) -> None:
    hosts = parse_allow_hosts(f" other.example , {entry},")
    if allowed:
        assert allowed_addresses(host, port, ["127.0.0.1"], allow_hosts=hosts) == ["127.0.0.1"]
    else:
        with pytest.raises(DestinationRefused):
            allowed_addresses(host, port, ["127.0.0.1"], allow_hosts=hosts)


def test_parse_allow_hosts() -> None:
    assert parse_allow_hosts(None) == frozenset()
    assert parse_allow_hosts("") == frozenset()
    assert parse_allow_hosts("A.example., b.example:8080,,[::1]") == {"a.example", "b.example:8080", "::1"}


# -------------------------------------------------- through the real resolver --

@pytest.mark.parametrize("host", [
    "127.0.0.1", "localhost", "2130706433", "0x7f000001", "0x7f.0.0.1", "017700000001", "0177.0.0.1",
    "127.1", "0", "0.0.0.0", "[::ffff:127.0.0.1]", "::ffff:127.0.0.1", "[::1]", "169.254.169.254",  # noqa: S104
    "2852039166", "0xa9fea9fe", "10.1", "192.168.0.1", "[fe80::1]",
])
def test_resolved_internal_spellings_are_refused(host: str) -> None:
    assert resolve(host, 80), host  # the resolver turns each spelling into an address...
    with pytest.raises(DestinationRefused):  # ...and that address is judged
        resolve_and_check(host, 80)


def test_odd_ipv4_spellings_resolve_to_what_they_reach() -> None:
    assert resolve("2130706433", 80) == ["127.0.0.1"]
    assert resolve("0x7f.1", 80) == ["127.0.0.1"]
    assert resolve("0xa9fea9fe", 80) == ["169.254.169.254"]


def test_allowed_internal_hosts_resolve_to_checked_addresses() -> None:
    assert "127.0.0.1" in resolve_and_check("localhost", 8080, allow_private=True)
    assert "127.0.0.1" in resolve_and_check("localhost", 8080, allow_hosts=parse_allow_hosts("localhost:8080"))
    with pytest.raises(DestinationRefused):
        resolve_and_check("localhost", 8081, allow_hosts=parse_allow_hosts("localhost:8080"))


def test_a_public_literal_passes_without_dns() -> None:
    assert resolve_and_check("8.8.8.8", 443) == ["8.8.8.8"]
    assert resolve_and_check("[2606:4700:4700::1111]", 443) == ["2606:4700:4700::1111"]


def test_an_unresolvable_name_is_refused() -> None:
    with pytest.raises(DestinationRefused, match="cannot resolve"):
        resolve_and_check("no-such-host.invalid", 80)
