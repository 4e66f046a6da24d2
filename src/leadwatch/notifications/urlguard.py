"""The SSRF guard every outgoing URL passes before LeadWatch sends anything to it.

Webhook and Slack URLs are typed in by dealership staff, and the Twilio base URL comes from
settings, so a careless or hostile entry could make the server call its own admin ports, the
database next door or the cloud metadata service (169.254.169.254, which hands out
credentials). `check_url` therefore insists on https, no credentials in the URL, and a host
whose every resolved address (IPv4 and IPv6) is public.

Limit: the check resolves the name just before each request and the HTTP client resolves it
again when it connects, so a DNS server that answers differently the second time (DNS
rebinding) can slip past. Closing that gap fully takes pinning the connection to the checked
address or an egress firewall/proxy; the guard makes the attack need a hostile DNS server
*and* a race, instead of one typed URL.

Error messages name the host but never echo the URL: Slack webhook URLs carry their secret in
the path.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

Resolver = Callable[..., Iterable[tuple[Any, ...]]]  # the shape of socket.getaddrinfo

_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT, RFC 6598
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_LAB_HINT = "for a lab or test setup set LEADWATCH_ALLOW_PRIVATE_URLS=true"


class UnsafeURLError(ValueError):
    """An outgoing URL LeadWatch refuses to call; the message says why and how to fix it.

    `temporary` is true only when DNS failed for a reason that may pass (EAI_AGAIN), so the
    caller can retry rather than give up.
    """

    def __init__(self, message: str, *, temporary: bool = False) -> None:
        super().__init__(message)
        self.temporary = temporary


def check_url(
    url: str, *, allow_private: bool, allow_http: bool, resolve: Resolver = socket.getaddrinfo
) -> str:
    """Return `url` unchanged if it is safe to POST to, else raise `UnsafeURLError`."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeURLError("malformed URL (bad port or brackets): check the address") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeURLError(f"scheme {scheme or '(none)'!r} is not allowed: use an https:// URL")
    if scheme == "http" and not allow_http:
        raise UnsafeURLError(
            "plain http:// is refused (messages would travel unencrypted): use https://, or set "
            "LEADWATCH_ALLOW_HTTP_URLS=true for development"
        )
    if parts.username is not None or parts.password is not None:
        raise UnsafeURLError(
            "credentials in the URL (user:password@) are refused: they would end up in logs; "
            "use the channel's own secret settings instead"
        )
    host = parts.hostname
    if not host:
        raise UnsafeURLError("the URL has no host: use https://host/path")
    for address in _resolve(host, port or (443 if scheme == "https" else 80), resolve):
        kind = _non_public_kind(address)
        if kind is not None and not allow_private:
            raise UnsafeURLError(
                f"{host} resolves to {address} ({kind}); outgoing URLs must reach public "
                f"addresses ({_LAB_HINT})"
            )
    return url


def _resolve(
    host: str, port: int, resolve: Resolver
) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = list(resolve(host, port, type=socket.SOCK_STREAM))
    except socket.gaierror as exc:
        temporary = exc.errno == socket.EAI_AGAIN
        raise UnsafeURLError(
            f"cannot resolve {host}: {exc.strerror}", temporary=temporary
        ) from None
    except (OSError, UnicodeError) as exc:
        raise UnsafeURLError(f"cannot resolve {host}: {exc}") from None
    addresses = [ipaddress.ip_address(str(info[4][0])) for info in infos]
    if not addresses:
        raise UnsafeURLError(f"cannot resolve {host}: no addresses")
    return addresses


def _non_public_kind(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """What kind of non-public address this is, or None for a public one."""
    if address in _METADATA:
        return "cloud metadata service"
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour  # ::ffff:127.0.0.1, 2002:7f00:1::
        if embedded is not None:
            return _non_public_kind(embedded)
    checks = (
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_unspecified, "unspecified"),
        (address.is_multicast, "multicast"),
        (address in _SHARED, "shared carrier-grade NAT"),
        (address.is_reserved, "reserved"),
        (address.is_private, "private"),
        (not address.is_global, "not globally routable"),
    )
    return next((kind for hit, kind in checks if hit), None)
