"""A local certificate authority and a server certificate for the gateway's HTTPS.

The stock iPhone app only talks HTTPS, on port 443, to the host in the QR code, with a
certificate it trusts. For local runs: `make certs` (or `python -m dev.certs`) writes
`.run/certs/{ca.pem,ca.key,server.pem,server.key}`; install ca.pem on the phones (a
configuration profile, then Settings > General > About > Certificate Trust Settings) and
set PUBLIC_URL to https://<this machine's address>. The server certificate names
localhost, this host's name and addresses, PUBLIC_URL's host, and loopback addresses
127.0.0.1–127.0.0.31 (the local stacks' gateways).
"""

import argparse
import contextlib
import datetime
import ipaddress
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT = Path(__file__).resolve().parents[1]
CERTS = ROOT / ".run" / "certs"


def _name(common: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "OpenCap local"),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.write_bytes(data)
    if private:
        path.chmod(0o600)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _sign(subject: x509.Name, issuer: x509.Name, key, issuer_key, days: int):
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def make_ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _sign(_name("OpenCap local CA"), _name("OpenCap local CA"), key, key, 3650)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    _write(folder / "ca.key", _key_pem(key), private=True)
    _write(folder / "ca.pem", cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def local_names() -> tuple[list[str], list[str]]:
    hosts = {"localhost", socket.gethostname()}
    addresses = {f"127.0.0.{i}" for i in range(1, 32)}
    with contextlib.suppress(OSError):
        addresses |= {
            info[4][0]
            for info in socket.getaddrinfo(socket.gethostname(), None)
            if ":" not in info[4][0]
        }
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this picks the outgoing address
        addresses.add(probe.getsockname()[0])
    return sorted(hosts), sorted(addresses)


def covers(path: Path, hosts: list[str], ips: list[str]) -> bool:
    """Whether the certificate at `path` names all of these and has a month left."""
    if not path.exists():
        return False
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    known = set(names.get_values_for_type(x509.DNSName))
    known |= {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    month = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30)
    return {*hosts, *ips} <= known and cert.not_valid_after_utc > month


def make_server(folder: Path, ca: x509.Certificate, ca_key, hosts: list[str], ips: list[str]):
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName(h) for h in hosts] + [
        x509.IPAddress(ipaddress.ip_address(i)) for i in ips
    ]
    cert = (
        _sign(_name(hosts[0]), ca.subject, key, ca_key, 825)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    _write(folder / "server.key", _key_pem(key), private=True)
    _write(folder / "server.pem", cert.public_bytes(serialization.Encoding.PEM))


def ensure(folder: Path = CERTS, extra_hosts: list[str] = ()) -> Path:
    """Make the CA (once) and a server certificate naming this machine and `extra_hosts`
    (again when one is missing from it); returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "ca.pem").exists() and (folder / "ca.key").exists():
        ca = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
        ca_key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), None)
    else:
        ca, ca_key = make_ca(folder)
        (folder / "server.pem").unlink(missing_ok=True)
    hosts, ips = local_names()
    for extra in extra_hosts:
        try:
            ips.append(str(ipaddress.ip_address(extra)))
        except ValueError:
            hosts.append(extra)
    if not covers(folder / "server.pem", hosts, ips):
        make_server(folder, ca, ca_key, hosts, ips)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description="Make the local CA and gateway certificate.")
    parser.add_argument("names", nargs="*", help="more host names or addresses to certify")
    names = parser.parse_args().names
    public = urlsplit(os.environ.get("PUBLIC_URL", "")).hostname
    folder = ensure(extra_hosts=[*names, public] if public else names)
    print(
        f"CA: {folder / 'ca.pem'} (install it on the phones); certificate: {folder / 'server.pem'}"
    )


if __name__ == "__main__":
    main()
