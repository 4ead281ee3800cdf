"""The chart-testing command lines the cluster tier runs, checked against ct's own flag tables at the
pinned tag (tests/unit/data/upstream/chart-testing.yaml), without building or running ct."""

from __future__ import annotations

from pathlib import Path

import yaml

from jdagent.cluster import charttesting
from jdagent.cluster.local import pins

FACTS = yaml.safe_load((Path(__file__).parent / "data" / "upstream" / "chart-testing.yaml").read_text())


def flags(args: list[str]) -> dict[str, str]:
    return dict(arg.lstrip("-").split("=", 1) for arg in args[1:])


def test_the_pin_is_the_recorded_tag_and_copies_cts_default_schema_and_rules():
    assert charttesting.PROGRAM.version == pins.CHART_TESTING == FACTS["source"]["tag"]
    assert charttesting.PROGRAM.packages == {"ct": "github.com/helm/chart-testing/v3/ct"}
    assert list(charttesting.PROGRAM.module_files) == FACTS["module_files"]


def test_lint_uses_only_lint_flags_and_switches_off_exactly_the_checks_that_need_the_network():
    args = charttesting.lint_args(Path("/b"))
    assert args[0] == "lint"
    given = flags(args)
    assert set(given) <= set(FACTS["common_flags"]) | set(FACTS["lint_flags"])
    off = {k for k, v in given.items() if v == "false"}
    assert off == set(charttesting.OFFLINE)
    assert all(FACTS["defaults"][k] is True for k in off), "only checks that are on by default are switched off"
    assert given["chart-yaml-schema"] == "/b/etc/chart_schema.yaml" and given["lint-conf"] == "/b/etc/lintconf.yaml"
    assert given["charts"] == "charts/jenkins-dind-agent"


def test_install_uses_only_install_flags_and_passes_helm_arguments_helm_accepts():
    args = charttesting.install_args("ns", Path("/v.yaml"), 90, keep=True)
    assert args[0] == "install"
    given = flags(args)
    assert set(given) <= set(FACTS["common_flags"]) | set(FACTS["install_flags"])
    assert given["namespace"] == "ns" and given["skip-clean-up"] == "true"
    # ct appends these to `helm install ... --wait` (and the extra args to `helm test`)
    assert given["helm-extra-set-args"] == "--values=/v.yaml" and given["helm-extra-args"] == "--timeout=90s"
    assert "--wait" in FACTS["install_helm_args"]
    assert "skip-clean-up" not in flags(charttesting.install_args("ns", Path("/v.yaml"), 90))


def test_ct_finds_helm_under_its_own_name(tmp_path, monkeypatch):
    helm = tmp_path / "bin" / "helm-v3.17.3"
    helm.parent.mkdir()
    helm.write_text("#!/bin/sh\n")
    monkeypatch.setattr(charttesting.tools, "find_helm", lambda major: helm)
    monkeypatch.setattr(charttesting.tools, "find_kubectl", lambda: Path("/usr/bin/kubectl"))
    env = charttesting.environment(tmp_path, Path("/k/config"))
    first = Path(env["PATH"].split(":")[0])
    assert (first / "helm").resolve() == helm.resolve() and env["KUBECONFIG"] == "/k/config"
