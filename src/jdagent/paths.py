"""Where the repository and its charts are (the package is installed editable by tox)."""

from __future__ import annotations

import os
from pathlib import Path


def _find_root() -> Path:
    env = os.environ.get("JDA_REPO")
    if env:
        return Path(env).resolve()
    for start in (Path.cwd(), Path(__file__).resolve()):
        for candidate in (start, *start.parents):
            if (candidate / "charts" / "jenkins-dind-agent" / "Chart.yaml").is_file():
                return candidate
    raise RuntimeError("cannot find the jenkins-dind-agent repository; set JDA_REPO to its checkout")


REPO_ROOT = _find_root()
CHART_DIR = REPO_ROOT / "charts" / "jenkins-dind-agent"
SPINNAKER_DIR = REPO_ROOT / "charts" / "spinnaker-values"
TOOLS_DIR = Path(os.environ.get("JDA_TOOLS_DIR", REPO_ROOT / ".tools"))
ARTIFACTS_DIR = Path(os.environ.get("JDA_ARTIFACTS_DIR", REPO_ROOT / ".artifacts"))
