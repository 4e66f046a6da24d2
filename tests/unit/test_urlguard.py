"""The SSRF guard, with a fake resolver: which hosts resolve where is the test's to decide."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest

from leadwatch.notifications.urlguard import UnsafeURLError, check_url

PUBLIC = "93.184.216.34"


def resolver(*addresses: str) -> Callable[..., list[tuple[Any, ...]]]:
    """A getaddrinfo stand-in answering every name with `addresses`."""

    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0))
            if ":" in a
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in addresses
        ]

    return resolve


def unresolvable(errno: int) -> Callable[..., list[tuple[Any, ...]]]:
    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        raise socket.gaierror(errno, "Name or service not known")

    return resolve


def check(url: str, *addresses: str, private: bool = False, http: bool = False) -> str:
    return check_url(url, allow_private=private, allow_http=http, resolve=resolver(*addresses))


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.5", "private"),
        ("192.168.1.10", "private"),
        ("169.254.10.1", "link-local"),
        ("169.254.169.254", "cloud metadata"),
        ("100.64.0.7", "shared"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fd12:3456::1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("2002:7f00:1::", "loopback"),  # 6to4 wrapping 127.0.0.1
    ],
)
def test_non_public_addresses_are_refused_unless_allowed(address: str, kind: str) -> None:
    with pytest.raises(UnsafeURLError, match=kind) as caught:
        check("https://hooks.example.com/x", address)
    assert "LEADWATCH_ALLOW_PRIVATE_URLS=true" in str(caught.value)
    assert "hooks.example.com" in str(caught.value)
    assert (
        check("https://hooks.example.com/x", address, private=True) == "https://hooks.example.com/x"
    )


def test_a_public_address_passes_and_the_url_comes_back_unchanged() -> None:
    url = "https://hooks.example.com:8443/services/T0/B0/secret?x=1"
    assert check(url, PUBLIC) == url
    assert check("https://[2606:2800:220:1:248:1893:25c8:1946]/hook", "2606:2800:220:1::1")


def test_every_resolved_address_must_be_public() -> None:
    with pytest.raises(UnsafeURLError, match="10.0.0.8"):
        check("https://mixed.example.com/", PUBLIC, "10.0.0.8")
    with pytest.raises(UnsafeURLError, match="::1"):
        check("https://mixed.example.com/", "::1", PUBLIC)


def test_plain_http_is_refused_unless_allowed() -> None:
    with pytest.raises(UnsafeURLError, match="LEADWATCH_ALLOW_HTTP_URLS=true"):
        check("http://hooks.example.com/", PUBLIC)
    assert check("http://hooks.example.com/", PUBLIC, http=True)
    with pytest.raises(UnsafeURLError, match="loopback"):  # one permission is not the other
        check("http://localhost:8000/", "127.0.0.1", http=True)


@pytest.mark.parametrize("url", ["ftp://files.example.com/x", "file:///etc/passwd", "gopher://x/"])
def test_other_schemes_are_refused(url: str) -> None:
    with pytest.raises(UnsafeURLError, match="https://"):
        check(url, PUBLIC, private=True, http=True)


@pytest.mark.parametrize(
    "url", ["https://user:s3cr3t@hooks.example.com/", "https://t0k3n@hooks.example.com/"]
)
def test_credentials_in_the_url_are_refused_and_never_echoed(url: str) -> None:
    with pytest.raises(UnsafeURLError, match="credentials") as caught:
        check(url, PUBLIC, private=True)
    assert "s3cr3t" not in str(caught.value) and "t0k3n" not in str(caught.value)


def test_unresolvable_hosts_are_refused_and_dns_hiccups_are_temporary() -> None:
    with pytest.raises(UnsafeURLError, match="cannot resolve nowhere.invalid") as caught:
        check_url(
            "https://nowhere.invalid/",
            allow_private=True,
            allow_http=False,
            resolve=unresolvable(socket.EAI_NONAME),
        )
    assert caught.value.temporary is False
    with pytest.raises(UnsafeURLError, match="cannot resolve") as caught:
        check_url(
            "https://flaky.example.com/",
            allow_private=False,
            allow_http=False,
            resolve=unresolvable(socket.EAI_AGAIN),
        )
    assert caught.value.temporary is True
    with pytest.raises(UnsafeURLError, match="no addresses"):
        check("https://empty.example.com/")


@pytest.mark.parametrize(
    "url", ["https:///path", "https://hooks.example.com:99999/", "https://[::1/"]
)
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsafeURLError):
        check(url, PUBLIC, private=True)


def test_the_real_resolver_refuses_loopback() -> None:
    with pytest.raises(UnsafeURLError, match="loopback"):
        check_url("https://127.0.0.1/", allow_private=False, allow_http=False)
