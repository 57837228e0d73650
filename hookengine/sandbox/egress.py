"""The network layer: outbound connections only to allowed hosts, checked after DNS."""

from __future__ import annotations

import fnmatch
import ipaddress
import re
import socket
import sys
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from packaging.utils import canonicalize_name

from hookengine.sandbox.policy import guard_replacement

# API hosts of the providers a hook may declare: the default egress allowlist.
PROVIDER_HOSTS = {
    "twilio": ("*.twilio.com",),
    "vonage": ("api.nexmo.com", "rest.nexmo.com", "*.nexmo.com", "*.vonage.com"),
}


# What a host name may be: letters, digits, dots, hyphens (and underscores, which some
# providers' hosts use). Anything else (a NUL, a space, a percent sign) is refused before any
# pattern match or resolver sees it: the C resolver reads a C string, not a Python one.
HOST_NAME = re.compile(r"[A-Za-z0-9_.-]{1,253}")


class EgressDenied(ConnectionRefusedError):
    """A connection the egress policy refused; the message says which setting would allow it."""


@dataclass
class EgressPolicy:
    allow_hosts: tuple[str, ...] = ()
    allow_networks: tuple[str, ...] = ()
    host_map: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_hook(cls, packages, extra_allow, host_map) -> "EgressPolicy":
        """Allowlist of the declared providers plus HOOKENGINE_EGRESS_ALLOW (hosts or CIDRs)."""
        hosts, networks = [], []
        for package in packages:
            hosts.extend(PROVIDER_HOSTS.get(canonicalize_name(package), ()))
        for item in extra_allow:
            try:
                networks.append(str(ipaddress.ip_network(item, strict=False)))
            except ValueError:
                hosts.append(item.lower())
        return cls(tuple(hosts), tuple(networks), dict(host_map))

    def to_dict(self) -> dict:
        return {"allow_hosts": list(self.allow_hosts),
                "allow_networks": list(self.allow_networks), "host_map": self.host_map}


class EgressGuard:
    """The egress policy applied to names and addresses.

    In the hook process (`install`) it wraps name resolution, connect and requests'
    transport, and gives the friendly errors; with a broker (broker.py) the real resolving and
    connecting happen there, and the broker applies this same class again on its side.
    """

    def __init__(self, policy: EgressPolicy):
        self.policy = policy
        self.networks = [ipaddress.ip_network(n) for n in policy.allow_networks]
        # Host-map targets are the operator's own choice, so they may be loopback or private,
        # but only at the port the map names: not every other service on that host.
        self.mapped_targets = {_host_port(u) for u in policy.host_map.values()}
        self.resolved: set[str] = set()
        self.resolved_mapped: set[tuple[str, int]] = set()
        self.real_getaddrinfo = socket.getaddrinfo

    def install(self, broker=None) -> None:
        """Patch this process's socket module; with a broker (a BrokerClient), resolving
        and connecting go through it, since this process has no network of its own."""
        guard = self
        real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
        real_sendto = socket.socket.sendto
        if broker is not None:
            self.real_getaddrinfo = broker.getaddrinfo
            real_connect, real_connect_ex = broker.connect, broker.connect_ex

        def getaddrinfo(host, port, *args, **kwargs):
            return guard.resolve(host, port, *args, **kwargs)

        def connect(sock, address):
            guard.check_address(sock.family, address)
            return real_connect(sock, address)

        def connect_ex(sock, address):
            guard.check_address(sock.family, address)
            return real_connect_ex(sock, address)

        def sendto(sock, data, *args):
            guard.check_address(sock.family, args[-1])
            if broker is not None:
                raise EgressDenied("datagrams are not available to hooks: only TCP "
                                   "connections to allowed hosts")
            return real_sendto(sock, data, *args)

        socket.getaddrinfo = getaddrinfo
        socket.socket.connect = connect
        socket.socket.connect_ex = connect_ex
        socket.socket.sendto = sendto
        self._install_host_map()

    def host_allowed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return (host in self.policy.host_map
                or any(fnmatch.fnmatchcase(host, pattern) for pattern in self.policy.allow_hosts))

    def resolve(self, host, port, *args, **kwargs):
        name = host.decode("utf-8", "replace") if isinstance(host, bytes) else str(host or "")
        if not HOST_NAME.fullmatch(name) and not self._is_address(name):
            raise EgressDenied(f"connection to {name!r} refused: not a valid host name")
        mapped = (name.lower().rstrip("."), _port_number(port)) in self.mapped_targets
        if not mapped and not self.host_allowed(name) and not self._literal_allowed(name):
            raise EgressDenied(f"connection to {name!r} refused: not on this hook's egress "
                               "allowlist (the declared providers' API hosts and "
                               "HOOKENGINE_EGRESS_ALLOW)")
        results = self.real_getaddrinfo(host, port, *args, **kwargs)
        allowed = [r for r in results if mapped or self._address_allowed(r[4][0])]
        if not allowed:
            raise EgressDenied(f"connection to {name!r} refused: it resolves only to loopback, "
                               "private or link-local addresses (add them to "
                               "HOOKENGINE_EGRESS_ALLOW to allow)")
        if mapped:
            self.resolved_mapped.update((r[4][0], r[4][1]) for r in allowed)
        else:
            self.resolved.update(r[4][0] for r in allowed)
        return allowed

    def check_address(self, family: int, address) -> None:
        if family not in (socket.AF_INET, socket.AF_INET6):
            try:
                family_name = socket.AddressFamily(family).name
            except ValueError:
                family_name = f"address family {family}"
            raise EgressDenied(f"{family_name} sockets are not available to hooks")
        ip, port = address[0], address[1]
        if ip not in self.resolved and not self._literal_allowed(ip) and not (
                (ip, port) in self.resolved_mapped or (ip, port) in self.mapped_targets):
            raise EgressDenied(f"connection to {ip} port {port} refused: not resolved from an "
                               "allowed host")

    @staticmethod
    def _is_address(text: str) -> bool:
        try:
            ipaddress.ip_address(text)
        except ValueError:
            return False
        return True

    def _literal_allowed(self, text: str) -> bool:
        try:
            ip = ipaddress.ip_address(text.split("%")[0])
        except ValueError:
            return False
        return any(ip in n for n in self.networks)

    def _address_allowed(self, address: str) -> bool:
        ip = ipaddress.ip_address(address.split("%")[0])
        if any(ip in n for n in self.networks):
            return True
        return ip.is_global and not ip.is_multicast  # no loopback, private, metadata (169.254)

    def _install_host_map(self) -> None:
        """Send requests for a mapped host to its target, scheme included (https -> http)."""
        adapters = sys.modules.get("requests.adapters")
        if not self.policy.host_map or adapters is None:
            return  # nothing here speaks HTTP through requests (a zygote without the SDKs)
        HTTPAdapter = adapters.HTTPAdapter

        host_map, real_send = self.policy.host_map, HTTPAdapter.send

        def send(adapter, request, *args, **kwargs):
            parts = urlsplit(request.url)
            target = host_map.get((parts.hostname or "").lower())
            if target:
                query = f"?{parts.query}" if parts.query else ""
                request.url = f"{target}{parts.path}{query}"
            return real_send(adapter, request, *args, **kwargs)

        HTTPAdapter.send = send
        guard_replacement(real_send, send)  # its verify=/cert= checks come along


def _host_port(url: str) -> tuple[str | None, int]:
    parts = urlsplit(url)
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def _port_number(port) -> int | None:
    try:
        return int(port.decode() if isinstance(port, bytes) else port)
    except (TypeError, ValueError):
        return None
