"""Resolve a host once and keep only the addresses the SSRF policy allows (`core.netpolicy`).

The HTTP runner (issue 11) calls `resolve_and_check` and then connects to one
of the returned addresses itself, sending the original host name in the
`Host` header / TLS SNI: the name is resolved exactly once, so a DNS answer
that changes between the check and the connection (rebinding) cannot steer
the request to an internal address. getaddrinfo also normalizes the odd
spellings of IPv4 (`2130706433`, `0x7f.1`, `017700000001`) to the address they
reach, so those are judged as what they are.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable

from chalicelib.core.netpolicy import DestinationRefused, allowed_addresses

__all__ = ["DestinationRefused", "resolve_and_check"]


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to for a TCP connection (IPv4 and IPv6), in resolver order."""
    name = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise DestinationRefused(f"cannot resolve {host}: {exc.strerror or exc}") from exc
    found: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in found:
            found.append(address)
    return found


def resolve_and_check(
    host: str,
    port: int,
    *,
    allow_private: bool = False,
    allow_hosts: Iterable[str] = (),
) -> list[str]:
    """The addresses of `host` the runner may connect to; `DestinationRefused` when there are none."""
    return allowed_addresses(host, port, resolve(host, port), allow_private=allow_private,
                             allow_hosts=allow_hosts)
