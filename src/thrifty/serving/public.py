"""The front door's public listener: HTTPS on an address cloud VMs and remote clients reach.

    loopback  127.0.0.1:8470 (THRIFTY_GATEWAY_HOST/PORT)   plain HTTP, as before: this machine's CLI
    public    THRIFTY_FRONT_DOOR_LISTEN=HOST:PORT          HTTPS with the front door's own certificate
                                                           (``thrifty.tls.front_door_cert``), pinned
                                                           by the VMs' watchers

Both listeners serve the same gateway. The public one answers nobody anonymously, whatever the
peer's address (a tunnel or TLS terminator on this machine makes remote clients look like
loopback): health checks are open, an interruption notice carries the deployment's notice token,
``/v2/models/NAME/…`` takes NAME's own deployment token or a gateway token
(``THRIFTY_API_TOKENS``), and everything else (``/admin``, ``/metrics``) a gateway token only.

Every interface (``0.0.0.0``, ``[::]``) is refused unless asked for explicitly
(``THRIFTY_FRONT_DOOR_LISTEN_ALL_INTERFACES``): it would serve the public internet on a host with a
public address, where one specific address (a VPN's, a private subnet's) is what the VMs need.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from thrifty.errors import ConfigError

if TYPE_CHECKING:
    from thrifty.settings import Settings
    from thrifty.tls import DeploymentCert

SOURCE = "THRIFTY_FRONT_DOOR_LISTEN"
ALL_INTERFACES_SETTING = "THRIFTY_FRONT_DOOR_LISTEN_ALL_INTERFACES"


@dataclass(frozen=True)
class PublicListener:
    """Where the public listener binds, and the certificate it serves (its key never printed)."""

    host: str
    port: int
    cert: DeploymentCert = field(repr=False)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    @property
    def sha256(self) -> str:
        return self.cert.sha256


def parse_listen(value: str, *, all_interfaces: bool = False, source: str = SOURCE) -> tuple[str, int]:
    """``HOST:PORT`` (``[V6]:PORT`` for IPv6) → (host, port), checked; every interface refused
    unless ``all_interfaces``."""
    host, sep, port_text = value.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(
            f"{source}={value!r} is not HOST:PORT",
            hint=f"e.g. {source}=10.0.0.5:8471 (an address of this machine the VMs reach), or [fd00::5]:8471",
        )
    if _every_interface(host) and not all_interfaces:
        raise ConfigError(
            f"{source}={value!r} listens on every interface: on a machine with a public address "
            "that serves the front door to the whole internet, where the VMs need one address",
            hint=f"name the address the VMs reach (a VPN's or the private subnet's), or set "
            f"{ALL_INTERFACES_SETTING}=true if a firewall limits who reaches port {port_text}",
        )
    return host, int(port_text)


def _every_interface(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return host == "*"


def public_listener(settings: Settings) -> PublicListener | None:
    """The public listener the settings ask for (None: loopback only); its certificate is made
    once under ``THRIFTY_HOME``."""
    if not settings.front_door_listen or not settings.front_door_listen.strip():
        return None
    from thrifty import tls

    host, port = parse_listen(
        settings.front_door_listen, all_interfaces=settings.front_door_listen_all_interfaces
    )
    return PublicListener(host, port, tls.front_door_cert(settings.home))
