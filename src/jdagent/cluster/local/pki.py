"""The local cluster's certificates: one CA, a serving certificate for the API server and the kubelet,
a client certificate per component (its CN and O are its Kubernetes user and groups), and the
service-account signing key. Written once per cluster into its state folder, keys 0600."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 30


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.write_bytes(data)
    path.chmod(0o600 if private else 0o644)


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    return x509.Name([*(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class Authority:
    """A CA in `folder` (ca.crt, ca.key) that issues the cluster's certificates into the same folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.cert_path, key_path = folder / "ca.crt", folder / "ca.key"
        now = datetime.datetime.now(datetime.UTC)
        if not key_path.exists():
            key = _key()
            cert = (x509.CertificateBuilder().subject_name(_name("jda-local-ca")).issuer_name(_name("jda-local-ca"))
                    .public_key(key.public_key()).serial_number(x509.random_serial_number())
                    .not_valid_before(now - datetime.timedelta(minutes=5))
                    .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
                    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                    .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                 content_commitment=False, key_encipherment=False,
                                                 data_encipherment=False, key_agreement=False,
                                                 encipher_only=False, decipher_only=False), critical=True)
                    .sign(key, hashes.SHA256()))
            _write(key_path, _pem_key(key), private=True)
            _write(self.cert_path, cert.public_bytes(serialization.Encoding.PEM))
        self.key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        self.cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())

    def issue(self, stem: str, cn: str, orgs: tuple[str, ...] = (), server: bool = False,
              dns: tuple[str, ...] = (), ips: tuple[str, ...] = ()) -> Pair:
        pair = Pair(self.folder / f"{stem}.crt", self.folder / f"{stem}.key")
        if pair.cert.exists() and pair.key.exists():
            return pair
        key = _key()
        now = datetime.datetime.now(datetime.UTC)
        usage = [ExtendedKeyUsageOID.SERVER_AUTH] if server else [ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = (x509.CertificateBuilder().subject_name(_name(cn, orgs)).issuer_name(self.cert.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage(usage), critical=False))
        if server:
            names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
            names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        assert isinstance(self.key, ec.EllipticCurvePrivateKey)
        cert = builder.sign(self.key, hashes.SHA256())
        _write(pair.key, _pem_key(key), private=True)
        _write(pair.cert, cert.public_bytes(serialization.Encoding.PEM))
        return pair

    def service_account_keys(self) -> Pair:
        """RSA, as every service-account token verifier accepts it (sa.pub, sa.key)."""
        pair = Pair(self.folder / "sa.pub", self.folder / "sa.key")
        if not pair.key.exists():
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            _write(pair.key, _pem_key(key), private=True)
            _write(pair.cert, key.public_key().public_bytes(serialization.Encoding.PEM,
                                                            serialization.PublicFormat.SubjectPublicKeyInfo))
        return pair


def kubeconfig(server: str, ca: Path, client: Pair, user: str) -> str:
    """A kubeconfig (YAML) with absolute paths to the CA and the client pair."""
    return f"""apiVersion: v1
kind: Config
clusters:
- name: jda-local
  cluster: {{server: "{server}", certificate-authority: "{ca}"}}
users:
- name: {user}
  user: {{client-certificate: "{client.cert}", client-key: "{client.key}"}}
contexts:
- name: jda-local
  context: {{cluster: jda-local, user: {user}}}
current-context: jda-local
"""
