"""JCasC wiring: the cloud points at Services of the same render, RBAC grants what the cloud needs
in the agent namespace only, and the example job runs on the pod template's label."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from jdagent.chart.manifest import container, env_of, mounts_of, volume
from jdagent.chart.render import render
from tests.conftest import CI_VALUES, ci_ids


def service_port(manifest, host: str, port: int) -> dict:
    """The Service named by a cluster DNS host, checked for namespace and port."""
    name, namespace, svc, *_ = host.split(".")
    assert svc == "svc"
    service = manifest.get("Service", name=name)
    assert service["metadata"]["namespace"] == namespace
    ports = [p for p in service["spec"]["ports"] if p["port"] == port]
    assert ports, f"Service {name} has no port {port}"
    return ports[0]


def controller_container_port(manifest, port_name: str) -> int:
    sts = manifest.get("StatefulSet")
    jenkins = container(sts["spec"]["template"]["spec"], "jenkins")
    return next(p["containerPort"] for p in jenkins["ports"] if p["name"] == port_name)


@pytest.mark.parametrize("values", CI_VALUES, ids=ci_ids(CI_VALUES))
def test_jenkins_url_and_tunnel_resolve_to_services(values):
    manifest = render(values=values, namespace="tools")
    cloud = manifest.kubernetes_cloud()
    url = urlsplit(cloud["jenkinsUrl"])
    http = service_port(manifest, url.hostname, url.port)
    assert http["targetPort"] == "http"
    assert controller_container_port(manifest, "http") == 8080
    sts_labels = manifest.get("StatefulSet")["spec"]["template"]["metadata"]["labels"]
    selector = manifest.get("Service", name=url.hostname.split(".")[0])["spec"]["selector"]
    assert selector.items() <= sts_labels.items()
    if cloud.get("webSocket"):
        assert "jenkinsTunnel" not in cloud
        assert len(manifest.all("Service")) == 1
    else:
        host, port = cloud["jenkinsTunnel"].rsplit(":", 1)
        tunnel = service_port(manifest, host, int(port))
        assert tunnel["targetPort"] == "agent-listener"
        assert controller_container_port(manifest, "agent-listener") == int(port)
        assert manifest.jcasc()["jenkins"]["slaveAgentPort"] == int(port)


def test_cloud_uses_agent_namespace_and_caps():
    manifest = render(overrides={"agent": {"namespace": {"name": "builds", "create": True},
                                           "containerCap": 7, "instanceCap": 3}})
    cloud = manifest.kubernetes_cloud()
    template = manifest.pod_template()
    assert cloud["namespace"] == template["namespace"] == "builds"
    assert cloud["containerCapStr"] == "7"
    assert template["instanceCap"] == 3
    assert cloud["podRetention"] == "never" and template["podRetention"] == "never"
    assert template["yamlMergeStrategy"] == "override"


def test_instance_cap_above_container_cap_is_refused():
    from jdagent.chart.render import RenderError

    with pytest.raises(RenderError, match=r"agent\.instanceCap"):
        render(overrides={"agent": {"containerCap": 2, "instanceCap": 5}})


@pytest.mark.parametrize("values", CI_VALUES, ids=ci_ids(CI_VALUES))
def test_rbac_grants_what_the_cloud_needs_in_the_agent_namespace_only(values):
    """The controller's account: pod rights in the agent namespace and nowhere else. With the push template,
    the push cloud's own account: pod rights in the push namespace and nowhere else."""
    manifest = render(values=values)
    assert not manifest.all("ClusterRole") and not manifest.all("ClusterRoleBinding")
    clouds = {c["name"]: c for c in manifest.kubernetes_clouds()}
    controller_sa = manifest.get("StatefulSet")["spec"]["template"]["spec"]["serviceAccountName"]
    accounts = {"kubernetes": controller_sa}
    if "kubernetes-push" in clouds:
        [token] = [s for s in manifest.all("Secret") if s["type"] == "kubernetes.io/service-account-token"]
        accounts["kubernetes-push"] = token["metadata"]["annotations"]["kubernetes.io/service-account.name"]
    assert set(clouds) == set(accounts)
    bindings = manifest.all("RoleBinding")
    assert len(bindings) == len(clouds) == len(manifest.all("Role"))
    for name, cloud in clouds.items():
        [binding] = [b for b in bindings if b["subjects"][0]["name"] == accounts[name]]
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": accounts[name], "namespace": "ci"}]
        role = manifest.get("Role", name=binding["roleRef"]["name"])
        assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == cloud["namespace"]
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": role["metadata"]["name"]}
        grants = {(res, verb) for rule in role["rules"] for res in rule["resources"] for verb in rule["verbs"]}
        needed = {("pods", v) for v in ("create", "delete", "get", "list", "watch")}
        needed |= {("pods/exec", "create"), ("pods/exec", "get"), ("pods/log", "get"), ("events", "watch")}
        if name == "kubernetes":
            needed |= {("persistentvolumeclaims", "create"), ("persistentvolumeclaims", "delete")}
        assert needed <= grants
        assert all(r["apiGroups"] == [""] for r in role["rules"])
        assert not any("*" in r["verbs"] or "*" in r["resources"] for r in role["rules"])
        assert not any(res in ("secrets", "nodes") for res, _ in grants)


@pytest.mark.parametrize("label", ["dind", "docker-builds"])
def test_example_job_runs_on_the_pod_template_label(label):
    manifest = render(overrides={"agent": {"label": label}})
    template = manifest.pod_template()
    assert template["label"] == label
    script = manifest.jcasc()["jobs"][0]["script"]
    assert f"agent {{ label '{label}' }}" in script
    assert "docker build --network host" in script


def test_example_job_pushes_to_the_configured_registry():
    manifest = render(values=[p for p in CI_VALUES if p.name == "push-values.yaml"])
    [job] = manifest.jcasc()["jobs"]
    script = job["script"]
    assert "stringParam('IMAGE', 'registry.registry.svc.cluster.local:5000/dind-example:build'" in script
    assert "booleanParam('PUSH', true" in script
    assert "docker push" in script
    # from the push template, in the folder that may use it (created first, in the same script)
    assert script.index("folder('releases')") < script.index("pipelineJob('releases/dind-example')")
    assert "agent { label 'dind-push' }" in script
    [template] = manifest.kubernetes_cloud("kubernetes-push")["templates"]
    assert template["label"] == "dind-push"


def test_example_job_can_be_disabled():
    assert "jobs" not in render(overrides={"exampleJob": {"enabled": False}}).jcasc()


def secrets_volume(manifest):
    """(jenkins env, its $SECRETS mount, the volume behind it)."""
    spec = manifest.get("StatefulSet")["spec"]["template"]["spec"]
    jenkins = container(spec, "jenkins")
    env = env_of(jenkins)
    mount = mounts_of(jenkins)[env["SECRETS"]]
    return env, mount, volume(spec, mount["name"])


def secret_sources(vol):
    """Secret name -> {key: path} of a projected $SECRETS volume."""
    return {s["secret"]["name"]: {i["key"]: i["path"] for i in s["secret"]["items"]}
            for s in vol["projected"]["sources"]}


def test_admin_credentials_reach_jcasc_only_through_secret_files():
    manifest = render()
    users = manifest.jcasc()["jenkins"]["securityRealm"]["local"]["users"]
    assert users == [{"id": "${jda-admin-user}", "password": "${jda-admin-password}"}]
    env, mount, vol = secrets_volume(manifest)
    assert mount["readOnly"] is True
    assert not any(isinstance(v, dict) and "secretKeyRef" in v for v in env.values()), "no secrets in env"
    secret = manifest.get("Secret")
    assert vol["projected"]["defaultMode"] == 0o400
    sources = secret_sources(vol)
    assert sources == {secret["metadata"]["name"]: {"jenkins-admin-user": "jda-admin-user",
                                                     "jenkins-admin-password": "jda-admin-password"}}
    assert set(sources[secret["metadata"]["name"]]) <= set(secret["data"])


def test_existing_admin_secret_renders_no_secret():
    manifest = render(overrides={"controller": {"admin": {"existingSecret": "jenkins-admin",
                                                          "passwordKey": "password"}}})
    assert not manifest.all("Secret")
    _, _, vol = secrets_volume(manifest)
    assert secret_sources(vol)["jenkins-admin"]["password"] == "jda-admin-password"


def test_controller_persistence_modes():
    default = render().get("StatefulSet")["spec"]
    assert default["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "8Gi"
    claim = render(overrides={"controller": {"persistence": {"existingClaim": "home"}}}).get("StatefulSet")["spec"]
    assert "volumeClaimTemplates" not in claim
    vols = {v["name"]: v for v in claim["template"]["spec"]["volumes"]}
    assert vols["jenkins-home"]["persistentVolumeClaim"]["claimName"] == "home"
    off = render(overrides={"controller": {"persistence": {"enabled": False}}}).get("StatefulSet")["spec"]
    assert {v["name"]: v for v in off["template"]["spec"]["volumes"]}["jenkins-home"] == {
        "name": "jenkins-home", "emptyDir": {}}


def test_controller_probes_and_non_root():
    spec = render().get("StatefulSet")["spec"]["template"]["spec"]
    jenkins = container(spec, "jenkins")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert jenkins[probe]["httpGet"]["path"] == "/login"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 1000
    assert jenkins["securityContext"]["allowPrivilegeEscalation"] is False
    assert "-Djenkins.install.runSetupWizard=false" in env_of(jenkins)["JAVA_OPTS"]


def test_agent_namespace_is_labelled_privileged_only_when_created():
    manifest = render(values=[p for p in CI_VALUES if p.name == "agent-namespace-values.yaml"])
    ns = manifest.get("Namespace")
    assert ns["metadata"]["name"] == "ci-agents"
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    # by default the chart creates "<release namespace>-<release name>-agents", one per release, shortened
    # for a release named after its namespace; beside the controller, or told not to, none
    [default] = render(namespace="team-a").all("Namespace")
    assert default["metadata"]["name"] == "team-a-ci-agents"
    assert default["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    assert render(namespace="team-a", release="other").get("Namespace")["metadata"]["name"] == "team-a-other-agents"
    assert render(namespace="jenkins", release="jenkins").get("Namespace")["metadata"]["name"] == "jenkins-agents"
    assert render(namespace="ci").kubernetes_cloud()["namespace"] == "ci-agents"
    assert not render(overrides={"agent": {"namespace": {"sameAsController": True}}}).all("Namespace")
    assert not render(overrides={"agent": {"namespace": {"create": False}}}).all("Namespace")
    # a long release namespace still gives a 63-character label
    long = render(namespace="n" * 63).get("Namespace")["metadata"]["name"]
    assert long == "n" * 56 + "-agents"


def test_the_created_agent_namespace_outlives_the_release():
    """Uninstall (helm.sh/resource-policy, helm pkg/kube/resource_policy.go) and Argo CD's prune and
    Application deletion (sync-options Prune=false,Delete=false) leave it, with the Secrets put there."""
    ns = render(values=[p for p in CI_VALUES if p.name == "agent-namespace-values.yaml"]).get("Namespace")
    annotations = ns["metadata"]["annotations"]
    assert annotations["helm.sh/resource-policy"] == "keep"
    options = {o.strip() for o in annotations["argocd.argoproj.io/sync-options"].split(",")}
    assert options == {"Prune=false", "Delete=false"}


def test_network_policies_close_agent_ingress_and_open_the_listener_to_agents_only():
    """In an agent namespace of its own every pod is an agent's (Jenkinsfile podTemplates included):
    the policy selects the whole namespace, and the listener admits that namespace."""
    manifest = render(values=[p for p in CI_VALUES if p.name == "agent-namespace-values.yaml"])
    [agents] = [n for n in manifest.all("NetworkPolicy") if n["metadata"]["namespace"] == "ci-agents"]
    assert agents["metadata"]["name"].endswith("-agents")
    assert agents["spec"]["policyTypes"] == ["Ingress"] and agents["spec"]["ingress"] == []
    assert agents["spec"]["podSelector"] == {}, "every pod of the agent namespace"
    ctl = manifest.get("NetworkPolicy", suffix="-controller")["spec"]
    controller_labels = manifest.get("StatefulSet")["spec"]["template"]["metadata"]["labels"]
    assert ctl["podSelector"]["matchLabels"].items() <= controller_labels.items()
    listener = [r for r in ctl["ingress"] if any(p["port"] == "agent-listener" for p in r["ports"])]
    assert len(listener) == 1
    assert listener[0]["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ci-agents"}}}]
    assert not render(overrides={"networkPolicy": {"enabled": False}}).all("NetworkPolicy")


def test_beside_the_controller_the_policies_select_the_agents_and_every_pod_the_plugin_starts():
    """Sharing the release namespace, the policies select the chart's agent pods and, by the label the
    Kubernetes plugin puts on every pod it starts (jenkins=slave), Jenkinsfile-defined ones; neither
    selector matches the controller or the mirror."""
    manifest = render(overrides={"mirror": {"enabled": True}, "agent": {"namespace": {"sameAsController": True}}})
    policies = {n["metadata"]["name"].removeprefix("ci-jenkins-dind-agent-"): n["spec"]
                for n in manifest.all("NetworkPolicy")}
    assert set(policies) == {"agents", "agents-plugin-pods", "controller", "mirror"}
    selectors = [policies["agents"]["podSelector"]["matchLabels"],
                 policies["agents-plugin-pods"]["podSelector"]["matchLabels"]]
    assert selectors[0] == {"app.kubernetes.io/name": "jenkins-dind-agent", "app.kubernetes.io/instance": "ci",
                            "app.kubernetes.io/component": "agent"}
    assert selectors[1] == {"jenkins": "slave"}
    assert selectors[0].items() <= manifest.agent_pod()["metadata"]["labels"].items()
    assert manifest.test_pod()["metadata"]["labels"].items() >= selectors[0].items()
    others = [w["spec"]["template"]["metadata"]["labels"] for w in manifest.all("StatefulSet")
              + manifest.all("Deployment")]
    assert len(others) == 2
    assert not any(sel.items() <= labels.items() for sel in selectors for labels in others)
    for name in ("agents", "agents-plugin-pods"):
        assert policies[name]["policyTypes"] == ["Ingress"] and policies[name]["ingress"] == []
    [listener] = [r for r in policies["controller"]["ingress"]
                  if any(p["port"] == "agent-listener" for p in r["ports"])]
    assert [peer["podSelector"]["matchLabels"] for peer in listener["from"]] == selectors
    assert all(peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "ci"}
               for peer in listener["from"])


def test_embedded_files_survive_jcasc_and_groovy():
    """The Jenkinsfile and the sample Dockerfile go verbatim into single-quoted Groovy strings inside JCasC:
    no brace variables (JCasC would resolve them), no triple quotes, no backslashes (Groovy escapes)."""
    from jdagent.paths import CHART_DIR

    for name in ("Jenkinsfile", "sample/Dockerfile"):
        text = (CHART_DIR / "files" / name).read_text()
        assert "${" not in text and "'''" not in text and "\\" not in text, name
    script = render().jcasc()["jobs"][0]["script"]
    assert (CHART_DIR / "files" / "sample" / "Dockerfile").read_text() in script
