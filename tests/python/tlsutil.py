"""TLS test helpers: a throw-away PKI made with ``cryptography`` (a CA, a server
certificate for 127.0.0.1 and localhost, client certificates), and a Switchboard
started with every TLS listener on a free port (settings through SWITCHBOARD_*
environment variables and a config file, as an operator would give them)."""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
import tempfile
from pathlib import Path
from typing import Dict, Iterable, Optional

TLS_PORTS = ("amqps", "mqtts", "mqtt_wss", "stomps", "stomp_wss", "https", "admin_tls")
# Users of the TLS brokers: the certificate users log in with no password; `carol`
# has a password too (a certificate does not stop a client from using it).
USERS_TOML = """
[[users]]
name = "guest"
password = "guest"
tags = ["administrator"]
loopback_only = true

[[users]]
name = "alice"
password = "alice-secret"
tags = ["administrator"]

[[users]]
name = "bob.example"
password = "bob-secret"
"""


def _name(cn: Optional[str], org: str = "Switchboard tests"):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
    if cn is not None:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


class Pki:
    """A CA in ``root`` and the certificates it (or another CA) issues, as PEM files."""

    def __init__(self, root: Path, tag: str = "main"):
        from cryptography.hazmat.primitives.asymmetric import ec

        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.tag = tag
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = self._issue(_name(f"Switchboard test CA {tag}"), self.ca_key.public_key(),
                              ca=True, issuer=None)
        self.ca_file = self._write_cert(f"ca-{tag}.pem", self.ca)

    def _issue(self, subject, public_key, ca: bool = False, issuer=None,
               sans: Iterable = (), server: bool = False, client: bool = False):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509.oid import ExtendedKeyUsageOID

        now = datetime.datetime.now(datetime.timezone.utc)
        b = (x509.CertificateBuilder()
             .subject_name(subject)
             .issuer_name(subject if issuer is None else issuer.subject)
             .public_key(public_key)
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(hours=1))
             .not_valid_after(now + datetime.timedelta(days=2))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            b = b.add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        sans = list(sans)
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + \
                 ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
        if usages:
            b = b.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        return b.sign(self.ca_key, hashes.SHA256())

    def _write_cert(self, name: str, cert) -> Path:
        from cryptography.hazmat.primitives import serialization

        p = self.root / name
        p.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return p

    def _write_key(self, name: str, key) -> Path:
        from cryptography.hazmat.primitives import serialization

        p = self.root / name
        p.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
        return p

    def server(self, name: str = "server", cn: str = "localhost", client: bool = False):
        """(cert, key) for 127.0.0.1 and localhost; returns the certificate too.
        ``client``: usable as a client certificate as well (a node of a pair
        presents its own certificate to its peer's replication port)."""
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._issue(_name(cn), key.public_key(), issuer=self.ca, server=True,
                           client=client,
                           sans=[x509.DNSName("localhost"),
                                 x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        return (self._write_cert(f"{name}.pem", cert), self._write_key(f"{name}.key", key),
                cert)

    def client(self, cn: Optional[str], dns: Optional[str] = None):
        """(cert, key) of a client certificate with this CN (and DNS SAN)."""
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        sans = [x509.DNSName(dns)] if dns else []
        cert = self._issue(_name(cn), key.public_key(), issuer=self.ca, client=True, sans=sans)
        stem = f"client-{self.tag}-{cn or dns}"
        return self._write_cert(f"{stem}.pem", cert), self._write_key(f"{stem}.key", key)


def tls_env(server_cert: Path, server_key: Path, ca: Optional[Path] = None,
            verify_peer: bool = False, config: Optional[Path] = None) -> Dict[str, str]:
    """SWITCHBOARD_* settings for every TLS listener on a free port."""
    env = {f"SWITCHBOARD_{p.upper()}_PORT": "0" for p in TLS_PORTS}
    env["SWITCHBOARD_TLS__CERT"] = str(server_cert)
    env["SWITCHBOARD_TLS__KEY"] = str(server_key)
    if ca is not None:
        env["SWITCHBOARD_TLS__CA"] = str(ca)
    if verify_peer:
        env["SWITCHBOARD_TLS__FAIL_IF_NO_PEER_CERT"] = "true"
    if config is not None:
        env["SWITCHBOARD_CONFIG"] = str(config)
    return env


def users_config(root: Path) -> Path:
    p = root / "users.toml"
    p.write_text(USERS_TOML)
    return p


def client_context(ca: Path, cert: Optional[Path] = None,
                   key: Optional[Path] = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def served_certificate(addr, ca: Path):
    """The certificate a TLS listener serves now (a fresh handshake)."""
    from cryptography import x509

    ctx = client_context(ca)
    with socket.create_connection(addr, timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            der = s.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der)


def tmpdir(prefix: str = "switchboard-tls-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def has_openssl() -> bool:
    return any(os.access(os.path.join(d, "openssl"), os.X_OK)
               for d in os.environ.get("PATH", "").split(os.pathsep))
