"""The chart's pinned Docker daemon (docker:29.7.2-dind) built from its Go modules, for the dind29 stand-in.

The module proxy does not serve moby at 29.7.2: github.com/moby/moby/v2 v2.0.0-beta.21 is exactly the
docker-v29.7.1 commit (c5b8ce92), beta.22 and later are 29.8.x and newer, and the pseudo-version of the
29.7.2 commit (6a43e3d5) is refused. So dockerd and docker-proxy are 29.7.1, the release the pinned one
patches (tests/unit/data/upstream/dockerd-pin.yaml records what was asked, what was answered and what
29.7.2 adds). Everything else is at the exact version the pinned image ships: containerd and runc as moby's
Dockerfile pins them at docker-v29.7.2, the docker CLI v29.7.2 (docker/cli publishes no go.mod: its
vendor.mod is required as is), and, as CLI plugins, buildx and compose at the versions the image's digest
carries (tests/unit/data/upstream/versions.yaml). Build flags follow each project's own release build
(moby hack/make.sh and hack/make/.binary, containerd's and runc's Makefiles with STATIC=1 / `static`,
docker/cli scripts/build/.variables, buildx's and compose's Dockerfiles), all static.

`python -m jdagent.engine.dockerd [--no-plugins]` builds them into .tools/go/ (once per pin, with progress
lines and LICENSES.txt, see jdagent.gobuild); jdagent.engine.images puts them into `jda-standin-dind29`.
Measured on this 2-core machine under other load: cold (empty Go build cache) 13.7 minutes, dockerd 363 s,
the CLI 155 s, buildx 135 s, containerd 91 s, compose 38 s, runc 33 s, the shim 4 s, docker-proxy 2 s; with the
Go build cache warm and .tools/go/ empty (a fresh clone) 1.4 minutes, mostly linking (dockerd 28 s); found in
.tools/go/: no time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from jdagent import gobuild
from jdagent.gobuild import GoProgram

# the pinned image (charts/jenkins-dind-agent/values.yaml agent.dind.image.tag)
PINNED_IMAGE = "docker:29.7.2-dind"

MOBY_MODULE = "github.com/moby/moby/v2"
MOBY = "v2.0.0-beta.21"               # = docker-v29.7.1; 29.7.2 is not served (module docstring)
DOCKER_VERSION = "29.7.1"
MOBY_COMMIT = "c5b8ce9274b5c00cb1f8287c8e258edc1f01176d"
MOBY_TIME = "2026-07-31T17:03:30.000000000+00:00"  # the module's publication time (go mod download -json)
CONTAINERD = "v2.3.3"
CONTAINERD_COMMIT = "aad11006b869517fcd3009450b6f82da282e1a9b"
RUNC = "v1.4.3"
RUNC_DESCRIBE = "v1.4.3-0-gbb14dabe"    # runc's Makefile: git describe --dirty --long --always
CLI_MODULE = "github.com/docker/cli"
CLI = "v29.7.2+incompatible"
CLI_COMMIT = "a7dcaa6"
CLI_TIME = "2026-08-05T17:34:15Z"
BUILDX = "v0.36.1"
COMPOSE = "v5.5.0"
PLATFORM = "Docker Engine - Community"

SOURCES = {
    "moby": "moby/moby docker-v29.7.2 is the pinned image's dockerd; the proxy's newest module at or below it is "
            "github.com/moby/moby/v2 v2.0.0-beta.21 = docker-v29.7.1 (commit c5b8ce92)",
    "containerd": "moby/moby docker-v29.7.2 Dockerfile ARG CONTAINERD_VERSION",
    "runc": "moby/moby docker-v29.7.2 Dockerfile ARG RUNC_VERSION",
    "cli": "docker-library/docker 29/cli/Dockerfile DOCKER_VERSION 29.7.2 (the static CLI of docker-29.7.2.tgz)",
    "buildx": "tests/unit/data/upstream/versions.yaml dind.buildx (the pinned digest's Dockerfile history)",
    "compose": "tests/unit/data/upstream/versions.yaml dind.compose (the pinned digest's Dockerfile history)",
}

_DV = f"{MOBY_MODULE}/dockerversion"
# hack/make.sh (LDFLAGS -w, LDFLAGS_STATIC, tags) and hack/make/.go-autogen (the version variables)
MOBY_LDFLAGS = ("-w", f"-X {_DV}.Version={DOCKER_VERSION}", f"-X {_DV}.GitCommit={MOBY_COMMIT[:7]}",
                f"-X {_DV}.BuildTime={MOBY_TIME}", f"-X '{_DV}.PlatformName={PLATFORM}'",
                f"-X '{_DV}.DefaultProductLicense=Community Engine'", "-extldflags -static")
MOBY_TAGS = ("netgo", "osusergo", "static_build", "nri_no_wasm")

_CD = "github.com/containerd/containerd/v2"
CONTAINERD_LDFLAGS = (f"-X {_CD}/version.Version={CONTAINERD}", f"-X {_CD}/version.Revision={CONTAINERD_COMMIT}",
                      f"-X {_CD}/version.Package={_CD}", "-extldflags -static")
CONTAINERD_TAGS = ("urfave_cli_no_docs", "osusergo", "netgo", "static_build")

_CV = f"{CLI_MODULE}/cli/version"
CLI_LDFLAGS = (f"-X {_CV}.GitCommit={CLI_COMMIT}", f"-X {_CV}.BuildTime={CLI_TIME}",
               f"-X {_CV}.Version={CLI.split('+')[0].lstrip('v')}", f"-X '{_CV}.PlatformName={PLATFORM}'",
               "-linkmode external -extldflags -static")

_BX = "github.com/docker/buildx"
COMPOSE_MODULE = "github.com/docker/compose/v5"

PROGRAMS = (
    GoProgram(name="dind29-dockerd", module=MOBY_MODULE, version=MOBY, source=SOURCES["moby"],
              packages={"dockerd": f"{MOBY_MODULE}/cmd/dockerd"}, tags=MOBY_TAGS, ldflags=MOBY_LDFLAGS, cgo=True,
              module_files=("hack/dind",)),
    GoProgram(name="dind29-docker-proxy", module=MOBY_MODULE, version=MOBY, source=SOURCES["moby"],
              packages={"docker-proxy": f"{MOBY_MODULE}/cmd/docker-proxy"}, tags=MOBY_TAGS, ldflags=MOBY_LDFLAGS),
    GoProgram(name="dind29-containerd", module=_CD, version=CONTAINERD, source=SOURCES["containerd"],
              packages={"containerd": f"{_CD}/cmd/containerd", "ctr": f"{_CD}/cmd/ctr"},
              tags=CONTAINERD_TAGS, ldflags=CONTAINERD_LDFLAGS),
    GoProgram(name="dind29-containerd-shim", module=_CD, version=CONTAINERD, source=SOURCES["containerd"],
              packages={"containerd-shim-runc-v2": f"{_CD}/cmd/containerd-shim-runc-v2"},
              tags=(*CONTAINERD_TAGS, "no_grpc"), ldflags=CONTAINERD_LDFLAGS),
    GoProgram(name="dind29-runc", module="github.com/opencontainers/runc", version=RUNC, source=SOURCES["runc"],
              packages={"runc": "github.com/opencontainers/runc"},
              tags=("seccomp", "urfave_cli_no_docs", "netgo", "osusergo"), cgo=True, build_flags=("-buildmode=pie",),
              ldflags=(f"-X main.gitCommit={RUNC_DESCRIBE}", "-linkmode external -extldflags -static-pie")),
    GoProgram(name="dind29-docker-cli", module=CLI_MODULE, version=CLI, source=SOURCES["cli"],
              packages={"docker": f"{CLI_MODULE}/cmd/docker"}, tags=("grpcnotrace", "osusergo", "netgo"),
              ldflags=CLI_LDFLAGS, cgo=True, build_flags=("-buildmode=pie",), requires_file="vendor.mod"),
)

# The CLI plugins of the pinned image (about 3 minutes of the cold build). Built by default; a stand-in made
# from a build without them (--no-plugins) carries Debian's docker-buildx 0.13.1 instead.
PLUGINS = (
    GoProgram(name="dind29-buildx", module=_BX, version=BUILDX, source=SOURCES["buildx"],
              packages={"docker-buildx": f"{_BX}/cmd/buildx"},
              ldflags=("-s", "-w", f"-X {_BX}/version.Version={BUILDX}", f"-X {_BX}/version.Package={_BX}")),
    GoProgram(name="dind29-compose", module=COMPOSE_MODULE, version=COMPOSE, source=SOURCES["compose"],
              packages={"docker-compose": f"{COMPOSE_MODULE}/cmd"}, tags=("e2e",),
              ldflags=("-w", f"-X {COMPOSE_MODULE}/internal.Version={COMPOSE}")),
)


def log(message: str) -> None:
    print(f"[jda-dind29] {message}", file=sys.stderr, flush=True)


def built(programs: tuple[GoProgram, ...] = PROGRAMS) -> dict[str, Path] | None:
    """Output folders of the programs when every one is already built for its pin, else None (also
    without a Go toolchain: nothing can have been built for this Go then)."""
    try:
        folders = {p.name: gobuild.output_dir(p) for p in programs}
    except gobuild.GoBuildError:
        return None
    return folders if all((f / gobuild.STAMP).is_file() for f in folders.values()) else None


def build(plugins: bool = True, force: bool = False) -> dict[str, Path]:
    """Build (or find cached) every binary of the stand-in; with `plugins` also buildx and compose."""
    programs = PROGRAMS + (PLUGINS if plugins else ())
    started = time.monotonic()
    out = {}
    for program in programs:
        folder = gobuild.build(program, force)
        out[program.name] = folder
        log(f"{program.name} {program.version}: {folder} (built in {gobuild.built_seconds(folder)} s)")
    log(f"all {len(programs)} programs ready in {time.monotonic() - started:.0f} s")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=f"Build the pinned dockerd ({PINNED_IMAGE}: {DOCKER_VERSION} "
                                                 "from the module proxy), containerd, runc and the docker CLI.")
    parser.add_argument("--no-plugins", dest="plugins", action="store_false",
                        help=f"leave out buildx {BUILDX} and compose {COMPOSE}")
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    args = parser.parse_args(argv)
    for name, folder in build(args.plugins, args.force).items():
        print(f"{name}={folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
