"""The controller's extension points (issue 14): JCasC files and their merge rules, security realm,
$SECRETS, reload without restart, Ingress / HTTPRoute, scheduling and metadata, escape hatches,
ServiceMonitor and extraObjects, each read from the rendered objects and checked against the facts
recorded from the components' sources (data/upstream/jenkins-runtime.yaml)."""

from __future__ import annotations

import base64
import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from jdagent.chart import casc
from jdagent.chart.manifest import container, env_of, mounts_of, volume
from jdagent.chart.render import RenderError, render
from tests.conftest import CI_VALUES, RENDER_CASES, ci_ids

RUNTIME = yaml.safe_load((Path(__file__).parent / "data" / "upstream" / "jenkins-runtime.yaml").read_text())
CASC = RUNTIME["configuration-as-code"]
CI = {p.name.removesuffix("-values.yaml"): p for p in CI_VALUES}
GATEWAY = "gateway.networking.k8s.io/v1/HTTPRoute"
MONITORING = "monitoring.coreos.com/v1/ServiceMonitor"


def controller_spec(manifest) -> dict[str, Any]:
    return manifest.get("StatefulSet")["spec"]["template"]["spec"]


def jenkins(manifest) -> dict[str, Any]:
    return container(controller_spec(manifest), "jenkins")


def fails(overrides, *, values=None, api_versions=()) -> str:
    with pytest.raises(RenderError) as err:
        render(values=values, overrides=overrides, api_versions=api_versions)
    return err.value.stderr


# --- JCasC files ---------------------------------------------------------------------------------------

def test_jcasc_is_a_directory_of_the_charts_file_and_each_config_script():
    manifest = render(overrides={"controller": {"jcasc": {"configScripts": {
        "team-jobs": "jobs:\n  - script: folder('team')\n"}}}})
    env = env_of(jenkins(manifest))
    casc_dir = env[CASC["config"]["env"]]
    mount = mounts_of(jenkins(manifest))[casc_dir]
    cm = manifest.get("ConfigMap", name=volume(controller_spec(manifest), mount["name"])["configMap"]["name"])
    assert sorted(cm["data"]) == ["jenkins.yaml", "team-jobs.yaml"]
    assert yaml.safe_load(cm["data"]["team-jobs.yaml"]) == {"jobs": [{"script": "folder('team')"}]}
    # JCasC reads *.yaml files of the directory and skips hidden paths (the ConfigMap's ..data links)
    assert CASC["config"]["directory_pattern"].endswith("{yml,yaml,YAML,YML}")
    assert CASC["config"]["hidden_components_skipped"] is True
    assert all(not name.startswith(".") and name.endswith(".yaml") for name in cm["data"])


def scalar_paths(node: Any, prefix: str = "") -> list[str]:
    """Paths of every scalar of a JCasC document outside lists (lists merge, scalars conflict)."""
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in scalar_paths(v, f"{prefix}.{k}" if prefix else k)]
    if isinstance(node, list):
        return []
    return [prefix]


def nested(path: str, value: Any) -> dict[str, Any]:
    for key in reversed(path.split(".")):
        value = {key: value}
    return value  # type: ignore[return-value]


CHART_SCALARS = scalar_paths(render().jcasc())


@pytest.mark.parametrize("path", CHART_SCALARS)
def test_a_config_script_setting_a_scalar_of_the_chart_is_refused_at_render(path):
    """JCasC (errorOnConflict) would refuse to start on any of these; the chart refuses first."""
    with pytest.raises(casc.MergeConflict):
        casc.merge([("jenkins.yaml", render().jcasc()), ("x.yaml", nested(path, "mine"))])
    script = yaml.safe_dump(nested(path, "mine"))
    message = fails({"controller": {"jcasc": {"configScripts": {"mine": script}}}})
    assert "controller.jcasc.configScripts.mine sets" in message


def test_the_chart_owns_the_scalars_it_sets():
    assert {"jenkins.systemMessage", "jenkins.numExecutors", "jenkins.mode", "jenkins.slaveAgentPort",
            "jenkins.crumbIssuer", "unclassified.location.url"} <= set(CHART_SCALARS)
    assert any(p.startswith("jenkins.securityRealm.") for p in CHART_SCALARS)


@pytest.mark.parametrize("key,use", [
    ("jenkins.securityRealm", "controller.jcasc.securityRealm"),
    ("jenkins.authorizationStrategy", "controller.jcasc.authorizationStrategy"),
    ("jenkins.numExecutors", "controller.numExecutors"),
    ("jenkins.slaveAgentPort", "controller.agentListener.port"),
    ("jenkins.systemMessage", "controller.systemMessage"),
    ("unclassified.location.url", "controller.url"),
])
def test_the_refusal_names_the_value_to_use(key, use):
    script = yaml.safe_dump(nested(key, {"ldap": {}} if key.endswith(("Realm", "Strategy")) else 1))
    message = fails({"controller": {"jcasc": {"configScripts": {"s": script}}}})
    assert f"sets {key}" in message and f"use {use}" in message


def test_lists_merge_and_other_keys_of_a_mapping_are_allowed():
    script = yaml.safe_dump({
        "jenkins": {"clouds": [{"kubernetes": {"name": "other", "serverUrl": "https://k8s.example"}}]},
        "unclassified": {"location": {"adminAddress": "ci@example.com"}},
        "jobs": [{"script": "folder('x')"}],
    })
    manifest = render(overrides={"controller": {"jcasc": {"configScripts": {"extra": script}}}})
    docs = casc.documents(manifest)
    assert [name for name, _ in docs] == ["extra.yaml", "jenkins.yaml"], "JCasC reads the files sorted"
    merged = casc.merge(docs)
    assert [c["kubernetes"]["name"] for c in merged["jenkins"]["clouds"]] == ["other", "kubernetes"]
    assert merged["unclassified"]["location"] == {"url": render().jcasc()["unclassified"]["location"]["url"],
                                                  "adminAddress": "ci@example.com"}
    assert len(merged["jobs"]) == 2


def test_a_second_cloud_named_like_the_charts_is_refused():
    script = yaml.safe_dump({"jenkins": {"clouds": [{"kubernetes": {"name": "kubernetes"}}]}})
    message = fails({"controller": {"jcasc": {"configScripts": {"k": script}}}})
    assert "jenkins.clouds[0] named kubernetes" in message and "agent.extraTemplates" in message


def test_a_config_script_must_be_a_yaml_mapping():
    message = fails({"controller": {"jcasc": {"configScripts": {"bad": "jobs: [unclosed"}}}})
    assert "controller.jcasc.configScripts.bad is not a YAML mapping" in message


@pytest.mark.parametrize("values", RENDER_CASES, ids=ci_ids(RENDER_CASES))
def test_every_case_merges_without_conflict(values):
    docs = casc.documents(render(values=values))
    merged = casc.merge(docs)
    assert merged["jenkins"]["clouds"][0]["kubernetes"]["name"] == "kubernetes"
    assert casc.check(merged) == []


# --- security realm, $SECRETS -------------------------------------------------------------------------

def test_a_custom_realm_replaces_the_local_admin_and_its_secret():
    manifest = render(values=CI["team"])
    realm = manifest.jcasc()["jenkins"]["securityRealm"]
    assert list(realm) == ["oic"] and realm["oic"]["clientSecret"] == "${oidc-client-secret}"
    assert list(manifest.jcasc()["jenkins"]["authorizationStrategy"]) == ["globalMatrix"]
    assert not [s for s in manifest.all("Secret") if s["metadata"]["name"].endswith("-admin")]
    sources = volume(controller_spec(manifest), "jcasc-secrets")["projected"]["sources"]
    files = {i["path"]: s["secret"]["name"] for s in sources for i in s["secret"]["items"]}
    assert files == {"oidc-client-secret": "team-jenkins-oidc", "nexus-username": "team-jenkins-credentials",
                     "nexus-password": "team-jenkins-credentials", "sonar-token": "team-jenkins-credentials"}


def test_every_variable_of_the_team_jcasc_is_a_file_in_secrets():
    manifest = render(values=CI["team"])
    text = "\n".join(manifest.jcasc_files().values())
    variables = set(re.findall(r"\$\{([^}]+)\}", text))
    sources = volume(controller_spec(manifest), "jcasc-secrets")["projected"]["sources"]
    paths = {i["path"] for s in sources for i in s["secret"]["items"]}
    assert variables == paths
    assert mounts_of(jenkins(manifest))[env_of(jenkins(manifest))[CASC["secrets"]["env"]]]["readOnly"] is True


@pytest.mark.parametrize("secrets,expected", [
    ([{"name": "a", "keys": ["token"]}, {"name": "b", "keys": ["token"]}],
     "controller.jcasc.secrets[1] (b) key token collides with controller.jcasc.secrets[0] (a)"),
    ([{"name": "a", "keys": ["jda-admin-password"]}],
     "controller.jcasc.secrets[0] (a) key jda-admin-password collides with the chart's admin password"),
])
def test_colliding_secret_keys_are_refused(secrets, expected):
    assert expected in fails({"controller": {"jcasc": {"secrets": secrets}}})


def test_admin_file_names_are_free_with_a_custom_realm():
    matrix = {"globalMatrix": {"entries": [{"group": {"name": "admins", "permissions": ["Overall/Administer"]}}]}}
    manifest = render(overrides={"controller": {"jcasc": {"securityRealm": {"ldap": {"configurations": []}},
                                                          "authorizationStrategy": matrix,
                                                          "secrets": [{"name": "a", "keys": ["jda-admin-password"]}]}}})
    sources = volume(controller_spec(manifest), "jcasc-secrets")["projected"]["sources"]
    assert [s["secret"]["name"] for s in sources] == ["a"]


# --- reload -------------------------------------------------------------------------------------------

def reload_manifest(**controller):
    return render(overrides={"controller": {"jcasc": {"reload": {"enabled": True, **controller}}}})


def test_reload_sidecar_posts_to_the_crumb_excluded_path_of_the_reload_action():
    manifest = reload_manifest()
    spec = controller_spec(manifest)
    sidecar, main = container(spec, "casc-reload"), jenkins(manifest)
    assert sidecar["image"] == main["image"], "built from an image the chart already pulls"
    assert "curl" in RUNTIME["jenkins-image"]["packages"]
    env = env_of(sidecar)
    port = next(p["containerPort"] for p in main["ports"] if p["name"] == "http")
    assert env["RELOAD_URL"] == f"http://localhost:{port}{CASC['reload']['crumb_excluded_path_info']}"
    assert CASC["reload"]["crumb_excluded_path_info"] == f"/{CASC['reload']['url_name']}/"
    # both containers watch / read the same JCasC directory
    casc_dir = env_of(main)[CASC["config"]["env"]]
    assert env["CASC_DIR"] == casc_dir
    assert mounts_of(sidecar)[casc_dir]["name"] == mounts_of(main)[casc_dir]["name"]
    script = manifest.get("ConfigMap", suffix="-config")["data"]["casc-reload.sh"]
    assert f"{CASC['reload']['token_parameter']}@-" in script and "-X POST" in script


def test_reload_token_reaches_jenkins_and_the_sidecar_from_one_secret():
    manifest = reload_manifest()
    spec = controller_spec(manifest)
    token_ref = env_of(jenkins(manifest))[CASC["reload"]["token_env"]]["secretKeyRef"]
    sidecar = container(spec, "casc-reload")
    token_mount = mounts_of(sidecar)[str(Path(env_of(sidecar)["TOKEN_FILE"]).parent)]
    vol = volume(spec, token_mount["name"])["secret"]
    assert vol["secretName"] == token_ref["name"]
    assert vol["items"] == [{"key": token_ref["key"], "path": Path(env_of(sidecar)["TOKEN_FILE"]).name}]
    secret = manifest.get("Secret", name=token_ref["name"])
    assert len(base64.b64decode(secret["data"][token_ref["key"]])) == 40
    assert all("valueFrom" not in e for e in sidecar["env"]), "the sidecar reads the token from its file only"


def test_an_existing_reload_secret_is_used_and_none_is_generated():
    manifest = reload_manifest(existingSecret="casc-token", tokenKey="t")
    assert not [s for s in manifest.all("Secret") if "reload" in s["metadata"]["name"]]
    ref = env_of(jenkins(manifest))["CASC_RELOAD_TOKEN"]["secretKeyRef"]
    assert ref == {"name": "casc-token", "key": "t"}


def pod_annotations(overrides):
    return render(overrides=overrides).get("StatefulSet")["spec"]["template"]["metadata"]["annotations"]


@pytest.mark.parametrize("reload", [False, True])
def test_jcasc_changes_restart_the_controller_only_without_reload(reload):
    base = {"controller": {"jcasc": {"reload": {"enabled": reload}}}}
    changed = copy.deepcopy(base)
    changed["agent"] = {"instanceCap": 3}
    before, after = pod_annotations(base), pod_annotations(changed)
    assert render(overrides=base).jcasc() != render(overrides=changed).jcasc()
    assert (before == after) is reload
    plugins = copy.deepcopy(base)
    plugins["controller"]["prometheus"] = {"enabled": True}
    assert pod_annotations(plugins)["checksum/plugins"] != before["checksum/plugins"], "plugins always restart"


def test_reload_is_off_by_default():
    manifest = render()
    assert [c["name"] for c in controller_spec(manifest)["containers"]] == ["jenkins"]
    assert "CASC_RELOAD_TOKEN" not in env_of(jenkins(manifest))


# --- Ingress, HTTPRoute, URL prefix ---------------------------------------------------------------------

def test_ingress_routes_to_the_ui_service_and_sets_the_public_url():
    manifest = render(values=CI["team"])
    ingress = manifest.get("Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"secretName": "jenkins-team-tls", "hosts": ["jenkins.team.example.com"]}]
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "jenkins.team.example.com"
    backend = rule["http"]["paths"][-1]["backend"]["service"]
    service = manifest.get("Service", name=backend["name"])
    assert backend["port"]["name"] in [p["name"] for p in service["spec"]["ports"]]
    assert manifest.jcasc()["unclassified"]["location"]["url"] == "https://jenkins.team.example.com/"


def test_plain_http_at_the_edge_fails_the_render_naming_the_key():
    """An Ingress host no tls entry names, a hostless Ingress without tls and an HTTPRoute without an
    https controller.url each fail, naming the key; controller.allowPlainHttp accepts them."""
    gw = {"enabled": True, "force": True, "parentRefs": [{"name": "gw"}]}
    cases = {
        "controller.ingress.hosts[1] (b.example)": {"ingress": {
            "enabled": True, "hosts": ["a.example", "b.example"],
            "tls": [{"secretName": "t", "hosts": ["a.example"]}]}},
        "controller.ingress.tls is empty": {"ingress": {"enabled": True}},
        "controller.url is not https://": {"url": "http://ci.example/", "httpRoute": gw},
    }
    for message, controller in cases.items():
        assert message in fails({"controller": controller}), message
        render(overrides={"controller": {**controller, "allowPlainHttp": True}})
    named = render(overrides={"controller": {"ingress": {
        "enabled": True, "hosts": ["a.example"], "tls": [{"secretName": "t", "hosts": ["a.example"]}]}}})
    assert named.jcasc()["unclassified"]["location"]["url"] == "https://a.example/"
    assert render(overrides={"controller": {"url": "https://ci.example/", "httpRoute": gw}}).get("HTTPRoute")


def test_an_ingress_without_tls_gives_an_http_url_and_an_explicit_url_wins():
    plain = render(overrides={"controller": {"allowPlainHttp": True,
                                             "ingress": {"enabled": True, "hosts": ["ci.example"]}}})
    assert plain.jcasc()["unclassified"]["location"]["url"] == "http://ci.example/"
    explicit = render(overrides={"controller": {"url": "https://jenkins.example/", "allowPlainHttp": True, "ingress": {
        "enabled": True, "hosts": ["ci.example"]}}})
    assert explicit.jcasc()["unclassified"]["location"]["url"] == "https://jenkins.example/"


def test_an_ingress_path_moves_jenkins_under_that_prefix_everywhere():
    manifest = render(overrides={"controller": {"allowPlainHttp": True, "ingress": {
        "enabled": True, "hosts": ["ci.example"], "path": "/jenkins"}}})
    main = jenkins(manifest)
    assert env_of(main)[RUNTIME["jenkins-image"]["jenkins_opts_env"]] == "--prefix=/jenkins"
    assert "prefix" in RUNTIME["winstone"]["options"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert main[probe]["httpGet"]["path"] == "/jenkins/login"
    cloud = manifest.kubernetes_cloud()
    assert cloud["jenkinsUrl"].endswith(":8080/jenkins")
    assert manifest.jcasc()["unclassified"]["location"]["url"] == "http://ci.example/jenkins/"
    paths = manifest.get("Ingress")["spec"]["rules"][0]["http"]["paths"]
    assert [p["path"] for p in paths] == ["/jenkins/reload-configuration-as-code", "/jenkins"]


def test_the_reload_endpoint_is_not_routed_at_the_edge():
    """The Ingress sends the reload prefix (the longest match wins) to a Service of the chart whose
    selector matches none of the chart's pods; the HTTPRoute has a rule for it with neither backendRefs
    nor filters, which forwards nothing."""
    manifest = render(values=CI["team"])
    paths = manifest.get("Ingress")["spec"]["rules"][0]["http"]["paths"]
    reload = [p for p in paths if p["path"].endswith("/reload-configuration-as-code")]
    assert len(reload) == 1 and reload[0]["pathType"] == "Prefix"
    target = reload[0]["backend"]["service"]["name"]
    [closed_svc] = [s for s in manifest.all("Service") if s["metadata"]["name"] == target]
    selector = closed_svc["spec"]["selector"]
    pods = [w["spec"]["template"]["metadata"]["labels"] for w in manifest.all("StatefulSet")
            + manifest.all("Deployment")]
    assert pods and not any(selector.items() <= labels.items() for labels in pods), (selector, pods)
    # agent pods (the plugin's templates) carry their own component; none is the closed Service's
    assert f"component: {selector['app.kubernetes.io/component']}" not in yaml.safe_dump_all(
        [o for o in manifest.all("ConfigMap")])
    ui = [p for p in paths if p not in reload]
    assert all(len(p["path"]) < len(reload[0]["path"]) for p in ui)
    rules = render(values=CI["platform"]).get("HTTPRoute")["spec"]["rules"]
    closed = [r for r in rules if r["matches"][0]["path"]["value"].endswith("/reload-configuration-as-code")]
    assert len(closed) == 1 and "backendRefs" not in closed[0] and "filters" not in closed[0]


def test_no_prefix_without_an_ingress():
    manifest = render()
    assert "JENKINS_OPTS" not in env_of(jenkins(manifest))
    assert not manifest.all("Ingress")


def test_httproute_needs_the_gateway_api_or_force():
    overrides = {"controller": {"url": "https://ci.example/", "httpRoute": {"enabled": True,
                                                                            "parentRefs": [{"name": "gw"}]}}}
    assert "does not serve gateway.networking.k8s.io/v1 HTTPRoute" in fails(overrides)
    served = render(overrides=overrides, api_versions=[GATEWAY]).get("HTTPRoute")
    forced = render(overrides={"controller": {"url": "https://ci.example/", "httpRoute": {
        **overrides["controller"]["httpRoute"], "force": True}}})
    assert served == forced.get("HTTPRoute")


def test_httproute_points_at_the_ui_service_port():
    manifest = render(values=CI["platform"])
    route = manifest.get("HTTPRoute")
    assert route["spec"]["parentRefs"] == [{"name": "shared-gateway", "namespace": "gateway-system",
                                            "sectionName": "https"}]
    assert route["spec"]["hostnames"] == ["jenkins.platform.example.com"]
    reload, rule = route["spec"]["rules"]
    assert reload == {"matches": [{"path": {"type": "PathPrefix", "value": "/reload-configuration-as-code"}}]}
    [backend] = rule["backendRefs"]
    service = manifest.get("Service", name=backend["name"])
    assert backend["port"] in [p["port"] for p in service["spec"]["ports"]]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]


def test_httproute_without_parents_is_refused():
    assert "controller.httpRoute.parentRefs is empty" in fails(
        {"controller": {"url": "https://ci.example/", "httpRoute": {"enabled": True, "force": True}}})


# --- scheduling, metadata, day 2, escape hatches -------------------------------------------------------

def test_scheduling_identity_and_metadata_values_reach_the_controller():
    manifest = render(values=CI["platform"])
    sts = manifest.get("StatefulSet")
    spec, meta = sts["spec"]["template"]["spec"], sts["spec"]["template"]["metadata"]
    assert meta["labels"]["team"] == "platform"
    assert meta["labels"]["app.kubernetes.io/component"] == "controller"
    assert spec["priorityClassName"] == "platform-critical"
    assert spec["terminationGracePeriodSeconds"] == 120
    sa = manifest.get("ServiceAccount", name=spec["serviceAccountName"])
    assert sa["metadata"]["annotations"] == {"iam.gke.io/gcp-service-account":
                                             "jenkins@platform.iam.gserviceaccount.com"}
    claim = sts["spec"]["volumeClaimTemplates"][0]
    assert claim["metadata"]["annotations"] == {"backup.example.com/policy": "daily"}
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"] and claim["spec"]["storageClassName"] == "premium-rwo"


def test_pod_disruption_budget_selects_the_controller_only():
    manifest = render(values=CI["platform"])
    pdb = manifest.get("PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 0
    labels = manifest.get("StatefulSet")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "controller"


def test_pod_labels_cannot_take_over_selector_labels():
    message = fails({"controller": {"podLabels": {"app.kubernetes.io/component": "x"}}})
    assert "controller.podLabels sets app.kubernetes.io/component" in message


def test_escape_hatches_land_in_the_pod():
    manifest = render(overrides={"controller": {
        "extraEnv": [{"name": "TZ", "value": "Europe/Berlin"}],
        "extraVolumes": [{"name": "cache", "emptyDir": {}}],
        "extraVolumeMounts": [{"name": "cache", "mountPath": "/var/cache/jenkins"}],
        "extraContainers": [{"name": "backup", "image": "busybox:1.37.0"}],
        "extraInitContainers": [{"name": "prepare", "image": "busybox:1.37.0"}],
        "imagePullSecrets": [{"name": "pull"}],
        "service": {"annotations": {"a": "b"}},
    }})
    spec = controller_spec(manifest)
    assert env_of(jenkins(manifest))["TZ"] == "Europe/Berlin"
    assert mounts_of(jenkins(manifest))["/var/cache/jenkins"]["name"] == "cache"
    assert volume(spec, "cache") == {"name": "cache", "emptyDir": {}}
    assert [c["name"] for c in spec["initContainers"]] == ["install-plugins", "prepare"]
    assert [c["name"] for c in spec["containers"]] == ["jenkins", "backup"]
    assert spec["imagePullSecrets"] == [{"name": "pull"}]
    assert manifest.get("Service", name="ci-jenkins-dind-agent")["metadata"]["annotations"] == {"a": "b"}


def test_plugin_installer_gets_the_java_options_for_a_proxy():
    manifest = render(values=CI["corporate"])
    init = container(controller_spec(manifest), "install-plugins")
    opts = env_of(init)[RUNTIME["jenkins-image"]["plugin_cli_java_opts_env"]]
    assert "-Dhttps.proxyHost=proxy.corp.example.com" in opts
    assert RUNTIME["plugin-installation-manager-tool"]["http_client_system_properties"] is True
    assert controller_spec(manifest)["imagePullSecrets"] == [{"name": "corp-registry-pull"}]


# --- ServiceMonitor, extraObjects ----------------------------------------------------------------------

def test_servicemonitor_only_where_the_api_is_served():
    on = {"controller": {"prometheus": {"enabled": True}}}
    assert not render(overrides=on).all("ServiceMonitor")
    manifest = render(overrides=on, api_versions=[MONITORING])
    monitor = manifest.get("ServiceMonitor")
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["path"] == f"/{RUNTIME['prometheus']['default_path']}/"
    selected = [s for s in manifest.all("Service")
                if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
    assert any(endpoint["port"] in [p["name"] for p in s["spec"]["ports"]] for s in selected)
    assert not render(api_versions=[MONITORING]).all("ServiceMonitor"), "only with the prometheus plugin"


def test_extra_objects_are_templated():
    manifest = render(values=CI["platform"], namespace="ci-platform")
    external = manifest.get("ExternalSecret")
    assert external["metadata"]["namespace"] == "ci-platform"
    keys = {d["secretKey"] for d in external["spec"]["data"]}
    controller = render(values=CI["platform"]).get("StatefulSet")["spec"]["template"]["spec"]
    ref = env_of(container(controller, "jenkins"))["CASC_RELOAD_TOKEN"]["secretKeyRef"]
    assert ref["name"] == external["spec"]["target"]["name"] and ref["key"] in keys
    assert {"jenkins-admin-user", "jenkins-admin-password"} <= keys


def test_extra_objects_as_strings_go_through_tpl():
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: '{{ .Release.Name }}-extra'\ndata: {}\n"
    manifest = render(overrides={"extraObjects": [text]}, release="team")
    assert manifest.get("ConfigMap", name="team-extra")["data"] == {}


def test_gitops_platform_case_renders_no_secret():
    assert render(values=CI["platform"]).all("Secret") == []


@pytest.mark.parametrize("interval", [1, 10, 600])
def test_reload_probes_read_the_heartbeat_and_outlast_one_check(interval):
    manifest = reload_manifest(interval=interval)
    sidecar = container(controller_spec(manifest), "casc-reload")
    beat = env_of(sidecar)["HEARTBEAT"]
    assert sidecar["readinessProbe"]["exec"]["command"] == ["test", "-f", beat]
    live = sidecar["livenessProbe"]["exec"]["command"][-1]
    assert beat in live
    threshold = int(re.search(r"-lt (\d+)", live).group(1))
    script = manifest.get("ConfigMap", suffix="-config")["data"]["casc-reload.sh"]
    curl_limit = int(re.search(r"--max-time (\d+)", script).group(1))
    assert threshold > interval + curl_limit, "a slow but working check must not look dead"
    assert mounts_of(sidecar)["/tmp"]["name"] == "tmp" and beat.startswith("/tmp/")


def test_the_env_secret_skip_is_declared_only_with_reload():
    def skips(manifest):
        return {v.split("=")[0] for v in manifest.get("StatefulSet")["metadata"]["annotations"].values()}
    assert "CKV_K8S_35" not in skips(render())
    assert "CKV_K8S_35" in skips(reload_manifest())


@pytest.mark.parametrize("version", ["1.29.0", "1.37.0"])
def test_optional_objects_validate_strictly_where_their_apis_are_served(version):
    from jdagent.chart.kubeschema import validation_errors

    manifest = render(values=CI["platform"], kube_version=version, api_versions=[MONITORING, GATEWAY])
    kinds = {o["kind"] for o in manifest.objects}
    assert {"ServiceMonitor", "HTTPRoute", "PodDisruptionBudget", "ExternalSecret"} <= kinds
    assert validation_errors(manifest.objects, version) == []
    ingress = render(values=CI["team"], kube_version=version)
    assert validation_errors(ingress.all("Ingress"), version) == []
