"""chart-testing (`ct`), built from its Go module at the pin in jdagent.cluster.local.pins, run the way
chart repositories run it: `ct lint` (yamale on Chart.yaml, yamllint, `helm lint` per ci/*-values.yaml)
and `ct install` (a `helm install --wait` and a `helm test` per ci/*-values.yaml) against a cluster.

Two lint checks need what these machines do not have, and are switched off by name: maintainers are
checked against the GitHub API, and the version increment against a git remote's target branch.
The yamale schema and the yamllint rules are ct's own defaults, copied from the module at build time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from jdagent import gobuild, tools
from jdagent.cluster.local import pins
from jdagent.paths import CHART_DIR, REPO_ROOT

PROGRAM = next(p for p in pins.TOOLS if p.name == "chart-testing")
CHART = str(CHART_DIR.relative_to(REPO_ROOT))
OFFLINE = {"validate-maintainers": "asks the GitHub API about every maintainer",
           "check-version-increment": "compares with the target branch of a git remote"}


def build() -> Path:
    """The folder with `ct` and its etc/ defaults (built once per pin)."""
    return gobuild.build(PROGRAM)


def lint_args(folder: Path, chart: str = CHART) -> list[str]:
    etc = folder / "etc"
    return ["lint", f"--charts={chart}", f"--chart-yaml-schema={etc / 'chart_schema.yaml'}",
            f"--lint-conf={etc / 'lintconf.yaml'}", *(f"--{flag}=false" for flag in OFFLINE)]


def install_args(namespace: str, values: Path, timeout_s: int, chart: str = CHART,
                 keep: bool = False) -> list[str]:
    """One release per ci/*-values.yaml in `namespace`; `values` is applied after each ci file. With
    `keep`, ct leaves the release in place (for reading the cluster's answers afterwards)."""
    return ["install", f"--charts={chart}", f"--namespace={namespace}",
            f"--helm-extra-set-args=--values={values}", f"--helm-extra-args=--timeout={timeout_s}s",
            *(["--skip-clean-up=true"] if keep else [])]


def environment(folder: Path, kubeconfig: Path, helm_version: str = "3") -> dict[str, str]:
    """ct runs `helm`, `kubectl`, `yamllint` and `yamale` from PATH: the pinned helm and kubectl first,
    then this Python's scripts folder (yamllint and yamale are the test extras)."""
    helm = tools.find_helm(helm_version)
    folders = [helm.parent, tools.find_kubectl().parent]
    yamllint = shutil.which("yamllint")
    if yamllint:
        folders.append(Path(yamllint).parent)
    link_dir = folder / f"helm{helm_version}"  # ct runs the name `helm`
    link_dir.mkdir(exist_ok=True)
    link = link_dir / "helm"
    if not link.exists():
        link.symlink_to(helm)
    path = ":".join(str(p) for p in [link_dir, *folders]) + ":" + os.environ.get("PATH", "/usr/bin:/bin")
    return {**os.environ, "PATH": path, "KUBECONFIG": str(kubeconfig), "HOME": os.environ.get("HOME", "/root")}


def run(folder: Path, args: list[str], env: dict[str, str], timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(folder / "ct"), *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
