"""Where a local stack lives: its ports, databases, RabbitMQ vhost and run directory.

`DEV` is a developer's stack (`make up`, the demo); `TEST` is the end-to-end tests', beside
it on other ports, databases and vhost, so both run on one machine without touching.
"""

import ipaddress
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from dev.certs import CERTS

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SERVICES = ("session", "device", "upload", "results")
POSTGRES = os.environ.get("POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432")
AMQP = os.environ.get("AMQP_BASE_URL", "amqp://guest:guest@127.0.0.1:5672")


def _resolved(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address PUBLIC_URL's host name stands for, which phones must be able to reach."""
    try:
        address = ipaddress.ip_address(socket.gethostbyname(name))
    except OSError as error:
        raise SystemExit(f"PUBLIC_URL's host {name!r} does not resolve: {error}") from None
    if address.is_loopback and name != "localhost":
        raise SystemExit(
            f"PUBLIC_URL's host {name!r} resolves to {address} here, where phones cannot "
            "reach it: use this machine's address on their network"
        )
    return address


@dataclass(frozen=True)
class Layout:
    name: str = "dev"
    base_port: int = 8000
    db_prefix: str = "opencap"
    vhost: str = "/"
    # The gateway also serves HTTPS on <tls_host>:443, as the stock iPhone app requires:
    # each local stack gets its own loopback address for it.
    tls_host: str = "127.0.0.1"
    # The developer's stack can serve real phones on the network instead: PUBLIC_URL
    # (https://<name or address of this machine>) then names the QR codes' host, and the
    # HTTPS listener takes that host's address.
    public_from_env: bool = False

    @property
    def run_dir(self) -> Path:
        return ROOT / ".run" / self.name

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.base_port}"

    @property
    def public_host(self) -> str:
        """The host phones are given in QR codes: PUBLIC_URL's, or the loopback address."""
        url = os.environ.get("PUBLIC_URL", "") if self.public_from_env else ""
        if not url:
            return self.tls_host
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname or parts.path.strip("/") or parts.port:
            raise SystemExit(
                f"PUBLIC_URL={url!r}: phones need https://<this machine's name or address>"
                " (the stock iPhone app only uses port 443)"
            )
        return parts.hostname

    @property
    def public_url(self) -> str:
        """What phones are told (QR codes): the gateway over HTTPS on port 443."""
        host = self.public_host
        return f"https://[{host}]" if ":" in host else f"https://{host}"

    @property
    def listen_address(self) -> str:
        """Where the gateway's HTTPS listens (nginx's spelling): the public host's address."""
        host = self.public_host
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = _resolved(host)
        return f"[{address}]" if address.version == 6 else str(address)

    @property
    def ca_file(self) -> Path:
        return CERTS / "ca.pem"

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.base_port + 9}"

    @property
    def amqp_url(self) -> str:
        vhost = "" if self.vhost == "/" else self.vhost
        return f"{AMQP}/{vhost}"

    def port(self, service: str) -> int:
        return self.base_port + 1 + SERVICES.index(service)

    @property
    def smtp_port(self) -> int:
        return self.base_port + 8

    @property
    def maildir(self) -> Path:
        """Where the local mail catcher keeps what the services send (verification codes)."""
        return self.run_dir / "mail"

    def metrics_port(self, service: str) -> int:
        return self.base_port + 11 + SERVICES.index(service)

    @property
    def pipeline_metrics_port(self) -> int:
        """The reference pipeline worker's Prometheus endpoint (also its readiness signal)."""
        return self.base_port + 15

    def database_url(self, service: str) -> str:
        return f"{POSTGRES}/{self.db_prefix}_{service}"


DEV = Layout(public_from_env=True)
# The end-to-end tests' stack; E2E_PORT_BASE moves it (and its databases and vhost) aside.
_E2E = int(os.environ.get("E2E_PORT_BASE", "18000"))
TEST = Layout(
    name=f"test{_E2E}",
    base_port=_E2E,
    db_prefix=f"test{_E2E}_opencap",
    vhost=f"opencap_test{_E2E}",
    tls_host=f"127.0.0.{min(max(2 + (_E2E - 18000) // 1000, 2), 31)}",
)
