"""The mutation gate's list stays applicable: every entry's edit still matches its file exactly once and
names tests that exist, so a template change cannot silently disable a mutation (tox -e mutation runs
them)."""

from __future__ import annotations

import re

from jdagent import mutation
from jdagent.paths import REPO_ROOT

MUTATIONS = mutation.load()


def test_at_least_forty_mutations_each_with_a_promise():
    assert len(MUTATIONS) >= 40
    assert all(m.promise.strip() and m.tests for m in MUTATIONS)


def test_every_edit_applies_exactly_once_and_changes_the_file():
    for m in MUTATIONS:
        text = (REPO_ROOT / m.file).read_text()
        assert text.count(m.find) == 1, f"{m.id}: `find` occurs {text.count(m.find)} times in {m.file}"
        assert m.find != m.replace, m.id


def test_every_named_test_exists():
    for m in MUTATIONS:
        for node in m.tests:
            path, _, name = node.partition("::")
            source = (REPO_ROOT / path).read_text()
            assert not name or re.search(rf"^def {re.escape(name)}\(", source, re.M), f"{m.id}: {node}"


def test_the_list_covers_security_wiring_behaviour_validation_and_determinism():
    files = {m.file.rsplit("/", 1)[-1] for m in MUTATIONS}
    assert {"_agent-pod.tpl", "_helpers.tpl", "_jcasc.tpl", "_validate.tpl", "networkpolicy.yaml", "rbac.yaml",
            "statefulset.yaml", "services.yaml", "values.schema.json"} <= files
    tests = {t.split("::")[0] for m in MUTATIONS for t in m.tests}
    assert {"tests/unit/test_policy.py", "tests/unit/test_gitops.py", "tests/unit/test_values_schema.py",
            "tests/unit/test_jcasc_wiring.py", "tests/unit/test_agent_extensions.py"} <= tests
