"""How long the unit tier takes: `tox -e unit` run --runs times, wall clock, median reported.

`--ref REF` measures another commit the same way, in a temporary git worktree with its own tox
environment, so a before/after pair comes from one machine in one sitting:

    python -m jdagent.unitbench --runs 3                 # this checkout
    python -m jdagent.unitbench --runs 3 --ref bdb1efb   # an earlier commit

The first run of a fresh checkout also builds its tox environment; that time is tox's `setup` and is
not counted (the figure is tox's own `cmd` total, the pytest run). Results go to
.artifacts/bench/unit-<label>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jdagent.paths import REPO_ROOT

# tox's summary line: "  unit: OK (187.39=setup[12.92]+cmd[0.33,174.14] seconds)"
TOX_SUMMARY = re.compile(r"unit: (?P<status>OK|FAIL)\S* \((?P<total>[\d.]+)=setup\[[\d.]+\]\+cmd\[(?P<cmd>[\d.,]+)\]")
PASSED = re.compile(r"(?P<n>\d+) passed")


def run_once(checkout: Path, env: dict[str, str], timeout: float) -> dict[str, float | int | str]:
    started = time.monotonic()
    proc = subprocess.run(["tox", "-e", "unit", "--", "-q", "-p", "no:cacheprovider"], cwd=checkout, env=env,
                          capture_output=True, text=True, timeout=timeout)
    wall = time.monotonic() - started
    out = proc.stdout + proc.stderr
    summary = TOX_SUMMARY.search(out)
    passed = PASSED.findall(out)
    if proc.returncode != 0 or summary is None or not passed:
        tail = "\n".join(out.strip().splitlines()[-15:])
        raise SystemExit(f"tox -e unit failed in {checkout} (exit {proc.returncode}):\n{tail}")
    pytest_seconds = max(float(x) for x in summary["cmd"].split(","))
    return {"pytest_s": round(pytest_seconds, 1), "wall_s": round(wall, 1), "passed": int(passed[-1])}


def worktree(ref: str) -> Path:
    target = Path(tempfile.mkdtemp(prefix="jda-unitbench-"))
    subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "add", "--detach", str(target), ref],
                   check=True, capture_output=True, text=True)
    tools = REPO_ROOT / ".tools"
    if tools.is_dir():
        # the pinned helm binaries, so the old checkout does not download them again
        os.symlink(tools, target / ".tools")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs (default 3)")
    parser.add_argument("--ref", help="measure this git ref in a temporary worktree instead of the checkout")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per tox run (default 1800)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if shutil.which("tox") is None:
        raise SystemExit("tox is not on PATH: python3 -m pip install 'tox>=4.20,<5'")
    checkout = worktree(args.ref) if args.ref else REPO_ROOT
    label = args.ref or "checkout"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    try:
        print(f"[unitbench] {label}: preparing the tox environment (not timed)", file=sys.stderr, flush=True)
        subprocess.run(["tox", "-e", "unit", "--notest"], cwd=checkout, env=env, check=True,
                       capture_output=True, timeout=args.timeout)
        runs = []
        for i in range(args.runs):
            print(f"[unitbench] {label}: run {i + 1}/{args.runs} ...", file=sys.stderr, flush=True)
            runs.append(run_once(checkout, env, args.timeout))
            print(f"[unitbench] {label}: run {i + 1}: {runs[-1]}", file=sys.stderr, flush=True)
        commit = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], check=True,
                                capture_output=True, text=True).stdout.strip()
    finally:
        if args.ref:
            subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "remove", "--force", str(checkout)],
                           check=False, capture_output=True)
    result = {
        "label": label, "commit": commit, "cpus": os.cpu_count(), "runs": runs,
        "median_pytest_s": statistics.median(float(r["pytest_s"]) for r in runs),
        "median_wall_s": statistics.median(float(r["wall_s"]) for r in runs),
    }
    out = REPO_ROOT / ".artifacts" / "bench" / f"unit-{re.sub(r'[^A-Za-z0-9_.-]', '_', label)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"unit tier at {commit} ({label}): median {result['median_pytest_s']} s of pytest "
          f"({result['median_wall_s']} s wall) over {len(runs)} runs, {runs[-1]['passed']} tests; {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
