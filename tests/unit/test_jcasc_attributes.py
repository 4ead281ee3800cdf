"""Every key of every JCasC document the chart renders is an attribute or symbol the pinned core and
plugins offer, by the facts recorded from their sources (data/upstream/jcasc-classes.yaml); a renamed
or removed attribute fails here instead of at Jenkins start."""

from __future__ import annotations

import copy
import re

import pytest

from jdagent.chart import casc, pluginlock
from jdagent.chart.render import render
from tests.conftest import RENDER_CASES, ci_ids

FACTS = casc.Facts.load()
LOCK = pluginlock.lock()
PLUGIN_FACTS = pluginlock.facts()["plugins"]


def documents(values=None, **kw):
    return casc.documents(render(values=values, **kw))


def problems(doc):
    return [str(p) for p in casc.check(doc, FACTS)]


@pytest.mark.parametrize("values", RENDER_CASES, ids=ci_ids(RENDER_CASES))
def test_rendered_jcasc_uses_only_known_attributes(values):
    docs = documents(values)
    assert docs
    for name, doc in docs:
        assert problems(doc) == [], name


def test_the_walk_reaches_the_classes_the_chart_configures():
    checker = casc.Checker(FACTS)
    for _, doc in documents():
        checker.document(doc, FACTS.roots)
    assert {
        "jenkins.model.Jenkins", "hudson.security.HudsonPrivateSecurityRealm",
        "hudson.security.FullControlOnceLoggedInAuthorizationStrategy", "hudson.security.csrf.DefaultCrumbIssuer",
        "org.csanchez.jenkins.plugins.kubernetes.KubernetesCloud",
        "org.csanchez.jenkins.plugins.kubernetes.PodTemplate",
        "jenkins.model.JenkinsLocationConfiguration",
    } <= checker.visited
    assert checker.problems == []


def base_doc():
    return copy.deepcopy(dict(documents()[0][1]))


def template(doc):
    return doc["jenkins"]["clouds"][0]["kubernetes"]["templates"][0]


def test_a_renamed_attribute_fails():
    doc = base_doc()
    t = template(doc)
    t["yamlMergeStrateg"] = t.pop("yamlMergeStrategy")
    [problem] = problems(doc)
    assert problem.startswith("jenkins.clouds[0].kubernetes.templates[0].yamlMergeStrateg: not an attribute of "
                              "org.csanchez.jenkins.plugins.kubernetes.PodTemplate")


def test_a_removed_attribute_fails_like_the_crumb_issuer_option_did():
    """DefaultCrumbIssuer lost its excludeClientIPFromCrumb constructor argument; the old chart still set it."""
    doc = base_doc()
    doc["jenkins"]["crumbIssuer"] = {"standard": {"excludeClientIPFromCrumb": True}}
    assert problems(doc) == ["jenkins.crumbIssuer.standard.excludeClientIPFromCrumb: not an attribute of "
                             "hudson.security.csrf.DefaultCrumbIssuer (has: )"]


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: d["jenkins"].update(securityRealm={"ldapish": {}}),
     "jenkins.securityRealm.ldapish: no single SecurityRealm implementation with symbol 'ldapish'"),
    (lambda d: d["jenkins"].update(mode="SOMETIMES"),
     "jenkins.mode: 'SOMETIMES' is not one of ['NORMAL', 'EXCLUSIVE']"),
    (lambda d: template(d).update(podRetention="sometimes"),
     "no single PodRetention implementation with symbol 'sometimes'"),
    (lambda d: d.update(unclassified={"locations": {"url": "x"}}),
     "unclassified.locations: no single GlobalConfiguration with symbol 'locations'"),
    (lambda d: d.update(jobs=[{"scripts": "x"}]), "jobs[0].scripts: no single ScriptSource implementation"),
    (lambda d: d.update(tools={}), "tools: not a JCasC root element"),
    (lambda d: d["jenkins"].update(clouds={"kubernetes": {}}), "jenkins.clouds: expected a list of Cloud"),
    (lambda d: d["jenkins"]["securityRealm"]["local"].update(users=[{"id": "a", "passwd": "b"}]),
     "jenkins.securityRealm.local.users[0].passwd: not an attribute of"),
])
def test_wrong_keys_values_and_symbols_fail(mutate, expected):
    doc = base_doc()
    mutate(doc)
    found = problems(doc)
    assert any(expected in p for p in found), found


def test_symbols_follow_jcasc_rules():
    cloud = FACTS.get("org.csanchez.jenkins.plugins.kubernetes.KubernetesCloud")
    assert "symbols" not in cloud, "KubernetesCloud has no @Symbol: 'kubernetes' comes from the class name"
    assert casc.symbols_of(cloud, "org.csanchez.jenkins.plugins.kubernetes.KubernetesCloud", "hudson.slaves.Cloud") == [
        "kubernetes", "kubernetesCloud"]
    assert casc.normalize("URL") == "url" and casc.normalize("FooBar") == "fooBar"


def test_facts_come_from_the_pinned_sources():
    # a plugin pinned at the version the core's war bundles (its own source at that version is in no
    # snapshot) names where its JCasC classes are read: its newest release the snapshots hold, not newer
    pinned = {(f["source"].get("classes", f["source"])["repo"], f["source"].get("classes", f["source"])["tag"])
              for f in PLUGIN_FACTS.values()}
    pinned.add(("jenkinsci/jenkins", f"jenkins-{LOCK['core']}"))
    for name, fact in PLUGIN_FACTS.items():
        if fact["source"]["path"] == "war/pom.xml":
            classes = fact["source"]["classes"]
            assert not pluginlock.older(fact["version"], classes["version"]), name
            assert classes["tag"].endswith(classes["version"]) and classes["tag"] in fact["source"]["note"], name
    for name, cls in FACTS.classes.items():
        src = cls["source"]
        assert (src["repo"], src["tag"]) in pinned, name
        assert src["path"].endswith(".java") and "src/main/java/" in src["path"], name
        outer = name.split("$")[0].replace(".", "/") + ".java"
        assert src["path"].endswith(outer), name
    for root in FACTS.roots.values():
        assert (root["source"]["repo"], root["source"]["tag"]) in pinned
    assert re.fullmatch(r"\d+\.\d+\.\d+", FACTS.provenance["core"])
