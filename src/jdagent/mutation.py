"""Mutation gate: every promise the chart makes is guarded by a test that fails when it is broken.

    python -m jdagent.mutation [--only ID ...] [--workers N] [--no-fallback]     (tox -e mutation)

tests/mutation/mutations.yaml lists small edits to the chart (a template, values.yaml,
values.schema.json or a file the chart ships), each with the promise it breaks and the tests expected to
notice. For every mutation the gate edits a private copy of the repository, runs those tests first
(the cheapest check, stopping at the first failure) and, if they all pass, the whole lint and unit
tiers. A mutation is killed when a test fails; it survives when everything passes. The gate prints
each result with its time, the score and the total, writes .artifacts/mutation.json, and fails when
any mutation survives or cannot be applied (a `find` text that is not in the file exactly once, for
example after a template changed: update the entry).

Before any mutation it runs the same tests on the unmodified copy: they must pass, or a "kill" would
mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from jdagent.paths import ARTIFACTS_DIR, REPO_ROOT, TOOLS_DIR

MUTATIONS_FILE = REPO_ROOT / "tests" / "mutation" / "mutations.yaml"
COPIED = ("charts", "deploy", "scripts", "src", "tests", "pyproject.toml", "tox.ini", "README.md")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
FALLBACK = ("tests/lint", "tests/unit")
_FAILED = re.compile(r"^(FAILED|ERROR) (\S+)", re.M)


@dataclass(frozen=True)
class Mutation:
    id: str
    promise: str
    file: str
    find: str
    replace: str
    tests: tuple[str, ...]
    k: str = ""

    @classmethod
    def load(cls, entry: dict[str, Any]) -> Mutation:
        return cls(entry["id"], entry["promise"], entry["file"], entry["find"], entry["replace"],
                   tuple(entry["tests"]), entry.get("k", ""))


@dataclass
class Result:
    id: str
    promise: str
    outcome: str  # killed, survived, error
    by: str = ""
    seconds: float = 0.0
    detail: str = ""
    stages: list[str] = field(default_factory=list)


def load(path: Path = MUTATIONS_FILE) -> list[Mutation]:
    data = yaml.safe_load(path.read_text())
    mutations = [Mutation.load(e) for e in data]
    ids = [m.id for m in mutations]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise SystemExit(f"{path}: duplicate ids {duplicates}")
    return mutations


def make_copy(root: Path) -> Path:
    for name in COPIED:
        src = REPO_ROOT / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=IGNORED)
        elif src.is_file():
            shutil.copy2(src, root / name)
    return root


def pytest(copy: Path, args: list[str], timeout: float) -> tuple[int, str]:
    env = {**os.environ, "JDA_REPO": str(copy), "PYTHONPATH": str(copy / "src"), "JDA_TOOLS_DIR": str(TOOLS_DIR),
           "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header",
           "-o", "addopts=", *args]
    try:
        proc = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {timeout:.0f} s"
    return proc.returncode, proc.stdout + proc.stderr


def selection(m: Mutation) -> list[str]:
    return [*m.tests, *(["-k", m.k] if m.k else [])]


def first_failure(output: str) -> str:
    match = _FAILED.search(output)
    return match.group(2) if match else ""


def run_one(m: Mutation, copy: Path, fallback: bool, timeout: float) -> Result:
    started = time.monotonic()
    target = copy / m.file
    original = target.read_text()
    count = original.count(m.find)
    if count != 1:
        return Result(m.id, m.promise, "error", detail=f"`find` occurs {count} times in {m.file}; update the entry")
    target.write_text(original.replace(m.find, m.replace))
    result = Result(m.id, m.promise, "survived")
    try:
        for stage, args in (("targeted", selection(m)), *((("lint+unit", list(FALLBACK)),) if fallback else ())):
            result.stages.append(stage)
            rc, out = pytest(copy, args, timeout)
            if rc == 1:
                result.outcome, result.by = "killed", f"{stage}: {first_failure(out) or 'a test failed'}"
                break
            if rc != 0:
                result.outcome = "error"
                result.detail = f"{stage}: pytest exited {rc}: {out.strip().splitlines()[-1:] or ''}"
                break
    finally:
        target.write_text(original)
    result.seconds = time.monotonic() - started
    return result


def baseline(mutations: list[Mutation], copy: Path, timeout: float) -> str | None:
    """The tests the mutations name must pass on the unmodified chart."""
    nodes = sorted({t for m in mutations for t in m.tests})
    rc, out = pytest(copy, nodes, timeout)
    return None if rc == 0 else f"pytest exited {rc} on the unmodified chart:\n{out[-3000:]}"


def report(results: list[Result], seconds: float) -> str:
    width = max(len(r.id) for r in results)
    lines = []
    for r in results:
        how = r.by if r.outcome == "killed" else r.detail or "every tier passed"
        lines.append(f"{r.outcome.upper():8} {r.id:<{width}} {r.seconds:5.1f} s  {how}")
    killed = sum(r.outcome == "killed" for r in results)
    survived = [r for r in results if r.outcome == "survived"]
    errors = [r for r in results if r.outcome == "error"]
    lines.append("")
    for r in survived:
        lines.append(f"survivor {r.id}: nothing notices that this breaks: {r.promise}")
    lines.append(f"mutation score: {killed}/{len(results)} killed, {len(survived)} survived, {len(errors)} errors, "
                 f"in {seconds:.0f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", help="run only these mutation ids")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="mutations run in parallel, each in its own copy (default: up to 2)")
    parser.add_argument("--no-fallback", action="store_true",
                        help="do not run the whole lint and unit tiers for a mutation its tests miss")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per pytest run")
    parser.add_argument("--json", type=Path, default=ARTIFACTS_DIR / "mutation.json")
    args = parser.parse_args(argv)
    mutations = load()
    if args.only:
        unknown = set(args.only) - {m.id for m in mutations}
        if unknown:
            parser.error(f"unknown mutation ids: {sorted(unknown)}")
        mutations = [m for m in mutations if m.id in args.only]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="jda-mutation-") as tmp:
        copies = [make_copy(Path(tmp) / f"copy{i}") for i in range(max(1, args.workers))]
        print(f"[mutation] {len(mutations)} mutations, {len(copies)} worker(s); baseline run of their tests",
              flush=True)
        problem = baseline(mutations, copies[0], args.timeout)
        if problem:
            print(f"[mutation] baseline failed: {problem}", file=sys.stderr)
            return 2
        free = list(copies)
        lock = threading.Lock()

        def work(m: Mutation) -> Result:
            with lock:
                copy = free.pop()
            try:
                r = run_one(m, copy, not args.no_fallback, args.timeout)
            finally:
                with lock:
                    free.append(copy)
            print(f"[mutation] {r.outcome:8} {m.id} ({r.seconds:.1f} s)", flush=True)
            return r

        with ThreadPoolExecutor(max_workers=len(copies)) as pool:
            results = list(pool.map(work, mutations))
    seconds = time.monotonic() - started
    print(report(results, seconds))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"seconds": seconds, "results": [asdict(r) for r in results]}, indent=2))
    return 0 if all(r.outcome == "killed" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
