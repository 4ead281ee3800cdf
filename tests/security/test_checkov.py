"""checkov (--framework kubernetes) on every ci/ render plus the JCasC agent pod: no failed check,
and the skips the chart declares (checkov.io/skipN annotations with a reason) are the only ones."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from jdagent.chart.render import render
from tests.conftest import CI_VALUES

# resource kind -> {check id -> the reason text its checkov.io/skipN annotation must carry}
PINNED = "images are pinned by tag"
UID = "uid 1000 is the jenkins user"
DIND = "dind must be privileged to run dockerd"
ACCEPTED = {
    "Pod": {"CKV_K8S_16": DIND, "CKV_K8S_20": DIND, "CKV_K8S_22": DIND, "CKV_K8S_23": DIND,
            "CKV_K8S_28": DIND, "CKV_K8S_37": DIND,
            "CKV_K8S_43": PINNED, "CKV_K8S_15": PINNED, "CKV_K8S_40": UID,
            "CKV_K8S_8": "build pods are batch work", "CKV_K8S_9": "build pods receive no traffic"},
    "StatefulSet": {"CKV_K8S_38": "Kubernetes plugin uses this token", "CKV_K8S_43": PINNED,
                    "CKV_K8S_15": PINNED, "CKV_K8S_40": UID,
                    "CKV_K8S_35": "reads it only from CASC_RELOAD_TOKEN or a system property"},
    "Deployment": {"CKV_K8S_40": "uid 1000 owns the cache volume",
                   "CKV_K8S_35": "upstream credentials only from its config or REGISTRY_PROXY_* variables"},
}


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> list[dict]:
    checkov = shutil.which("checkov")
    if checkov is None:
        pytest.fail("checkov is not installed in this environment (run: tox -e security)")
    root: Path = tmp_path_factory.mktemp("rendered")
    for values in CI_VALUES:
        manifest = render(values=values)
        folder = root / values.name.removesuffix("-values.yaml")
        folder.mkdir()
        (folder / "chart.yaml").write_text(manifest.text)
        for template in manifest.kubernetes_cloud()["templates"]:  # every template's pod, as the plugin builds it
            agent = manifest.agent_pod(template["name"])
            agent["metadata"]["namespace"] = template["namespace"]
            agent["metadata"]["name"] = f"agent-pod-{template['name']}"
            (folder / f"agent-pod-{template['name']}.yaml").write_text(yaml.safe_dump(agent))
    proc = subprocess.run(
        [checkov, "-d", str(root), "--framework", "kubernetes", "-o", "json", "--skip-download"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.stdout.strip(), proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    return data if isinstance(data, list) else [data]


def checks(report, kind: str) -> list[dict]:
    return [c for r in report for c in r["results"].get(kind, [])]


def test_checkov_scanned_the_workloads(report):
    passed = checks(report, "passed_checks")
    resources = {c["resource"].split(".")[0] for c in passed}
    assert {"StatefulSet", "Pod"} <= resources
    assert len(passed) > 100


def test_no_failed_checks(report):
    failed = [f"{c['check_id']} {c['resource']} ({c['check_name']}) in {c['file_path']}"
              for c in checks(report, "failed_checks")]
    assert failed == []


def test_only_the_documented_skips_exist_and_carry_reasons(report):
    skipped = checks(report, "skipped_checks")
    by_kind: dict[str, set[str]] = {}
    for c in skipped:
        kind = c["resource"].split(".")[0]
        by_kind.setdefault(kind, set()).add(c["check_id"])
        accepted = ACCEPTED.get(kind, {})
        assert c["check_id"] in accepted, f"unexpected checkov skip {c['check_id']} on {c['resource']}"
        assert accepted[c["check_id"]] in (c["check_result"].get("suppress_comment") or ""), c
    assert by_kind == {kind: set(ids) for kind, ids in ACCEPTED.items()}
    assert "CKV_K8S_16" not in by_kind["StatefulSet"], "the controller is not privileged"
