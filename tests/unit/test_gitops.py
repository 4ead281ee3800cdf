"""deploy/: Argo CD and Flux manifests name paths that exist, carry the fields their CRDs need, agree
with the pinned upstream Spinnaker chart, and their values overlays render deterministically and pass
the same schema and policy checks as ci/*-values.yaml (tests/conftest.py adds them to RENDER_CASES)."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
import yaml

from jdagent.chart import golden
from jdagent.chart.render import render
from jdagent.paths import CHART_DIR, REPO_ROOT, SPINNAKER_DIR
from tests.conftest import GITOPS_VALUES

DEPLOY = REPO_ROOT / "deploy"
REPO_URL = "https://github.com/jenkins-dind-agent/jenkins-dind-agent.git"
UPSTREAM = yaml.safe_load((SPINNAKER_DIR / "upstream.yaml").read_text())
MANIFESTS = sorted(p for p in DEPLOY.rglob("*.yaml") if "values" not in p.parts)
ENVS = ("kind", "production")


def docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def all_docs(kind: str) -> list[tuple[Path, dict]]:
    return [(p, d) for p in MANIFESTS for d in docs(p) if d.get("kind") == kind]


def test_every_manifest_has_api_version_kind_and_name():
    assert len(MANIFESTS) >= 10
    for path in MANIFESTS:
        for doc in docs(path):
            assert doc.get("apiVersion") and doc.get("kind"), path
            if doc["kind"] != "Kustomization" or "metadata" in doc:
                assert doc["metadata"]["name"], path


def test_argocd_applications_point_at_existing_paths():
    apps = all_docs("Application")
    assert len(apps) == 6
    for path, app in apps:
        spec = app["spec"]
        assert app["apiVersion"] == "argoproj.io/v1alpha1"
        assert spec["destination"]["server"] and spec["destination"]["namespace"]
        sources = spec.get("sources") or [spec["source"]]
        refs = {s["ref"]: s for s in sources if "ref" in s}
        for src in sources:
            assert src["repoURL"] and src["targetRevision"], path
            if src["repoURL"] == REPO_URL:
                if "path" in src:
                    folder = REPO_ROOT / src["path"]
                    assert folder.is_dir(), f"{path}: {src['path']} missing"
                    for vf in src.get("helm", {}).get("valueFiles", []):
                        assert (folder / vf).resolve().is_file(), f"{path}: {vf} missing"
                else:
                    assert "ref" in src
            else:
                assert src["chart"] == UPSTREAM["chart"]
                assert src["repoURL"] == UPSTREAM["repository"]
                assert src["targetRevision"] == UPSTREAM["version"]
                for vf in src["helm"]["valueFiles"]:
                    ref, _, rel = vf.partition("/")
                    assert ref.startswith("$") and ref[1:] in refs, vf
                    assert refs[ref[1:]]["repoURL"] == REPO_URL
                    assert (REPO_ROOT / rel).is_file(), f"{path}: {vf} missing"


@pytest.mark.parametrize("env", ENVS)
def test_app_of_apps_covers_both_charts(env):
    root = docs(DEPLOY / "argocd" / f"root-{env}.yaml")[0]
    folder = REPO_ROOT / root["spec"]["source"]["path"]
    children = [d for p in folder.glob("*.yaml") for d in docs(p)]
    sources = [s for c in children for s in (c["spec"].get("sources") or [c["spec"]["source"]])]
    assert any(s.get("path") == "charts/jenkins-dind-agent" for s in sources)
    assert any(s.get("chart") == "spinnaker" for s in sources)


@pytest.mark.parametrize("env", ENVS)
def test_flux_kustomization_resources_and_generated_values_exist(env):
    folder = DEPLOY / "flux" / env
    kustomization = docs(folder / "kustomization.yaml")[0]
    for resource in kustomization["resources"]:
        assert (folder / resource).is_file(), resource
    for generator in kustomization["configMapGenerator"]:
        for entry in generator["files"]:
            _, _, rel = entry.partition("=")
            assert (folder / rel).resolve().is_file(), entry


def test_flux_sources_and_releases():
    repos = {d["metadata"]["name"]: d for _, d in all_docs("GitRepository")}
    assert {d["spec"]["url"] for d in repos.values()} == {REPO_URL}
    assert all(d["spec"]["ref"]["branch"] == "main" for d in repos.values())
    helm_repos = {d["metadata"]["name"]: d for _, d in all_docs("HelmRepository")}
    assert {d["spec"]["url"] for d in helm_repos.values()} == {UPSTREAM["repository"]}
    releases = all_docs("HelmRelease")
    assert len(releases) == 4
    for path, hr in releases:
        chart = hr["spec"]["chart"]["spec"]
        source = chart["sourceRef"]
        if source["kind"] == "GitRepository":
            assert source["name"] in repos
            assert (REPO_ROOT / chart["chart"]).resolve() == CHART_DIR
            for vf in chart["valuesFiles"]:
                assert (REPO_ROOT / vf).is_file(), f"{path}: {vf}"
            assert hr["spec"]["test"]["enable"] is True, "Flux runs helm test for the dind build"
        else:
            assert source["name"] in helm_repos
            assert chart["chart"] == UPSTREAM["chart"] and chart["version"] == UPSTREAM["version"]
            generated = {g["name"] for g in docs(path.parent / "kustomization.yaml")[0]["configMapGenerator"]}
            assert {v["name"] for v in hr["spec"]["valuesFrom"]} <= generated


@pytest.mark.parametrize("values", GITOPS_VALUES, ids=lambda p: p.stem)
def test_gitops_render_is_byte_identical(values):
    first = render(values=values, cache=False).text
    second = render(values=values, cache=False).text
    assert first == second
    assert "kind: Secret" not in first, "GitOps installs use existingSecret: nothing random is rendered"


@pytest.mark.parametrize("values", GITOPS_VALUES, ids=lambda p: p.stem)
def test_gitops_render_equals_the_committed_golden_render(values):
    """Two renders a second apart agree even with an hourly timestamp; the committed render does not.
    After an intended change: `python -m jdagent.chart.golden --write` and review the diff."""
    path = golden.golden_path(values)
    assert path.is_file(), f"no golden render for {values.name}: python -m jdagent.chart.golden --write"
    fresh = golden.fresh(values)
    if fresh != path.read_text():
        diff = difflib.unified_diff(path.read_text().splitlines(), fresh.splitlines(), lineterm="", n=0)
        pytest.fail("render differs from " + path.name + " (python -m jdagent.chart.golden --write if intended):\n"
                    + "\n".join(list(diff)[:40]))


def test_every_overlay_has_a_golden_render_and_no_stale_ones():
    assert {p.stem for p in golden.GOLDEN_DIR.glob("*.yaml")} == {p.stem for p in GITOPS_VALUES}


def test_default_install_path_is_the_only_random_one():
    assert render(cache=False).text != render(cache=False).text


@pytest.mark.parametrize("values", GITOPS_VALUES, ids=lambda p: p.stem)
def test_gitops_overlays_run_the_build_test_under_argo(values):
    pod = render(values=values).test_pod()
    annotations = pod["metadata"]["annotations"]
    assert annotations["argocd.argoproj.io/hook"] == "PostSync"
    assert annotations["helm.sh/hook"] == "test"


@pytest.mark.parametrize("env", ENVS)
def test_spinnaker_overlay_registry_matches_the_jenkins_overlay(env):
    from urllib.parse import urlsplit

    from jdagent.chart.render import deep_merge

    spin = deep_merge(yaml.safe_load((SPINNAKER_DIR / "values.yaml").read_text()),
                      yaml.safe_load((SPINNAKER_DIR / f"values-{env}.yaml").read_text()))
    jenkins = yaml.safe_load((DEPLOY / "values" / f"jenkins-{env}.yaml").read_text())
    account = next(r for r in spin["dockerRegistries"] if r["name"] == "jda-registry")
    assert urlsplit(account["address"]).netloc == jenkins["agent"]["registry"]["server"]
