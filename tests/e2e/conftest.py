"""e2e tier: a kind cluster with the chart installed. Every test here SKIPS, naming what is missing,
where kind, Docker or internet is absent; the run then ends with a banner saying nothing ran.

KIND_CLUSTER_NAME picks the cluster (reused when it exists); JDA_KEEP_CLUSTER=1 keeps a cluster the
tests created. On failure, cluster state and logs go to .artifacts/e2e/<test>/.
"""

from __future__ import annotations

import os

import pytest

from jdagent import kind
from jdagent.paths import ARTIFACTS_DIR

MISSING = kind.missing_prerequisites()
_ran: list[str] = []


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/e2e" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
            needs = item.get_closest_marker("online_only")
            reason = MISSING if needs is None else kind.missing_online()
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


def pytest_runtest_logreport(report):
    if report.when == "call" and "tests/e2e" in report.nodeid:
        _ran.append(report.nodeid)


def pytest_terminal_summary(terminalreporter):
    if not _ran:
        terminalreporter.write_sep("!", "E2E DID NOT RUN: every e2e test was skipped", yellow=True)
        for reason in sorted({r for r in (MISSING, kind.missing_online()) if r}):
            terminalreporter.write_line(f"reason: {reason}")


@pytest.fixture(scope="session")
def cluster():
    cluster, created = kind.cluster_up()
    try:
        kind.install_registry(cluster)
        kind.install_chart(cluster)
        yield cluster
    finally:
        if created and os.environ.get("JDA_KEEP_CLUSTER") != "1":
            kind.cluster_down(cluster.name)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed and "cluster" in item.funcargs:
        extra = getattr(item, "jda_artifacts", {})
        folder = kind.collect_artifacts(item.funcargs["cluster"], ARTIFACTS_DIR / "e2e" / item.name, extra)
        report.sections.append(("e2e artifacts", f"cluster state and logs in {folder}"))
