"""Where outgoing webhooks may go, and the one way they are sent.

A webhook URL (a subscriber's or a lead agency's) is `https://` or `http://` to a host whose every
address is public, unless the address lies in SCN_WEBHOOK_ALLOWED_NETWORKS. The same rule runs when
a URL is saved and when it is called: the host is resolved once, each address is checked, and the
connection goes to a checked address (with the URL's host in the Host header and, for https, in
SNI and the certificate check), so a name that resolves elsewhere between the check and the call
gains nothing. Redirects are answers, never followed.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

import urllib3

from scn_workflow.domain.errors import N_, Text

# host, port -> the addresses (as text) a connection to them could reach
Resolver = Callable[[str, int], list[str]]
MIN_SECRET = 16
SCHEMES = {"http": 80, "https": 443}


class Refused(Exception):
    """The URL breaks the rule; `message` says which part and why, in a whole sentence (a `Text`, to translate)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the operating system's resolver gives for `host`, each once, in its order."""
    found = []
    for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        if info[4][0] not in found:
            found.append(info[4][0])
    return found


def literal_address(host: str):
    """The address `host` spells, in any form a resolver would read it (127.1, 0x7f000001,
    2130706433 as well as 127.0.0.1 and ::1); None when it is a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def unwrapped(address):
    """The IPv4 address inside an IPv4-mapped or 6to4 IPv6 address, else the address itself."""
    if isinstance(address, ipaddress.IPv6Address):
        return address.ipv4_mapped or address.sixtofour or address
    return address


def is_public(address) -> bool:
    address = unwrapped(address)
    return address.is_global and not (address.is_private or address.is_loopback or address.is_link_local
                                      or address.is_multicast or address.is_reserved or address.is_unspecified)


@dataclass(frozen=True)
class Target:
    """A URL that passed the rule: where to connect, and what to say the host is."""

    scheme: str
    host: str  # as written in the URL, for the Host header, SNI and the certificate
    port: int
    netloc: str
    path: str
    addresses: tuple[str, ...]  # checked, in the resolver's order


@dataclass(frozen=True)
class Destinations:
    """The rule with its two inputs: the networks allowed although private, and the resolver."""

    allowed_networks: tuple = ()
    resolve: Resolver = system_resolver

    def allows(self, address) -> bool:
        return (any(address in net or unwrapped(address) in net for net in self.allowed_networks)
                or is_public(address))

    def check(self, url: str) -> Target:
        """Resolve the URL's host once and check every address; raises Refused naming the rule."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise Refused(N_("The URL is not valid.")) from None
        if parts.scheme not in SCHEMES:
            raise Refused(N_("A webhook URL must start with https:// or http://."))
        host = parts.hostname
        if not host:
            raise Refused(N_("A webhook URL must name a host."))
        if parts.username is not None or parts.password is not None:
            raise Refused(N_("A webhook URL must not carry a user name or password; the secret signs each call."))
        port = port or SCHEMES[parts.scheme]
        literal = literal_address(host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                addresses = [ipaddress.ip_address(a.split("%")[0]) for a in self.resolve(host, port)]
            except (OSError, UnicodeError, ValueError):
                raise Refused(Text(N_("The host {host} could not be resolved."), host=host)) from None
            if not addresses:
                raise Refused(Text(N_("The host {host} could not be resolved."), host=host))
        for address in addresses:
            if self.allows(address):
                continue
            if literal is not None:
                raise Refused(Text(N_("The address {address} is not public: loopback, private, link-local, "
                                      "multicast and reserved addresses are refused."), address=str(address)))
            raise Refused(Text(N_("The host {host} resolves to {address}, which is not public: loopback, private, "
                                  "link-local, multicast and reserved addresses are refused."),
                               host=host, address=str(address)))
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return Target(parts.scheme, host, port, parts.netloc, path, tuple(str(a) for a in addresses))


def check_secret(url: str | None, secret: str | None) -> str | None:
    """Why a URL's secret is not enough, or None: a URL always comes with 16 characters or more."""
    if url and len(secret or "") < MIN_SECRET:
        return Text(N_("A webhook URL needs a secret of at least {count} characters."), count=MIN_SECRET)
    return None


def post(destinations: Destinations, url: str, body: bytes, headers: dict, timeout: float) -> int:
    """POST `body` to a checked address of `url`; returns the answer's status, a redirect included
    (never followed). Raises Refused when the URL breaks the rule, OSError-like urllib3 errors
    (urllib3.exceptions.HTTPError) when no address answers."""
    target = destinations.check(url)
    headers = {**headers, "Host": target.netloc}
    error: Exception | None = None
    for address in target.addresses:
        pool = _pool(target, address, timeout)
        try:
            # Only the status counts: the answer's body is never read (a receiver could send gigabytes).
            response = pool.urlopen("POST", target.path, body=body, headers=headers, redirect=False,
                                    retries=False, assert_same_host=False, preload_content=False)
            response.close()
            return response.status
        except urllib3.exceptions.NewConnectionError as exc:  # this address is away: the next one
            error = exc
        finally:
            pool.close()
    raise error  # type: ignore[misc] - check() returns at least one address


def _pool(target: Target, address: str, timeout: float) -> urllib3.HTTPConnectionPool:
    settings = dict(port=target.port, timeout=urllib3.Timeout(total=timeout), maxsize=1, retries=False)
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(address, cert_reqs="CERT_REQUIRED", assert_hostname=target.host,
                                           server_hostname=target.host, **settings)
    return urllib3.HTTPConnectionPool(address, **settings)

