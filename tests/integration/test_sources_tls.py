"""A repository behind HTTPS with a private CA (catalog/sources/http.py): trusted with the repository's
``ca_certificate``, refused with a clear reason without it, and refused when the name does not match
the certificate."""

from __future__ import annotations

import datetime
import ipaddress
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from catalog import sources
from catalog.models import Repository
from tests.support.helm_charts import ChartRepository


def _certificate(subject: str, key, issuer_name, issuer_key, *, ca: bool, ip: str | None = None):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer_name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture
def tls_chart_repo(tmp_path):
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("test CA", ca_key, None, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _certificate("charts", key, ca.subject, ca_key, ca=False, ip="127.0.0.1")
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "key.pem")
    repo = ChartRepository(tmp_path / "charts").start()
    (repo.directory / "index.yaml").write_text("apiVersion: v1\nentries: {}\n")
    repo._server.socket = context.wrap_socket(repo._server.socket, server_side=True)  # HTTPS from now on
    try:
        yield repo, ca.public_bytes(serialization.Encoding.PEM).decode()
    finally:
        repo.stop()


def test_a_private_ca(tls_chart_repo):
    repo, ca_pem = tls_chart_repo
    url = f"https://127.0.0.1:{repo.port}"
    trusted = Repository(kind="helm", url=url, name="tls", ca_certificate=ca_pem)
    assert sources.check(trusted) == (True, "reached: index.yaml lists 0 charts")

    untrusted = Repository(kind="helm", url=url, name="tls")
    ok, message = sources.check(untrusted)
    assert not ok and message.endswith(
        "TLS: the server's certificate is not trusted (add the CA certificate of its issuer)"
    )
    wrong_name = Repository(
        kind="helm", url=f"https://localhost:{repo.port}", name="tls", ca_certificate=ca_pem
    )
    ok, message = sources.check(wrong_name)
    assert not ok and message.endswith("TLS: the server's certificate is not valid for this host name")
    plain = Repository(kind="helm", url=f"http://127.0.0.1:{repo.port}", name="tls")
    assert sources.check(plain) == (
        False,
        f"Helm repository {plain.url} ({plain.url}/index.yaml): the server closed the connection",
    )
