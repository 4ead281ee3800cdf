"""Images for the Docker tools users run in the agent pod, built here without a container registry:

- Testcontainers' reaper, Ryuk, from its upstream Go module (github.com/testcontainers/moby-ryuk) into a
  local image `jda-ryuk:<version>-<key>` (standins/ryuk/Dockerfile: the static binary on scratch).
  Testcontainers is pointed at it with RYUK_CONTAINER_IMAGE; the reaper stays on.
- `jda-jnlp-tools:<key>`: the jnlp stand-in plus Debian's python3 and testcontainers-python installed
  offline from a wheelhouse of pinned, hash-checked pure-Python wheels (standins/jnlp-tools/Dockerfile),
  downloaded once with pip into .tools/wheels/ (PyPI is the only registry it needs).

The pins and where they come from:
- testcontainers-python 4.15.0, the newest on PyPI, defaults to `testcontainers/ryuk:0.8.1`. moby-ryuk's tags
  have no "v", so the module proxy lists no versions; it serves pseudo-versions of some commits only: 0.14.0
  (b3726afd, the newest tag) and 0.12.0 are served, 0.8.1, 0.9.0, 0.10.x, 0.11.0 and 0.13.0 are refused ("not
  available"). So Ryuk is 0.14.0. It logs `msg=Started` (log/slog) where 0.8.1 printed `Started!`, the pattern
  testcontainers-python 4.15.0 names for the reaper; that pattern is never waited on (the library sets it
  with `waiting_for()` after `start()`), and the library connects to the reaper's port until it answers, so
  0.14.0 works with it (tests/docker/test_tools_in_agent.py shows it).
- The wheels: testcontainers 4.15.0 and what it requires (docker, python-dotenv, typing-extensions, urllib3,
  wrapt; docker's requests, certifi, charset-normalizer, idna), as pip resolved them for Python 3.13
  (Debian trixie's) on 2026-12-07, pure-Python wheels only, each with its sha256.

`python -m jdagent.engine.toolimages` builds (or finds) both and prints their tags; the tests build what is
missing themselves. Measured on this 2-core machine: Ryuk's Go build 61 s with an empty Go build cache (9 s
with the dind29 builds' cache warm), then cached in .tools/go/ (no time); its image 1 s; the wheelhouse 2-3 s;
the jnlp tools image 18 s (Debian's python3 and python3-venv).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker

from jdagent import gobuild
from jdagent.engine import dockerd, images
from jdagent.gobuild import GoProgram
from jdagent.paths import TOOLS_DIR

RYUK_MODULE = "github.com/testcontainers/moby-ryuk"
RYUK_TAG = "0.14.0"
RYUK_COMMIT = "b3726afd6cc2c36628abcc08e9cabac43f587384"
RYUK_VERSION = "v0.0.0-20250926081232-b3726afd6cc2"  # the pseudo-version of tag 0.14.0's commit
RYUK = GoProgram(
    name="ryuk", module=RYUK_MODULE, version=RYUK_VERSION, packages={"ryuk": RYUK_MODULE},
    source=f"testcontainers/moby-ryuk tag {RYUK_TAG} = commit {RYUK_COMMIT[:12]} (2025-09-26); the module proxy "
           "lists no versions (the tags lack a v) but serves this commit's pseudo-version",
    ldflags=("-w", "-s"),  # upstream linux/Dockerfile: CGO_ENABLED=0 go build -ldflags="-w -s" -trimpath
)
RYUK_REPO = "jda-ryuk"

# BuildKit for a docker-container builder (buildx's default image is the moving moby/buildkit:buildx-stable-1):
# v0.32.2, the BuildKit moby vendors at docker-v29.7.2 (dockerd-pin.yaml), built as upstream's Dockerfile
# builds buildkitd (CGO off, tags osusergo netgo static_build seccomp, -X version.*), with the dependency
# versions its go.mod pins; runc v1.4.3 (its Dockerfile's RUNC_VERSION) is the pinned daemon's runc build,
# installed as buildkit-runc, the executor's first candidate.
BUILDKIT_MODULE = "github.com/moby/buildkit"
BUILDKIT_VERSION = "v0.32.2"
BUILDKIT = GoProgram(
    name="buildkit", module=BUILDKIT_MODULE, version=BUILDKIT_VERSION,
    packages={"buildkitd": f"{BUILDKIT_MODULE}/cmd/buildkitd", "buildctl": f"{BUILDKIT_MODULE}/cmd/buildctl"},
    source="moby/moby docker-v29.7.2 vendor.mod github.com/moby/buildkit v0.32.2; moby/buildkit v0.32.2 Dockerfile "
           "(buildkitd stage: tags, ldflags; RUNC_VERSION v1.4.3)",
    tags=("osusergo", "netgo", "static_build", "seccomp"),
    ldflags=("-s", "-w", f"-X {BUILDKIT_MODULE}/version.Version={BUILDKIT_VERSION}",
             f"-X {BUILDKIT_MODULE}/version.Package={BUILDKIT_MODULE}"),
    requires_file="go.mod",
)
BUILDKIT_REPO = "jda-buildkit"

TESTCONTAINERS = "4.15.0"
PYTHON_VERSION = "3.13"  # Debian trixie's python3, what the jnlp stand-in installs
WHEELS_DIR = TOOLS_DIR / "wheels"
JNLP_TOOLS_REPO = "jda-jnlp-tools"
VENV_PYTHON = "/opt/testcontainers/bin/python"


@dataclass(frozen=True)
class Wheel:
    name: str
    version: str
    sha256: str  # of the py3-none-any wheel pip picks for the pins below


WHEELS = (
    Wheel("testcontainers", TESTCONTAINERS, "8796c14e76604031ad39cf0ed3b8e9806283a1fbf5270965c2b1c594caa31b74"),
    Wheel("docker", "7.2.0", "a3f45fdeb9165e2d25d9a1d02ddf3bc70fb572cf5ebbf9b58558c22caf29b71f"),
    Wheel("python-dotenv", "1.2.4", "42269a8a5b3fd54ffa6f3d84b18abed50064717576b4ecf03dc4a55d8aa04fdc"),
    Wheel("typing-extensions", "4.16.0", "481caa481374e813c1b176ada14e97f1f67a4539ce9cfeb3f350d78d6370c2e8"),
    Wheel("urllib3", "2.8.0", "0cf3cae568d36aa9576b28dfb35f11328f1cb974ca7647d9475ebb86c75ac6e3"),
    Wheel("wrapt", "2.5.2", "61eb54e9540ea522c2c4752a57549a83d3c67e6704ed708403d28e067aaf90f0"),
    Wheel("requests", "2.34.2", "2a0d60c172f83ac6ab31e4554906c0f3b3588d37b5cb939b1c061f4907e278e0"),
    Wheel("certifi", "2026.10.19.post1", "1324c476b4811eff41a8bc2122cd0bbd4d9c7234c725446d99ab1612b3a7fdd2"),
    Wheel("charset-normalizer", "3.5.3", "96e268b0cbda016ac519513294fcd17032264085b600abaac58b93049477e132"),
    Wheel("idna", "3.21", "387ab0bbea1ee7a196ea5b24eb007bad0242cc3127fe96713939942bc9e720d7"),
)
STAMP = ".complete"


def log(message: str) -> None:
    print(f"[jda-tools] {message}", file=sys.stderr, flush=True)


def requirements() -> str:
    """The wheelhouse's requirements.txt: every wheel pinned exactly, with its hash."""
    return "".join(f"{w.name}=={w.version} --hash=sha256:{w.sha256}\n" for w in WHEELS)


def wheelhouse_dir() -> Path:
    key = hashlib.sha256(f"{PYTHON_VERSION}\n{requirements()}".encode()).hexdigest()[:12]
    return WHEELS_DIR / f"testcontainers-{TESTCONTAINERS}-{key}"


def ensure_wheelhouse() -> Path:
    """The folder holding the pinned wheels and requirements.txt, downloaded (pip, hash-checked) if missing."""
    out = wheelhouse_dir()
    if (out / STAMP).is_file():
        return out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / "requirements.txt").write_text(requirements())
    log(f"downloading testcontainers {TESTCONTAINERS} and {len(WHEELS) - 1} dependencies into {out}")
    started = time.monotonic()
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
           "--only-binary=:all:", "--platform", "any", "--implementation", "py", "--abi", "none",
           "--python-version", PYTHON_VERSION, "--require-hashes", "-r", str(out / "requirements.txt"),
           "-d", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` exited {proc.returncode}:\n{(proc.stderr or proc.stdout)[-3000:]}")
    found = sorted(p.name for p in out.glob("*.whl"))
    if len(found) != len(WHEELS):
        raise RuntimeError(f"expected {len(WHEELS)} wheels in {out}, found {found}")
    (out / STAMP).write_text(f"{time.monotonic() - started:.1f}\n")
    log(f"wheelhouse ready in {time.monotonic() - started:.0f} s: {', '.join(found)}")
    return out


def _context_key(context: Path, *parts: str) -> str:
    digest = hashlib.sha256("\n".join(parts).encode())
    for file in sorted(p for p in context.rglob("*") if p.is_file()):
        digest.update(file.relative_to(context).as_posix().encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


def ensure_ryuk(cli: docker.DockerClient) -> str:
    """Tag of the local Ryuk image, its Go build (cached in .tools/go/) and the image made if missing."""
    folder = gobuild.build(RYUK)  # the cached build when this pin's is there
    context = images._context("ryuk")
    tag = f"{RYUK_REPO}:{RYUK_TAG}-{_context_key(context, folder.name)}"
    if images._exists(cli, tag):
        return tag
    log(f"Ryuk {RYUK_TAG} built in {gobuild.built_seconds(folder)} s ({folder}); making {tag}")
    with tempfile.TemporaryDirectory(prefix="jda-ryuk-") as tmp:
        root = Path(tmp)
        shutil.copy2(context / "Dockerfile", root / "Dockerfile")
        images._link_or_copy(folder / "ryuk", root / "ryuk")
        shutil.copy2(folder / "LICENSES.txt", root / "LICENSES.txt")
        images._build(cli, root, tag, {})
    return tag


def ensure_buildkit(cli: docker.DockerClient) -> str:
    """Tag of the local BuildKit image (buildkitd, buildctl, buildkit-runc on the Debian base), its Go build
    (cached in .tools/go/) and the pinned daemon's runc build made if missing."""
    folder = gobuild.build(BUILDKIT)
    runc = next(p for p in dockerd.PROGRAMS if p.name == "dind29-runc")
    runc_folder = gobuild.build(runc)
    base = images.ensure_base(cli)
    context = images._context("buildkit")
    tag = (f"{BUILDKIT_REPO}:{BUILDKIT_VERSION.lstrip('v')}-"
           f"{_context_key(context, folder.name, runc_folder.name, cli.images.get(base).id)}")
    if images._exists(cli, tag):
        return tag
    log(f"BuildKit {BUILDKIT_VERSION} built in {gobuild.built_seconds(folder)} s ({folder}); making {tag}")
    with tempfile.TemporaryDirectory(prefix="jda-buildkit-") as tmp:
        root = Path(tmp)
        shutil.copy2(context / "Dockerfile", root / "Dockerfile")
        for name in ("buildkitd", "buildctl"):
            images._link_or_copy(folder / name, root / name)
        images._link_or_copy(runc_folder / "runc", root / "buildkit-runc")
        shutil.copy2(folder / "LICENSES.txt", root / "LICENSES-buildkit.txt")
        shutil.copy2(runc_folder / "LICENSES.txt", root / "LICENSES-runc.txt")
        images._build(cli, root, tag, {"BASE_IMAGE": base})
    return tag


def ensure_jnlp_tools(cli: docker.DockerClient, jnlp: str | None = None) -> str:
    """Tag of the jnlp stand-in (or `jnlp`) with python3 and testcontainers-python, built if missing."""
    base = jnlp or images.ensure(cli, "jnlp")
    context = images._context("jnlp-tools")
    tag = f"{JNLP_TOOLS_REPO}:{_context_key(context, cli.images.get(base).id, requirements())}"
    if images._exists(cli, tag):
        return tag
    wheels = ensure_wheelhouse()
    with tempfile.TemporaryDirectory(prefix="jda-jnlp-tools-") as tmp:
        root = Path(tmp)
        shutil.copy2(context / "Dockerfile", root / "Dockerfile")
        (root / "wheels").mkdir()
        for file in [*wheels.glob("*.whl"), wheels / "requirements.txt"]:
            shutil.copy2(file, root / "wheels" / file.name)
        images._build(cli, root, tag, {"JNLP_IMAGE": base})
    return tag


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=f"Build (or reuse) Ryuk {RYUK_TAG} from its Go module and the jnlp "
                                                 f"stand-in with testcontainers-python {TESTCONTAINERS}.")
    parser.parse_args(argv)
    cli = images.client()
    started = time.monotonic()
    print(f"ryuk={ensure_ryuk(cli)}")
    print(f"jnlp-tools={ensure_jnlp_tools(cli)}")
    print(f"buildkit={ensure_buildkit(cli)}")
    log(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
