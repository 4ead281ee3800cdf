"""A real registry (Debian's docker-registry in a container the caller starts), reachable by the host
over a loopback-published port and by pods at the container's own address."""

from __future__ import annotations

import base64
import io
import json
import re
import ssl
import tarfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

import docker
from docker.models.containers import Container

from jdagent.engine.podrun import dockerconfigjson, owner_labels
from jdagent.engine.tlsca import ServerCert


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()

USER, PASSWORD = "jda", "jda-test-only"  # baked into the stand-in registry image; test-only
MANIFEST_TYPES = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
])


# distribution's access log: ... "GET /v2/library/busybox/manifests/1.37.0 HTTP/1.1" 200 ...
ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<path>/v2/\S*) HTTP/[0-9.]+" (?P<status>\d{3})')


@dataclass
class Registry:
    container: Container
    host_port: int
    address: str  # host:port as a pod sees it
    tls: ServerCert | None = None

    @property
    def local_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.host_port}"

    def _context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cadata=self.tls.ca_pem.decode()) if self.tls else None

    def dockerconfigjson(self) -> bytes:
        return dockerconfigjson(self.address, USER, PASSWORD)

    def request(self, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(f"{self.local_url}{path}", method=method)
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())
        req.add_header("Accept", MANIFEST_TYPES)
        try:
            with urllib.request.urlopen(req, timeout=10, context=self._context()) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def manifest(self, repository: str, reference: str) -> tuple[str, dict[str, Any]]:
        """(digest, manifest) of repository:reference; raises LookupError if absent."""
        status, headers, body = self.request(f"/v2/{repository}/manifests/{reference}")
        if status != 200:
            raise LookupError(f"{repository}@{reference}: HTTP {status} {body[:200]!r}")
        return headers.get("Docker-Content-Digest", ""), json.loads(body)

    def _settled_log(self, quiet_s: float = 0.5, deadline_s: float = 10) -> str:
        """The container's log once it stopped growing: Docker copies a running container's output to
        its log asynchronously, so a request served a moment ago may not be in it yet."""
        text = self.container.logs().decode(errors="replace")
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            time.sleep(quiet_s)
            again = self.container.logs().decode(errors="replace")
            if again == text:
                break
            text = again
        return text

    def served(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request in the registry's access log."""
        out = []
        for line in self._settled_log().splitlines():
            match = ACCESS.search(line)
            if match:
                out.append((match["method"], match["path"], int(match["status"])))
        return out

    def gets_since(self, since: int) -> dict[str, Any]:
        """Successful GETs served after the first `since` requests: the manifest count (what Docker Hub
        counts as pulls) and the count per blob."""
        served = self.served()[since:]
        manifests = sum(1 for m, p, s in served if m == "GET" and "/manifests/" in p and s == 200)
        blobs: dict[str, int] = {}
        for method, path, status in served:
            if method == "GET" and "/blobs/" in path and status == 200:
                blobs[path] = blobs.get(path, 0) + 1
        return {"manifests": manifests, "blobs": blobs}

    def stop(self) -> None:
        self.container.remove(force=True, v=True)


def wait_http(url: str, deadline_s: float = 60) -> None:
    """Until `url` answers 200 (no proxies: only loopback and containers started here are asked)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with opener.open(url, timeout=3) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {deadline_s:.0f} s")
        time.sleep(0.3)


def seed(client: docker.DockerClient, reg: Registry, image: str, repository: str, tag: str) -> str:
    """Push a local image into the registry as repository:tag; returns the name pods use."""
    push_to_loopback(client, image, reg.host_port, repository, tag)
    return f"{reg.address}/{repository}:{tag}"


def push_to_loopback(client: docker.DockerClient, image: str, port: int, repository: str, tag: str) -> None:
    """Push a local image to a registry published on 127.0.0.1:port (plain HTTP: the engine allows
    loopback registries without TLS) under a temporary tag, removed afterwards."""
    target = f"127.0.0.1:{port}/{repository}"
    client.images.get(image).tag(target, tag)
    try:
        for line in client.images.push(target, tag, stream=True, decode=True):
            if "error" in line:
                raise RuntimeError(f"pushing {image} to {target}:{tag} failed: {line['error']}")
    finally:
        client.images.remove(f"{target}:{tag}")


def start(client: docker.DockerClient, image: str, run_id: str = "registry", auth: bool = True,
          tls: ServerCert | None = None) -> Registry:
    """Start the registry image, published on 127.0.0.1 only, and wait until it answers.
    auth=False serves without credentials (a source that fresh dockerds pull base images from);
    tls serves HTTPS with that certificate (a pod trusts it only when given its CA)."""
    config = "config.yml" if auth else "config-open.yml"
    environment = {}
    if tls is not None:
        environment = {"REGISTRY_HTTP_TLS_CERTIFICATE": "/etc/docker/registry/tls/cert.pem",
                       "REGISTRY_HTTP_TLS_KEY": "/etc/docker/registry/tls/key.pem"}
    container = client.containers.create(
        image, command=["/usr/bin/docker-registry", "serve", f"/etc/docker/registry/{config}"],
        labels=owner_labels(run_id), ports={"5000/tcp": ("127.0.0.1", None)}, environment=environment,
        name=f"jda-registry-{run_id}-{'auth' if auth else 'open'}{'-tls' if tls else ''}-{uuid.uuid4().hex[:6]}",
    )
    if tls is not None:
        container.put_archive("/etc/docker/registry", _tar({"tls/cert.pem": tls.cert_pem, "tls/key.pem": tls.key_pem}))
    container.start()
    deadline = time.monotonic() + 30
    while True:
        container.reload()
        ports = container.attrs["NetworkSettings"]["Ports"].get("5000/tcp")
        if ports:
            registry = Registry(container, int(ports[0]["HostPort"]),
                                f"{container.attrs['NetworkSettings']['IPAddress']}:5000", tls=tls)
            try:
                status, _, _ = registry.request("/v2/")
                if status in (200, 401):
                    return registry
            except (urllib.error.URLError, ConnectionError):
                pass
        if time.monotonic() > deadline:
            logs = container.logs().decode(errors="replace")
            container.remove(force=True)
            raise RuntimeError(f"registry did not answer within 30 s:\n{logs[-2000:]}")
        time.sleep(0.2)
