"""The local stack for real phones on the network: PUBLIC_URL names the QR codes' host and the
gateway's HTTPS listener, and the local certificate covers it (README "Running it")."""

import pytest
from cryptography import x509

from dev.certs import covers, ensure
from dev.layout import DEV, TEST, Layout
from dev.stack import Stack


def san(folder) -> set[str]:
    cert = x509.load_pem_x509_certificate((folder / "server.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(names.get_values_for_type(x509.DNSName)) | {
        str(ip) for ip in names.get_values_for_type(x509.IPAddress)
    }


def test_without_public_url_phones_use_the_loopback_address(monkeypatch):
    monkeypatch.delenv("PUBLIC_URL", raising=False)

    assert (DEV.public_url, DEV.listen_address) == ("https://127.0.0.1", "127.0.0.1")


@pytest.mark.parametrize(
    ("url", "public", "listen"),
    [
        ("https://192.0.2.2", "https://192.0.2.2", "192.0.2.2"),
        ("https://192.0.2.2/", "https://192.0.2.2", "192.0.2.2"),
        ("https://localhost", "https://localhost", "127.0.0.1"),
        ("https://[::1]", "https://[::1]", "[::1]"),
    ],
)
def test_the_developers_stack_takes_public_url(monkeypatch, url, public, listen):
    monkeypatch.setenv("PUBLIC_URL", url)

    assert (DEV.public_url, DEV.listen_address) == (public, listen)
    assert Stack(DEV, secret="s").env()["PUBLIC_URL"] == public
    assert TEST.public_url == f"https://{TEST.tls_host}"  # the tests' stack stays on loopback


@pytest.mark.parametrize(
    "url", ["http://192.0.2.2", "https://192.0.2.2:8443", "https://192.0.2.2/api", "192.0.2.2"]
)
def test_a_public_url_phones_cannot_use_is_refused(monkeypatch, url):
    monkeypatch.setenv("PUBLIC_URL", url)

    with pytest.raises(SystemExit, match="port 443"):
        _ = DEV.public_url


def test_an_unresolvable_public_host_is_explained(monkeypatch):
    monkeypatch.setenv("PUBLIC_URL", "https://no-such-host.invalid")

    with pytest.raises(SystemExit, match="does not resolve"):
        _ = DEV.listen_address


def test_a_public_name_that_resolves_to_loopback_is_explained(monkeypatch):
    """(Debian maps the machine's own name to 127.0.1.1: phones could not reach that.)"""
    monkeypatch.setenv("PUBLIC_URL", "https://lab-pc")
    monkeypatch.setattr("socket.gethostbyname", lambda name: "127.0.1.1")

    with pytest.raises(SystemExit, match="phones cannot reach"):
        _ = DEV.listen_address


def test_the_gateway_listens_on_the_public_address(monkeypatch, tmp_path):
    monkeypatch.setenv("PUBLIC_URL", "https://192.0.2.2")
    layout = Layout(name="public-check", base_port=28200, public_from_env=True)
    layout_dir = tmp_path / "run"
    monkeypatch.setattr(Layout, "run_dir", property(lambda self: layout_dir))

    Stack(layout, secret="s").render_gateway()

    assert "listen 192.0.2.2:443 ssl;" in (layout_dir / "nginx" / "nginx.conf").read_text()


def test_the_certificate_is_remade_only_for_a_name_it_lacks(tmp_path):
    ensure(tmp_path, extra_hosts=["lab.example"])
    first = (tmp_path / "server.pem").read_bytes()
    assert {"localhost", "127.0.0.1", "lab.example"} <= san(tmp_path)

    ensure(tmp_path, extra_hosts=["127.0.0.5"])  # already named
    assert (tmp_path / "server.pem").read_bytes() == first

    ensure(tmp_path, extra_hosts=["198.51.100.7"])
    assert (tmp_path / "server.pem").read_bytes() != first
    assert "198.51.100.7" in san(tmp_path)
    assert covers(tmp_path / "server.pem", ["localhost"], ["198.51.100.7"])
    assert not covers(tmp_path / "server.pem", ["other.example"], [])
