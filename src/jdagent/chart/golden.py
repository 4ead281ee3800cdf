"""Golden renders of the GitOps overlays (deploy/values/jenkins-*.yaml): what Argo CD and Flux apply,
byte for byte. tests/unit/test_gitops.py compares a fresh render with these files, so anything that
makes a render depend on the time, on randomness or on the cluster shows up as a diff.

    python -m jdagent.chart.golden --write     # after an intended template change; review the diff

Renders use the pinned helm 4, release "ci", namespace "ci" and Kubernetes 1.33.0.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from jdagent.chart.render import render
from jdagent.paths import REPO_ROOT

GOLDEN_DIR = REPO_ROOT / "tests" / "unit" / "data" / "golden"
KUBE_VERSION = "1.33.0"


def overlays() -> list[Path]:
    return sorted((REPO_ROOT / "deploy" / "values").glob("jenkins-*.yaml"))


def golden_path(values: Path) -> Path:
    return GOLDEN_DIR / f"{values.stem}.yaml"


def fresh(values: Path) -> str:
    return render(values=values, kube_version=KUBE_VERSION, helm="4", cache=False).text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="rewrite the golden files")
    args = parser.parse_args(argv)
    changed = 0
    for values in overlays():
        text, path = fresh(values), golden_path(values)
        old = path.read_text() if path.is_file() else ""
        if text == old:
            print(f"{path.relative_to(REPO_ROOT)}: unchanged")
            continue
        changed += 1
        diff = difflib.unified_diff(old.splitlines(), text.splitlines(), str(path), "fresh render", lineterm="", n=1)
        print("\n".join(list(diff)[:60]))
        if args.write:
            GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"{path.relative_to(REPO_ROOT)}: written")
    return 0 if args.write or not changed else 1


if __name__ == "__main__":
    sys.exit(main())
