"""e2e tier: a kind cluster with the chart installed. Every test here SKIPS, naming what is missing,
where kind, Docker, helm 4, kubectl or internet is absent. A run in which every e2e test skipped FAILS
(exit 1, with a banner naming the reasons): `tox -e e2e` never says OK without testing anything.
JDA_E2E_ALLOW_SKIP=1 accepts such a run (exit 0, same banner); JDA_REQUIRE_E2E=1 (for a CI that has
kind) turns each missing prerequisite into an error of its own.

JDA_CLUSTER=local uses the local cluster provider instead of kind (jdagent.cluster.local).
KIND_CLUSTER_NAME picks the cluster (reused when it exists and its nodes are Ready, else replaced);
JDA_KEEP_CLUSTER=1 keeps a cluster the tests created, also after a failed setup. A failed setup saves the
cluster's state to .artifacts/e2e/setup/ (and deletes a cluster it created); a failed test saves it to
.artifacts/e2e/<test>/.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

from jdagent.cluster import artifacts, kind, stack
from jdagent.cluster.portforward import loopback_without_proxy
from jdagent.paths import ARTIFACTS_DIR

# JDA_CLUSTER=local runs the tier on the local cluster (a Linux box without kind, with registry access)
PROVIDER = stack.choose_provider(os.environ.get("JDA_CLUSTER", "kind"))
MISSING = PROVIDER.missing() if PROVIDER.label == "kind" else PROVIDER.missing() or (
    None if os.environ.get("JDA_ONLINE") == "1" else
    "the local cluster pulls Jenkins, docker:dind and plugins: confirm internet with JDA_ONLINE=1")
REQUIRED = os.environ.get("JDA_REQUIRE_E2E") == "1"
_outcomes: Counter[str] = Counter()


def _reason(item: pytest.Item) -> str | None:
    return kind.missing_online() if item.get_closest_marker("online_only") else MISSING


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/e2e" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
            reason = _reason(item)
            if reason and not REQUIRED:
                item.add_marker(pytest.mark.skip(reason=reason))


def pytest_runtest_setup(item):
    if "tests/e2e" in str(item.fspath) and REQUIRED:
        reason = _reason(item)
        if reason:
            pytest.fail(f"JDA_REQUIRE_E2E=1 but {reason}", pytrace=False)


def pytest_runtest_logreport(report):
    if "tests/e2e" in report.nodeid and (report.when == "call" or report.outcome in ("failed", "skipped")):
        _outcomes[report.outcome] += 1


def _nothing_ran() -> bool:
    return bool(_outcomes) and set(_outcomes) == {"skipped"}


def _skips_allowed() -> bool:
    return os.environ.get("JDA_E2E_ALLOW_SKIP") == "1"


def pytest_sessionfinish(session, exitstatus):
    if _nothing_ran() and not _skips_allowed() and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    if _nothing_ran():
        verdict = ("accepted: JDA_E2E_ALLOW_SKIP=1" if _skips_allowed() else
                   "this run FAILS; install what is named below, or set JDA_E2E_ALLOW_SKIP=1 to accept the skips")
        terminalreporter.write_sep("!", f"E2E DID NOT RUN: every e2e test was skipped ({verdict})",
                                   yellow=_skips_allowed(), red=not _skips_allowed())
        for reason in sorted({r for r in (MISSING, kind.missing_online()) if r}):
            terminalreporter.write_line(f"reason: {reason}")


@pytest.fixture(scope="session")
def cluster():
    loopback_without_proxy()
    cluster, created = stack.bring_up(PROVIDER)
    yield cluster
    if created and os.environ.get("JDA_KEEP_CLUSTER") != "1":
        PROVIDER.delete(cluster.name)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed and "cluster" in item.funcargs:
        extra = getattr(item, "jda_artifacts", {})
        folder = artifacts.collect_artifacts(item.funcargs["cluster"], ARTIFACTS_DIR / "e2e" / item.name, extra,
                                             PROVIDER)
        report.sections.append(("e2e artifacts", f"cluster state and logs in {folder}"))
