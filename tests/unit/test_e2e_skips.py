"""The e2e tier skips, naming what is missing, where kind/Docker/internet are absent, and says so
loudly; it never passes by doing nothing silently."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

from jdagent import kind
from jdagent.paths import REPO_ROOT


def test_reasons_name_the_missing_part():
    present = {"kind": "/usr/bin/kind", "docker": "/usr/bin/docker"}
    assert "kind is not installed" in kind.missing_prerequisites(which=lambda n: None)
    assert "no Docker engine" in kind.missing_prerequisites(which=present.get, docker_ok=lambda: False)
    assert "no internet" in kind.missing_prerequisites(which=present.get, docker_ok=lambda: True,
                                                       online=lambda: False)
    assert kind.missing_prerequisites(which=present.get, docker_ok=lambda: True, online=lambda: True) is None


def test_online_tests_never_probe_without_kind(monkeypatch):
    monkeypatch.delenv("JDA_ONLINE", raising=False)
    probed = []
    monkeypatch.setattr(kind, "_online", lambda: probed.append(1) or True)
    assert "JDA_ONLINE=1" in kind.missing_online(which=lambda n: None)
    assert probed == []


def test_e2e_collection_without_kind_skips_everything_with_reasons(tmp_path):
    path = os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep)
                           if d and not shutil.which("kind", path=d))
    env = {**os.environ, "PATH": path, "JDA_ONLINE": "0"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "tests/e2e", "-rs", "-q", "-p", "no:cacheprovider"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    skipped = int(re.search(r"(\d+) skipped", out).group(1))
    assert skipped >= 6
    assert "passed" not in out.splitlines()[-1] and "failed" not in out.splitlines()[-1]
    kind_skips = re.search(r"SKIPPED \[(\d+)\] tests/e2e/test_pipeline.py: kind is not installed", out)
    online_skips = re.search(r"SKIPPED \[(\d+)\] tests/e2e/test_spinnaker_upstream.py: no internet confirmed", out)
    assert kind_skips and int(kind_skips.group(1)) >= 4, out
    assert online_skips and int(online_skips.group(1)) >= 2, out
    assert int(kind_skips.group(1)) + int(online_skips.group(1)) == skipped
    assert "E2E DID NOT RUN" in out
