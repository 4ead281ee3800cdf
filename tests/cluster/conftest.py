"""Cluster tier: a real single-node Kubernetes (the `local` provider: API server, etcd, kubelet,
containerd, runc, kube-proxy, built from the upstream Go modules) runs the chart.

Every test here SKIPS naming what is missing (not Linux, not root, no Go, a missing package);
JDA_REQUIRE_CLUSTER=1 (set by .ci/run) turns that into a failure. JDA_KEEP_CLUSTER=1 keeps the
cluster after the run; a failed test saves the cluster's state to .artifacts/cluster/<test>/.
"""

from __future__ import annotations

import os
from collections import Counter

import docker
import pytest
import yaml

from jdagent.cluster import artifacts
from jdagent.cluster.local import addons
from jdagent.cluster.local import images as local_images
from jdagent.cluster.local.node import LocalProvider
from jdagent.cluster.portforward import loopback_without_proxy
from jdagent.engine import images
from jdagent.paths import ARTIFACTS_DIR, REPO_ROOT
from tests.cluster.kube import BASE_IMAGE, REGISTRY, apply

PROVIDER = LocalProvider()
MISSING = PROVIDER.missing()
REQUIRED = os.environ.get("JDA_REQUIRE_CLUSTER") == "1"
NAME = os.environ.get("JDA_LOCAL_CLUSTER", "jda-ci")
CRDS = yaml.safe_load((REPO_ROOT / "tests" / "unit" / "data" / "upstream" / "crds.yaml").read_text())
PLURALS = {"HTTPRoute": "httproutes", "ServiceMonitor": "servicemonitors", "ExternalSecret": "externalsecrets"}
_outcomes: Counter[str] = Counter()


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/cluster" in str(item.fspath) and MISSING and not REQUIRED:
            item.add_marker(pytest.mark.skip(reason=MISSING))


def pytest_runtest_setup(item):
    if "tests/cluster" in str(item.fspath) and REQUIRED and MISSING:
        pytest.fail(f"JDA_REQUIRE_CLUSTER=1 but {MISSING}", pytrace=False)


def pytest_runtest_logreport(report):
    if "tests/cluster" in report.nodeid and (report.when == "call" or report.outcome in ("failed", "skipped")):
        _outcomes[report.outcome] += 1


def pytest_terminal_summary(terminalreporter):
    if _outcomes and set(_outcomes) == {"skipped"}:
        terminalreporter.write_sep("!", f"CLUSTER TIER DID NOT RUN: {MISSING}", yellow=True)


@pytest.fixture(scope="session")
def cluster():
    loopback_without_proxy()
    found, created = PROVIDER.up(NAME)
    yield found
    if created and os.environ.get("JDA_KEEP_CLUSTER") != "1":
        PROVIDER.delete(NAME)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed and "cluster" in item.funcargs:
        found = item.funcargs["cluster"]
        names = found.kubectl("get", "namespaces", "-o", "jsonpath={.items[*].metadata.name}", check=False).stdout
        folder = artifacts.collect_artifacts(found, ARTIFACTS_DIR / "cluster" / item.name, provider=PROVIDER,
                                             namespaces=tuple(n for n in names.split() if not n.startswith("kube-")))
        report.sections.append(("cluster artifacts", f"cluster state and logs in {folder}"))


@pytest.fixture(scope="session")
def standins(cluster) -> dict[str, str]:
    """The stand-in images, built on the Docker engine and imported into the node's containerd."""
    client = docker.from_env(version="auto", timeout=600)
    found = images.ensure_all(client)
    for image in found.values():
        PROVIDER.load_image(cluster, image)
    return found


@pytest.fixture(scope="session")
def mirror_registry(cluster) -> str:
    """Distribution at the chart's mirror.image version, built from its Go module (the mirror's own code,
    where the Docker tier runs Debian's 2.8), imported into the node's containerd."""
    image = local_images.ensure_mirror_registry()
    PROVIDER.load_image(cluster, image)
    return image


def _approval(group: str) -> dict[str, str]:
    """Groups under k8s.io must carry an approval annotation; "unapproved, ..." is the value the API
    server accepts for a CRD that is not the upstream object itself (this one is rebuilt from its schema)."""
    if group == "k8s.io" or group.endswith(".k8s.io"):
        return {"api-approved.kubernetes.io": "unapproved, rebuilt from the recorded upstream schema for tests"}
    return {}


@pytest.fixture(scope="session")
def crds(cluster) -> list[str]:
    """The CRDs the chart can render objects of, built from the recorded upstream schemas, so that the
    API server's own validation (CEL rules included) runs on what the chart renders."""
    names = []
    for kind, fact in CRDS.items():
        group, version = fact["apiVersion"].split("/")
        plural = PLURALS[kind]
        names.append(f"{plural}.{group}")
        apply(cluster, [{
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}", "annotations": _approval(group)},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
                     "versions": [{"name": version, "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": fact["schema"]}}]},
        }])
    for name in names:
        cluster.kubectl_wait(60, "wait", "--for=condition=Established", f"crd/{name}")
    return names


@pytest.fixture(scope="session")
def in_cluster_registry(cluster, standins) -> str:
    """A Deployment of the registry stand-in behind a fixed ClusterIP, holding the busybox base image
    (pushed from the host engine through a port-forward)."""
    assert addons.seeded_registry(cluster, standins["registry"], standins["busybox"]) == BASE_IMAGE
    return REGISTRY


@pytest.fixture(scope="session")
def node_images(cluster):
    """Import more local images (built on the Docker engine) into the node's containerd: node_images(*tags)."""
    def load(*tags: str) -> None:
        for tag in tags:
            PROVIDER.load_image(cluster, tag)

    return load
