"""deploy/: Argo CD and Flux manifests name paths that exist, carry the fields their CRDs need, install
Spinnaker by the kustomize path by default and keep the Halyard path (the pinned upstream chart) as a
separate option, and their values overlays render deterministically and pass the same schema and policy
checks as ci/*-values.yaml (tests/conftest.py adds them to RENDER_CASES)."""

from __future__ import annotations

import difflib
import fnmatch
import re
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
KUSTOMIZE = "charts/spinnaker-values/kustomize"


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
    assert len(apps) == 10, "per env: root, root with Halyard, Jenkins, Spinnaker (kustomize), Spinnaker (Halyard)"
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
                    if src["path"].startswith(KUSTOMIZE):
                        assert (folder / "kustomization.yaml").is_file(), f"{path}: no kustomization"
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


def expand(pattern: str) -> list[str]:
    """Argo CD's include glob with one {a,b} group, as separate patterns."""
    match = re.search(r"\{([^}]*)\}", pattern)
    if not match:
        return [pattern]
    return [pattern[:match.start()] + alt + pattern[match.end():] for alt in match.group(1).split(",")]


def app_children(root: dict) -> list[dict]:
    """The Applications an app of apps applies: the yaml files of its path, filtered by directory.include."""
    folder = REPO_ROOT / root["spec"]["source"]["path"]
    directory = root["spec"]["source"].get("directory", {})
    files = folder.rglob("*.yaml") if directory.get("recurse") else folder.glob("*.yaml")
    patterns = expand(directory["include"]) if "include" in directory else ["*"]
    picked = [p for p in files if any(fnmatch.fnmatchcase(str(p.relative_to(folder)), pat) for pat in patterns)]
    assert len(picked) >= len(patterns), (root["metadata"]["name"], patterns, picked)
    return [d for p in picked for d in docs(p)]


def sources_of(apps: list[dict]) -> list[dict]:
    return [s for c in apps for s in (c["spec"].get("sources") or [c["spec"]["source"]])]


@pytest.mark.parametrize("env", ENVS)
def test_app_of_apps_installs_spinnaker_by_the_kustomize_path(env):
    sources = sources_of(app_children(docs(DEPLOY / "argocd" / f"root-{env}.yaml")[0]))
    assert any(s.get("path") == "charts/jenkins-dind-agent" for s in sources)
    assert any(s.get("path") == f"{KUSTOMIZE}/{env}" for s in sources)
    assert not any(s.get("chart") == "spinnaker" for s in sources), "Halyard only by its own root"


@pytest.mark.parametrize("env", ENVS)
def test_the_halyard_root_swaps_only_spinnaker(env):
    """root-<env>-halyard.yaml applies the same Jenkins Application and the Halyard Spinnaker Application,
    under the root's own name (apply one root or the other) and with the same Application names."""
    default, halyard = (docs(DEPLOY / "argocd" / f"root-{env}{s}.yaml")[0] for s in ("", "-halyard"))
    assert default["metadata"]["name"] == halyard["metadata"]["name"]
    children = app_children(halyard)
    sources = sources_of(children)
    assert any(s.get("path") == "charts/jenkins-dind-agent" for s in sources)
    assert any(s.get("chart") == "spinnaker" for s in sources)
    assert not any(str(s.get("path", "")).startswith(KUSTOMIZE) for s in sources)
    assert sorted(c["metadata"]["name"] for c in children) == \
        sorted(c["metadata"]["name"] for c in app_children(default))


def flux_folders() -> list[Path]:
    return [DEPLOY / "flux" / env for env in ENVS] + [DEPLOY / "flux" / "halyard" / env for env in ENVS]


@pytest.mark.parametrize("folder", flux_folders(), ids=lambda p: str(p.relative_to(DEPLOY / "flux")))
def test_flux_kustomization_resources_and_generated_values_exist(folder):
    kustomization = docs(folder / "kustomization.yaml")[0]
    for resource in kustomization["resources"]:
        assert (folder / resource).is_file(), resource
    for generator in kustomization.get("configMapGenerator", []):
        for entry in generator["files"]:
            _, _, rel = entry.partition("=")
            assert (folder / rel).resolve().is_file(), entry


@pytest.mark.parametrize("env", ENVS)
def test_flux_installs_spinnaker_by_the_kustomize_path(env):
    """The env folder holds a Flux Kustomization of charts/spinnaker-values/kustomize/<env> from the
    GitRepository; the Halyard HelmRelease only in flux/halyard/<env>; no two folders own a namespace."""
    folder = DEPLOY / "flux" / env
    resources = docs(folder / "kustomization.yaml")[0]["resources"]
    flux = [d for r in resources for d in docs(folder / r) if d["kind"] == "Kustomization"]
    [spin] = [d for d in flux if d["metadata"]["name"] == "spinnaker"]
    assert spin["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1" and spin["spec"]["prune"] is True
    assert spin["spec"]["path"] == f"./{KUSTOMIZE}/{env}" and (REPO_ROOT / spin["spec"]["path"]).is_dir()
    repos = {d["metadata"]["name"] for _, d in all_docs("GitRepository")}
    assert spin["spec"]["sourceRef"] == {"kind": "GitRepository", "name": next(iter(repos))}
    assert not [d for r in resources for d in docs(folder / r) if d["kind"] in ("HelmRelease", "HelmRepository")
                and "spinnaker" in (d["metadata"]["name"], d["spec"].get("chart", {}).get("spec", {}).get("chart"))]
    namespaces = {d["metadata"]["name"] for r in resources for d in docs(folder / r) if d["kind"] == "Namespace"}
    assert "spinnaker" not in namespaces, "the kustomize path creates its own namespace"


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
    # existingSecret: nothing random is rendered; the one Secret is the push cloud's ServiceAccount token,
    # which the API server fills in (no data in git)
    secrets = [d for d in yaml.safe_load_all(first) if d and d["kind"] == "Secret"]
    assert all(s["type"] == "kubernetes.io/service-account-token" and not s.get("data") and not s.get("stringData")
               for s in secrets), secrets


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
