"""Who gets registry credentials and who may use the agents, as rendered: agent.registry.push adds a push
template in a second, usage-restricted Kubernetes cloud with a ServiceAccount of its own (a SYSTEM-scoped
credential) and a namespace of its own; agent.permittedFolders restricts the chart's cloud. Checked against
the Kubernetes plugin's and job-dsl's recorded behaviour (data/upstream/jenkins-runtime.yaml). The API
server's side (RBAC, namespaces) is proven in tests/cluster/test_push.py."""

from __future__ import annotations

import re

import pytest
import yaml

from jdagent.chart.manifest import container, mounts_of, volume
from jdagent.chart.render import RenderError, render
from jdagent.paths import REPO_ROOT

PUSH = {"agent": {"registry": {"server": "registry.example.com", "push": True, "secretName": "registry-push",
                               "pushFolders": ["releases"]}},
        "exampleJob": {"folder": "releases"}}
RUNTIME = yaml.safe_load((REPO_ROOT / "tests" / "unit" / "data" / "upstream" / "jenkins-runtime.yaml").read_text())
USAGE = RUNTIME["kubernetes"]["usage_restriction"]
CREDENTIALS = RUNTIME["kubernetes"]["cloud_credentials"]


def secret_names(spec: dict) -> set[str]:
    """Every Secret a pod spec can read: volumes (secret, projected), env and envFrom references."""
    names = {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
    names |= {s["secret"]["name"] for v in spec.get("volumes", []) if "projected" in v
              for s in v["projected"]["sources"] if "secret" in s}
    for c in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        names |= {e["valueFrom"]["secretKeyRef"]["name"] for e in c.get("env", [])
                  if "secretKeyRef" in e.get("valueFrom", {})}
        names |= {e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e}
    return names


def test_the_push_template_is_a_second_restricted_cloud_after_the_charts_own():
    manifest = render(overrides=PUSH)
    main, push = manifest.kubernetes_clouds()
    # a podTemplate step without `cloud:` takes the first cloud: the unrestricted one, not the push cloud
    assert USAGE["step_default_cloud"] == "first"
    assert (main["name"], push["name"]) == ("kubernetes", "kubernetes-push")
    assert "usageRestricted" not in main and push["usageRestricted"] is True
    assert push["namespace"] == "ci-agents-push" != main["namespace"] == "ci-agents"
    # its own credential, and no serverUrl: the client keeps the pod's API server address and CA and only
    # its token is replaced by the credential's
    assert CREDENTIALS["blank_server_url_uses_pod_config"] and CREDENTIALS["credential_replaces_pod_token"]
    assert push["credentialsId"] == "jda-push-cloud" and "serverUrl" not in push and "credentialsId" not in main
    [template] = push["templates"]
    assert template["label"] == "dind-push" and template["namespace"] == push["namespace"]
    assert template["idleMinutes"] == 0, "a pod with registry credentials is never kept for another job"


def test_the_push_credential_is_system_scoped_and_comes_from_the_token_secret():
    manifest = render(overrides=PUSH)
    [domain] = manifest.jcasc()["credentials"]["system"]["domainCredentials"]
    [cred] = domain["credentials"]
    string = cred["string"]
    # SYSTEM: the cloud's lookup finds it, a job's (withCredentials) never does; GLOBAL would hand every
    # job a token that creates pods next to the registry credentials
    assert CREDENTIALS["system_scope_visible_to_cloud"] and not CREDENTIALS["system_scope_visible_to_jobs"]
    assert string["scope"] == "SYSTEM" and string["id"] == "jda-push-cloud"
    key = re.fullmatch(r"\$\{([a-z0-9-]+)\}", string["secret"]).group(1)
    sts = manifest.get("StatefulSet")["spec"]["template"]["spec"]
    jenkins = container(sts, "jenkins")
    secrets_dir = {e["name"]: e.get("value") for e in jenkins["env"]}["SECRETS"]
    mount = mounts_of(jenkins)[secrets_dir]
    [source] = [s for s in volume(sts, mount["name"])["projected"]["sources"]
                if any(i["path"] == key for i in s["secret"]["items"])]
    token = manifest.get("Secret", name=source["secret"]["name"])
    assert token["type"] == "kubernetes.io/service-account-token" and not token.get("data")
    assert source["secret"]["items"] == [{"key": "token", "path": key}]
    account = token["metadata"]["annotations"]["kubernetes.io/service-account.name"]
    assert manifest.get("ServiceAccount", name=account)["metadata"]["namespace"] == "ci"
    # a long-lived token: the plugin reads the credential once per client and never refreshes it
    assert not CREDENTIALS["token_refreshed"]


@pytest.mark.parametrize("values", [PUSH, {**PUSH, "agent": {**PUSH["agent"], "extraTemplates": [
    {"name": "tools", "containers": [{"name": "tool", "image": "alpine:3.22"}]}]}}], ids=["push", "with-extras"])
def test_only_the_push_pods_can_read_the_registry_secret(values):
    manifest = render(overrides=values)
    readers = [o for o, spec in manifest.workloads() if "registry-push" in secret_names(spec)]
    assert readers == [manifest.push_pod()], [r.get("metadata") for r in readers]
    push = manifest.push_pod()["spec"]
    users = [c["name"] for c in [*push["initContainers"], *push["containers"]]
             if any(m["name"] == "registry-auth" for m in c.get("volumeMounts", []))]
    assert users == ["docker-setup"]


def test_the_push_namespace_is_created_labelled_kept_and_bound_to_the_admission_policy():
    manifest = render(overrides=PUSH)
    created = {n["metadata"]["name"]: n for n in manifest.all("Namespace")}
    assert set(created) == {"ci-agents", "ci-agents-push"}
    for ns in created.values():
        assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
        assert ns["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    [binding] = manifest.all("ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["matchResources"]["namespaceSelector"] == {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["ci-agents", "ci-agents-push"]}]}
    # the push pods run as an agent account of their own namespace, with the agent pod files there too
    spec = manifest.push_pod()["spec"]
    assert manifest.get("ServiceAccount", name=spec["serviceAccountName"], namespace="ci-agents-push")
    [files] = [v["configMap"]["name"] for v in spec["volumes"] if v["name"] == "dind-start"]
    assert manifest.get("ConfigMap", name=files, namespace="ci-agents-push")
    # and the NetworkPolicies treat them as agents: no ingress, the controller's listener admits them
    [deny] = [n for n in manifest.all("NetworkPolicy") if n["metadata"]["namespace"] == "ci-agents-push"]
    assert deny["spec"]["podSelector"] == {} and deny["spec"]["ingress"] == []
    listener = manifest.get("NetworkPolicy", suffix="-controller")["spec"]["ingress"][1]["from"]
    assert {p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in listener} == {
        "ci-agents", "ci-agents-push"}


def folders_script(manifest) -> str:
    [job] = manifest.jcasc()["jobs"]
    return job["script"]


def test_permitted_folders_restrict_the_charts_cloud_through_the_folder_property():
    manifest = render(overrides={"agent": {"permittedFolders": ["team-a", "team-b"]},
                                 "exampleJob": {"folder": "team-b"}})
    assert manifest.kubernetes_cloud()["usageRestricted"] is True
    script = folders_script(manifest)
    # the DSL names the property by its recorded symbol and setter (job-dsl resolves the dynamic DSL by them)
    for folder in ("team-a", "team-b"):
        assert (f"folder('{folder}') {{\n  description(") in script
    blocks = re.findall(rf"{USAGE['folder_symbol']} \{{\n\s+{USAGE['folder_setter']}\((\[[^\]]*\])\)", script)
    assert blocks == ["['kubernetes']", "['kubernetes']"]
    # folders before the job that lives in one of them, in one script (job-dsl needs the folder first)
    assert script.index("folder('team-b')") < script.index("pipelineJob('team-b/dind-example')")
    assert "Managed by the jenkins-dind-agent chart" in script


def test_a_folder_in_both_lists_may_use_both_clouds():
    values = {**PUSH, "agent": {**PUSH["agent"], "permittedFolders": ["releases", "team-a"]}}
    script = folders_script(render(overrides=values))
    assert "folder('releases') {" in script and "permittedClouds(['kubernetes', 'kubernetes-push'])" in script
    assert "permittedClouds(['kubernetes'])" in script


def test_without_restrictions_there_is_no_folder_and_no_second_cloud():
    manifest = render()
    assert [c["name"] for c in manifest.kubernetes_clouds()] == ["kubernetes"]
    assert "usageRestricted" not in manifest.kubernetes_cloud()
    assert "folder(" not in folders_script(manifest) and "credentials" not in manifest.jcasc()
    assert not [s for s in manifest.all("Secret") if s["type"] == "kubernetes.io/service-account-token"]


@pytest.mark.parametrize("values,message", [
    ({"agent": {"registry": {"server": "r.example", "push": True, "secretName": "s"}}},
     "agent.registry.pushFolders is empty"),
    ({"agent": {"registry": {"server": "r.example", "secretName": "s"}}},
     "agent.registry.secretName is set but agent.registry.push is false"),
    ({**PUSH, "agent": {**PUSH["agent"], "namespace": {"sameAsController": True}}},
     "agent.registry.push needs the agents in a namespace of their own"),
    ({**PUSH, "agent": {"registry": {**PUSH["agent"]["registry"], "pushNamespace": "ci-agents"}}},
     "agent.registry.pushNamespace (ci-agents) is the agent namespace"),
    ({**PUSH, "exampleJob": {"folder": ""}},
     "exampleJob.folder (\"\") is not one of agent.registry.pushFolders"),
    ({"agent": {"permittedFolders": ["team-a"]}},
     "exampleJob.folder (\"\") is not one of agent.permittedFolders"),
    ({"agent": {"permittedFolders": ["team/a"]}}, "/agent/permittedFolders/0"),
])
def test_push_and_folder_values_that_cannot_work_fail_naming_the_key(values, message):
    with pytest.raises(RenderError) as err:
        render(overrides=values)
    assert message in err.value.stderr, err.value.stderr


def test_every_template_gives_up_on_an_agent_that_never_connects_in_bounded_time():
    """A dind that cannot be pulled (or, as a native sidecar, never passes its startupProbe) keeps jnlp from
    starting; the plugin then waits the template's slaveConnectTimeout (its own default: 1000 s)."""
    values = {**PUSH, "agent": {**PUSH["agent"], "connectTimeoutSeconds": 240, "extraTemplates": [
        {"name": "tools", "containers": [{"name": "tool", "image": "alpine:3.22"}]}]}}
    manifest = render(overrides=values)
    templates = [t for c in manifest.kubernetes_clouds() for t in c["templates"]]
    assert len(templates) == 3
    assert {t["slaveConnectTimeout"] for t in templates} == {240}
    assert render().pod_template()["slaveConnectTimeout"] == 300
