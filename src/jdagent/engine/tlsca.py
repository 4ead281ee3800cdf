"""A throw-away certificate authority for tests: a CA and a server certificate it signs (openssl CLI),
so a registry the tests start can serve TLS that only pods given the CA trust."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServerCert:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {proc.stderr.strip()}")


def issue(dns_names: list[str], ips: list[str] = (), days: int = 2) -> ServerCert:  # type: ignore[assignment]
    """A new CA and a server certificate for these names and addresses, signed by it."""
    if shutil.which("openssl") is None:
        raise RuntimeError("openssl is missing (apt-get install openssl)")
    with tempfile.TemporaryDirectory(prefix="jda-ca-") as tmp:
        d = Path(tmp)
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
                 "-days", str(days), "-subj", "/CN=jenkins-dind-agent test CA", cwd=d)
        san = ",".join([*(f"DNS:{n}" for n in dns_names), *(f"IP:{i}" for i in ips)])
        (d / "ext.cnf").write_text(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
                 "-subj", f"/CN={dns_names[0]}", cwd=d)
        _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", "server.pem", "-days", str(days), "-extfile", "ext.cnf", cwd=d)
        return ServerCert((d / "ca.pem").read_bytes(), (d / "server.pem").read_bytes(),
                          (d / "server.key").read_bytes())
