"""Which network destinations the HTTP runner may contact (SSRF guard), decided without I/O.

An action's HTTP request names a URL; a tenant who can point it at
127.0.0.1, the cloud metadata address 169.254.169.254 or a private address
reaches the platform's internals (the local moto, the API's own port, a VPC
service) from inside the worker. So a destination is refused when any of its
resolved addresses is loopback, link-local, private, unique-local,
unspecified, multicast or reserved — also in its IPv4-mapped (`::ffff:a.b.c.d`),
IPv4-compatible, 6to4 or NAT64 IPv6 spellings, which reach the same IPv4 host
— unless `allow_private` is on or the host (`name` or `name:port`) is on the
allow-list. The decision is made on addresses that were already resolved
(see `chalicelib.netguard`), so the caller connects to exactly a checked
address and DNS cannot answer differently in between (no rebinding window).

Settings (read by the caller, not here): `ATTUNE_HTTP_ALLOW_PRIVATE` (bool,
default false) and `ATTUNE_HTTP_ALLOW_HOSTS` (comma-separated host names or
`host:port`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Ranges the `ipaddress` flags do not all cover, named so a refusal says why.
_EXTRA_BLOCKED: tuple[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network], ...] = (
    ("shared address space (carrier-grade NAT)", ipaddress.ip_network("100.64.0.0/10")),
    ("IETF protocol assignments", ipaddress.ip_network("192.0.0.0/24")),
    ("benchmarking", ipaddress.ip_network("198.18.0.0/15")),
    ("'this network'", ipaddress.ip_network("0.0.0.0/8")),
    ("broadcast", ipaddress.ip_network("255.255.255.255/32")),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class DestinationRefused(ValueError):
    """The destination is internal and neither allowed by setting nor by the allow-list."""


@dataclass(frozen=True)
class Verdict:
    """Whether one address may be contacted, and if not, why (for the action's error)."""

    address: str
    allowed: bool
    reason: str = ""


def _normalize_host(host: str) -> str:
    """Lower case, no trailing dot, no brackets around a bare IPv6: how names are compared."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host


def parse_allow_hosts(raw: str | None) -> frozenset[str]:
    """`ATTUNE_HTTP_ALLOW_HOSTS` as a set of normalized `host` or `host:port` entries."""
    return frozenset(_normalize_host(part) for part in (raw or "").split(",") if part.strip())


def host_is_allowed(host: str, port: int | None, allow_hosts: Iterable[str]) -> bool:
    """Whether `host`, or `host:port`, is on the allow-list: exact names only, no wildcards."""
    allowed = {_normalize_host(entry) for entry in allow_hosts}
    name = _normalize_host(host)
    candidates = {name}
    if port is not None:
        candidates |= {f"{name}:{port}", f"[{name}]:{port}"}
    return bool(candidates & allowed)


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 host an IPv6 spelling actually reaches (mapped, compatible, 6to4, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _IPV4_COMPATIBLE and int(address) > 1:  # ::, ::1 are themselves
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def why_internal(address: IPAddress) -> str | None:
    """Why `address` is internal (a short phrase), or None when it is a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            reason = why_internal(inner)
            return f"{reason} (as IPv6 {address})" if reason else None
        if address.scope_id:
            return "scoped (link-local) IPv6"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("site-local", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
    )
    for reason, hit in checks:
        if hit:
            return reason
    for reason, network in _EXTRA_BLOCKED:
        if address.version == network.version and address in network:
            return reason
    if not address.is_global:
        return "not globally routable"
    return None


def check_address(address: str | IPAddress, *, allow_private: bool = False) -> Verdict:
    """The verdict for one literal address (`127.0.0.1`, `::ffff:10.0.0.1`, `fe80::1%eth0`)."""
    text = str(address)
    try:
        parsed = address if not isinstance(address, str) else ipaddress.ip_address(text)
    except ValueError:
        return Verdict(text, False, "not an IP address")
    reason = why_internal(parsed)
    if reason is None or allow_private:
        return Verdict(text, True)
    return Verdict(text, False, reason)


def allowed_addresses(
    host: str,
    port: int | None,
    addresses: Iterable[str | IPAddress],
    *,
    allow_private: bool = False,
    allow_hosts: Iterable[str] = (),
) -> list[str]:
    """The resolved `addresses` of `host` that may be contacted; raises if none may.

    Strict on mixed answers: if any address of the host is internal, the whole
    host is refused (a name that resolves to both a public and 127.0.0.1 is a
    rebinding trick, not a public service). An allow-listed host, or
    `allow_private`, permits every address.
    """
    found = list(dict.fromkeys(str(a) for a in addresses))
    if not found:
        raise DestinationRefused(f"{host} resolved to no address")
    if allow_private or host_is_allowed(host, port, allow_hosts):
        return found
    verdicts = [check_address(a) for a in found]
    refused = [v for v in verdicts if not v.allowed]
    if refused:
        first = refused[0]
        raise DestinationRefused(
            f"refusing to contact {host}: it resolves to {first.address}, a {first.reason} address "
            "(set ATTUNE_HTTP_ALLOW_PRIVATE=true or add the host to ATTUNE_HTTP_ALLOW_HOSTS to permit it)"
        )
    return found
