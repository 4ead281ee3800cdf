"""The kustomize path (charts/spinnaker-values/kustomize/): generated from spinnaker.yaml like the Halyard
path, built offline by the pinned `kubectl kustomize` against a stand-in of spinnaker/spinnaker's
spinnaker-kustomize/ tree written from the recorded facts, and checked against those facts: the remote
targets, images at the release, every key of the <svc>-local.yml files a recorded field, no secret
inline, RBAC limited to the account namespaces, MySQL as main's #7823, and the same Jenkins master,
registry account and Kubernetes account as the Halyard path."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from jdagent.chart import spinnaker, spinnakerbase
from jdagent.paths import REPO_ROOT, SPINNAKER_DIR
from tests.unit.test_spinnaker_values import hal_lines

DATA = Path(__file__).parent / "data" / "upstream"
FACTS = yaml.safe_load((DATA / "spinnaker-kustomize.yaml").read_text())
SPIN = yaml.safe_load((DATA / "spinnaker.yaml").read_text())
SRC = spinnaker.load()
ENVS = tuple(SRC.environments)
HALYARD = yaml.safe_load((SPINNAKER_DIR / "values.yaml").read_text())
SECRET_WORDS = re.compile(r"password|token|secret", re.I)
PLACEHOLDER = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, list[dict]]:
    """kustomize/<env> as committed, built against the stand-in tree."""
    return {env: spinnakerbase.build_offline(env, tmp_path_factory.mktemp(env), SRC) for env in ENVS}


def objects(docs: list[dict], kind: str) -> dict[str, dict]:
    return {(d["metadata"].get("namespace", "") + "/" + d["metadata"]["name"]).lstrip("/"): d
            for d in docs if d["kind"] == kind}


def deployment(docs: list[dict], name: str) -> dict:
    return objects(docs, "Deployment")[f"{SRC.namespace}/{name}"]


def container(docs: list[dict], name: str) -> dict:
    [found] = [c for c in deployment(docs, name)["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return found


def mounted_configmaps(docs: list[dict], name: str) -> list[dict]:
    """The ConfigMaps projected into the config volume of Deployment `name`."""
    configmaps = objects(docs, "ConfigMap")
    volumes = deployment(docs, name)["spec"]["template"]["spec"]["volumes"]
    config = next(v for v in volumes if v["name"] == FACTS["jvm_deployment_common"]["config_volume"]["name"])
    return [configmaps[f"{SRC.namespace}/{s['configMap']['name']}"] for s in config["projected"]["sources"]]


def local_file(docs: list[dict], svc: str) -> dict:
    """<svc>-local.yml as the service reads it (from its own generated ConfigMap)."""
    name = spinnaker.LOCAL_FILES[svc]
    [doc] = [yaml.safe_load(cm["data"][name]) for cm in mounted_configmaps(docs, svc) if name in cm.get("data", {})]
    return doc


def canonical(key: str) -> str:
    """Spring Boot's relaxed names: `docker-registry` and `dockerRegistry` are one property."""
    return key.replace("-", "").lower()


def keys(node: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out += keys(value, path + ".")
        elif isinstance(value, list) and value and all(isinstance(i, dict) for i in value):
            out += [f"{path}[].{sub}" for item in value for sub in item]
        else:
            out.append(path)
    return out


# --- one source --------------------------------------------------------------------------------------------
def test_committed_files_equal_a_fresh_generation():
    """GitOps reads the committed files: they must be what spinnaker.yaml generates."""
    changed = spinnaker.stale(SRC)
    report = "\n".join(spinnaker.describe(p, t) for p, t in changed.items())
    assert not changed, f"regenerate with `python -m jdagent.chart.spinnaker --write` and review the diff:\n{report}"


def test_check_mode_fails_on_a_changed_source(tmp_path):
    raw = yaml.safe_load(spinnaker.SOURCE.read_text())
    raw["jenkins"]["address"] = "http://jenkins.elsewhere.svc.cluster.local:8080"
    (tmp_path / "spinnaker.yaml").write_text(yaml.safe_dump(raw))
    assert spinnaker.main(["--check", "--source", str(tmp_path / "spinnaker.yaml")]) == 1
    assert spinnaker.main(["--check"]) == 0


@pytest.mark.parametrize("edit,expected", [
    (lambda r: r["jenkins"].pop("address"), "jenkins.address is missing"),
    (lambda r: r["registry"]["password"].update(key="password"), "registry.password.key must be the account name"),
    (lambda r: r["kubernetes"].update(namespaces=[]), "kubernetes.namespaces must list at least one name"),
    (lambda r: r["kubernetes"].update(namespaces=["Apps"]), "kubernetes.namespaces[0] must be a Kubernetes name"),
    (lambda r: r["jenkins"]["token"].update(env="jenkins-token"), "jenkins.token.env must be an environment variable"),
    (lambda r: r["jenkins"].update(csrf="yes"), "jenkins.csrf must be a bool"),
])
def test_a_source_that_cannot_work_is_refused_naming_the_key(edit, expected):
    raw = yaml.safe_load(spinnaker.SOURCE.read_text())
    edit(raw)
    with pytest.raises(spinnaker.SourceError, match=re.escape(expected)):
        spinnaker.parse(raw)


def test_an_environment_may_change_only_the_local_files():
    raw = yaml.safe_load(spinnaker.SOURCE.read_text())
    raw["kustomize"]["environments"]["production"]["kubernetes"] = {"namespaces": ["apps"]}
    with pytest.raises(spinnaker.SourceError, match="may set only"):
        spinnaker.kustomize_files(spinnaker.parse(raw))
    raw["kustomize"]["environments"]["production"] = {"registry": {"password": {"secret": "other"}}}
    with pytest.raises(spinnaker.SourceError, match=r"changes .*patches/clouddriver\.yaml"):
        spinnaker.kustomize_files(spinnaker.parse(raw))


# --- the upstream tree and the images ----------------------------------------------------------------------
def test_the_overlay_takes_the_upstream_tree_at_the_release_tag():
    """kustomize's remote-target form (examples/remoteBuild.md at kustomize/v5.8.1): <clone URL>//<dir>?ref=<tag>;
    the tag is the recorded release tag, the one Halyard's path deploys; mysql replaces mariadb (#7823)."""
    k = yaml.safe_load((spinnaker.KUSTOMIZE_DIR / "spinnaker" / "kustomization.yaml").read_text())
    prefix = f"https://github.com/{FACTS['snapshot']['repo']}//spinnaker-kustomize/"
    suffix = f"?ref={FACTS['tag']}"
    remote = [r for r in (*k["resources"], *k["components"]) if "://" in r]
    assert [r.removeprefix(prefix).removesuffix(suffix) for r in remote] == ["base", "components/redis",
                                                                              "overlays/config"]
    assert all(r.startswith(prefix) and r.endswith(suffix) for r in remote)
    assert FACTS["tag"] == SRC.ref == f"spinnaker-release-{SRC.release}"
    assert FACTS["kustomize_tool"]["remote_components"] is True
    # upstream's root lists components/mariadb; ours lists the mysql component, and its own one last
    assert k["components"][-2:] == ["../components/mysql", f"../{spinnaker.COMPONENT}"]
    assert FACTS["layout"]["root_contents"]["components"][0] == "components/mariadb"
    assert k["namespace"] == FACTS["layout"]["root_contents"]["namespace"] == SRC.namespace


def test_every_spinnaker_image_carries_the_release_tag(built):
    """The tree's manifests and root images: say main-latest (a moving tag of main builds); every service
    runs the image its release built (release_images), and each recorded service runs."""
    for env, docs in built.items():
        images = {c["image"] for d in docs if d["kind"] in ("Deployment", "StatefulSet")
                  for c in d["spec"]["template"]["spec"]["containers"]}
        ours = {i for i in images if i.startswith(spinnaker.IMAGE_REGISTRY + "/")}
        expected = {FACTS["services"][svc]["release_image"] for svc in SRC.services}
        assert ours == expected, (env, sorted(ours ^ expected))
        assert all(i.rsplit(":", 1)[1] == SRC.release for i in ours)
        assert "main-latest" not in yaml.safe_dump_all(docs)


def test_the_stand_in_carries_what_the_overlay_changes(tmp_path):
    """The stand-in base alone: the recorded Deployments (name, container, config mount, tag main-latest)
    and the cluster-admin binding, so the checks below test the overlay, not an empty base."""
    tree = spinnakerbase.write_standin(tmp_path, SRC)
    docs = spinnakerbase.build(tree / "base")
    mount = FACTS["jvm_deployment_common"]["config_mount"]["path"]
    for svc in SRC.services:
        fact = FACTS["services"][svc]
        pod = objects(docs, "Deployment")[fact["deployment"]]["spec"]["template"]["spec"]
        [c] = pod["containers"]
        assert c["name"] == fact["container"] and c["image"] == fact["image"]
        assert c["volumeMounts"][0]["mountPath"] == mount
    [binding] = objects(docs, "ClusterRoleBinding").values()
    assert binding["roleRef"]["name"] == "cluster-admin" and binding["metadata"]["name"] == FACTS["rbac"][0]["name"]


# --- the <svc>-local.yml files ------------------------------------------------------------------------------
def check_fields(listed: list[dict], fact: dict, what: str) -> None:
    known = {canonical(f) for f in fact["fields"]}
    for item in listed:
        unknown = [k for k in item if canonical(k) not in known]
        assert not unknown, f"{what}: {unknown} are not fields of {fact['path']}"
        missing = [f for f in fact.get("required", ["name"]) if not item.get(f)]
        assert not missing, f"{what}: {missing} required"


@pytest.mark.parametrize("env", ENVS)
def test_every_key_of_igor_local_is_a_recorded_field(built, env):
    igor = local_file(built[env], "igor")
    fields = FACTS["fields"]
    upstream = FACTS["overlay_inputs"]["overlays_config"]["igor_local"]["values"]
    assert set(igor) == {*upstream, "jenkins", "dockerRegistry"}, "only upstream's settings, Jenkins and polling"
    assert {k: igor[k] for k in upstream} == upstream, "keeps upstream igor-local.yml's settings"
    assert set(igor["jenkins"]) == {"enabled", "masters"}
    assert canonical(fields["igor_jenkins_master"]["enable_switch"]["property"]) == canonical("jenkins.enabled")
    check_fields(igor["jenkins"]["masters"], fields["igor_jenkins_master"], "jenkins.masters[]")
    polling = fields["igor_docker_polling"]["properties_class"]
    assert canonical(polling["prefix"]) == canonical("dockerRegistry")
    assert {canonical(k) for k in igor["dockerRegistry"]} <= {canonical(f) for f in polling["fields"]}


@pytest.mark.parametrize("env", ENVS)
def test_every_key_of_clouddriver_local_is_a_recorded_field(built, env):
    cd = local_file(built[env], "clouddriver")
    fields = FACTS["fields"]
    assert set(cd) == {"kubernetes", "dockerRegistry"}
    assert set(cd["kubernetes"]) == {"enabled", "accounts"} and set(cd["dockerRegistry"]) == {"enabled", "accounts"}
    k8s, registry = fields["kubernetes_account"], fields["docker_registry_account"]
    check_fields(cd["kubernetes"]["accounts"], k8s, "kubernetes.accounts[]")
    check_fields(cd["dockerRegistry"]["accounts"], registry, "dockerRegistry.accounts[]")
    for account in cd["kubernetes"]["accounts"]:
        assert not set(account) & set(k8s["absent_fields"])
        assert not (account.get("namespaces") and account.get("omitNamespaces")), "validate(): not both"
    assert canonical(registry["enable_switch"]["property"]) == canonical("dockerRegistry.enabled")
    assert canonical(k8s["enable_switch"]["property"]) == canonical("kubernetes.enabled")


@pytest.mark.parametrize("env", ENVS)
def test_the_enable_switches_are_on(built, env):
    """Off unless set: igor.yml sets no jenkins block, clouddriver.yml says dockerRegistry.enabled false and
    kubernetes.enabled false (the base file turns kubernetes on; ours does again)."""
    igor, cd = local_file(built[env], "igor"), local_file(built[env], "clouddriver")
    assert FACTS["fields"]["igor_jenkins_master"]["igor_yml_sets_jenkins"] is False
    assert igor["jenkins"]["enabled"] is True and igor["dockerRegistry"]["enabled"] is True
    assert cd["dockerRegistry"]["enabled"] is True and cd["kubernetes"]["enabled"] is True
    assert FACTS["fields"]["igor_docker_polling"]["kustomize_supplies_clouddriver_url"] is True


def spring_list(files: list[dict], dotted: str) -> list:
    """Spring Boot's rule (recorded: IndexedElementsBinder): a list comes whole from the highest-priority
    source that sets it. `files` in ascending priority."""
    found: list = []
    for doc in files:
        node: object = doc
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            found = list(node)  # type: ignore[call-overload]
    return found


def test_the_kubernetes_account_list_replaces_the_base_account_on_purpose(built):
    """clouddriver.yml (base, account "managing", cluster-wide) < clouddriver-local.yml (profile "local"): the
    local list wins whole, so "managing", whose cluster-admin binding is gone, is not configured."""
    assert FACTS["spring"]["list_binding"]["replaces_lists"] is True
    docs = built[ENVS[0]]
    files = {name: yaml.safe_load(text) for cm in mounted_configmaps(docs, "clouddriver")
             for name, text in cm.get("data", {}).items()}
    ordered = [files["clouddriver.yml"], files["clouddriver-local.yml"]]
    accounts = spring_list(ordered, "kubernetes.accounts")
    assert [a["name"] for a in accounts] == [SRC.kubernetes.name]
    assert FACTS["config_loading"]["clouddriver_base_file"]["account"] not in [a["name"] for a in accounts]


@pytest.mark.parametrize("env", ENVS)
def test_gate_keeps_upstream_settings_without_the_literal_password(built, env):
    gate = local_file(built[env], "gate")
    upstream = FACTS["overlay_inputs"]["overlays_config"]["gate_local"]
    password = gate["spring"]["security"]["user"].pop("password")
    assert gate == upstream["values"]
    assert PLACEHOLDER.fullmatch(password)
    assert spinnakerbase.STANDIN_PASSWORD not in yaml.safe_dump_all(built[env])
    # the base's readiness probe needs gate under /api/v1
    assert gate["server"]["servlet"]["context-path"] == "/api/v1"


# --- secrets ------------------------------------------------------------------------------------------------
def secret_env(c: dict) -> dict[str, tuple[str, str]]:
    return {e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
            for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}


def secret_leaves(node: object, path: str = "") -> list[tuple[str, object]]:
    """(key path, value) of every setting whose name says password, token or secret."""
    out: list[tuple[str, object]] = []
    if isinstance(node, dict):
        for k, v in node.items():
            out += secret_leaves(v, f"{path}.{k}") if isinstance(v, dict | list) else \
                ([(f"{path}.{k}", v)] if SECRET_WORDS.search(str(k)) else [])
    elif isinstance(node, list):
        for item in node:
            out += secret_leaves(item, path + "[]")
    return out


@pytest.mark.parametrize("env", ENVS)
def test_no_secret_is_inline(built, env):
    """Every password/token setting in the config files is a ${VAR} placeholder that the reading container
    gets from a Secret, or a passwordFile inside a mounted Secret; no env value holds a secret, and no
    Secret object is rendered (they are created by hand or by a secrets operator)."""
    docs = built[env]
    assert not objects(docs, "Secret")
    for d in docs:
        if d["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for c in d["spec"]["template"]["spec"]["containers"]:
            for e in c.get("env", []):
                secretive = SECRET_WORDS.search(e["name"]) or e["name"].endswith("_MYSQL")
                if secretive or e["name"] in SRC.database.databases:
                    assert "secretKeyRef" in e.get("valueFrom", {}), (d["metadata"]["name"], e)
    for svc in SRC.services:
        env_from_secret = secret_env(container(docs, svc))
        for cm in mounted_configmaps(docs, svc):
            for name, text in cm.get("data", {}).items():
                if not name.endswith((".yml", ".yaml")):
                    continue
                for key, value in secret_leaves(yaml.safe_load(text)):
                    if key.endswith(".passwordFile"):
                        continue  # test_the_registry_password_is_a_mounted_secret_file
                    match = PLACEHOLDER.fullmatch(str(value))
                    assert match, f"{svc} {name}{key}: {value!r} is not a ${{VAR}} placeholder"
                    assert match.group(1) in env_from_secret, f"{svc}: {match.group(1)} does not come from a Secret"


def test_the_registry_password_is_a_mounted_secret_file(built):
    for docs in built.values():
        cd = local_file(docs, "clouddriver")
        [account] = cd["dockerRegistry"]["accounts"]
        assert "password" not in account and "passwordCommand" not in account
        pod = deployment(docs, "clouddriver")["spec"]["template"]["spec"]
        secrets = {v["name"]: v["secret"] for v in pod["volumes"] if "secret" in v}
        [mount] = [m for m in container(docs, "clouddriver")["volumeMounts"] if m["name"] in secrets]
        secret = secrets[mount["name"]]
        assert secret["secretName"] == SRC.registry.password.secret and mount["readOnly"] is True
        assert account["passwordFile"] == f"{mount['mountPath']}/{SRC.registry.password.key}"
        assert {"key": SRC.registry.password.key, "path": SRC.registry.password.key} in secret["items"]


@pytest.mark.parametrize("svc,ref", [("igor", SRC.jenkins.token), ("gate", SRC.gate_password)])
def test_the_token_and_admin_password_come_from_their_secrets(built, svc, ref):
    for docs in built.values():
        assert secret_env(container(docs, svc))[ref.env] == (ref.secret, ref.key)


# --- RBAC ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("env", ENVS)
def test_rbac_is_namespace_scoped(built, env):
    """No ClusterRole(Binding) at all: the upstream cluster-admin binding is deleted, clouddriver gets one
    Role per account namespace; with namespaces declared it needs nothing cluster-wide (recorded)."""
    docs = built[env]
    assert not objects(docs, "ClusterRoleBinding") and not objects(docs, "ClusterRole")
    assert FACTS["overlay_inputs"]["clouddriver_permissions"]["needs_cluster_wide_with_namespaces"] is False
    account = local_file(docs, "clouddriver")["kubernetes"]["accounts"][0]
    assert account["namespaces"] == list(SRC.kubernetes.namespaces)
    roles, bindings = objects(docs, "Role"), objects(docs, "RoleBinding")
    assert {r["metadata"]["namespace"] for r in roles.values()} == set(account["namespaces"])
    assert {b["metadata"]["namespace"] for b in bindings.values()} == set(account["namespaces"])
    sa = FACTS["clouddriver_service_account"]
    for binding in bindings.values():
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["name"], "namespace": sa["namespace"]}]
    assert deployment(docs, "clouddriver")["spec"]["template"]["spec"]["serviceAccountName"] == sa["name"]
    assert set(account["namespaces"]) <= set(objects(docs, "Namespace"))


# --- the database, kubectl ------------------------------------------------------------------------------------
def test_the_database_is_mysql_as_main_made_it(built):
    used = FACTS["overlay_inputs"]["pr_7823_used"]
    for docs in built.values():
        sets = objects(docs, "StatefulSet")
        assert not [n for n in (*sets, *objects(docs, "Service"), *objects(docs, "ConfigMap")) if "mariadb" in n]
        db = sets[f"{SRC.namespace}/mysql"]["spec"]["template"]["spec"]["containers"][0]
        assert db["image"] == used["statefulset"]["image"] == SRC.database.image
        keys_ = secret_env(db)
        assert keys_[used["statefulset"]["root_password_env"]] == (SRC.database.secret, "root")
        assert {k: keys_[k] for k in SRC.database.databases} == {k: (SRC.database.secret, k)
                                                               for k in SRC.database.databases}
        init = objects(docs, "ConfigMap")
        [script] = [cm["data"]["init.sh"] for cm in init.values() if "init.sh" in cm.get("data", {})]
        assert 'password="${!db}"' in script and "IDENTIFIED BY '${password}'" in script
        for name in SRC.database.databases:
            sources = [s["configMap"] for cm in [deployment(docs, name)]
                       for s in cm["spec"]["template"]["spec"]["volumes"][0]["projected"]["sources"]]
            assert any(s.get("items") == [{"key": f"{name}.yml", "path": f"mysql/{name}.yml"}] for s in sources)
            assert secret_env(container(docs, name))[f"{name.upper()}_MYSQL"] == (SRC.database.secret, name)


def test_clouddriver_runs_the_newest_kubectl_of_its_image_and_the_readme_says_which_clusters():
    """kubectl supports API servers one minor version either side; the 2026.2.3 image's newest kubectl is
    1.29.0 as /usr/local/bin/kubectl-1.29 (its `kubectl` is 1.22.17)."""
    image = SPIN["kubectl"]["clouddriver_image"]
    newest = max(image["installed"], key=lambda v: tuple(int(x) for x in v.split(".")))
    major, minor = (int(x) for x in newest.split(".")[:2])
    binary = FACTS["overlay_inputs"]["clouddriver_image_kubectl"]["binary"].replace("<major.minor>", f"{major}.{minor}")
    assert SRC.kubernetes.kubectl_executable == binary
    skew = SPIN["kubectl"]["skew_minor_versions"]
    supported = f"{major}.{minor - skew} to {major}.{minor + skew}"
    assert f"Kubernetes {supported}" in (SPINNAKER_DIR / "README.md").read_text()
    assert f"Kubernetes {supported}" in spinnaker.SOURCE.read_text()
    cd = yaml.safe_load((spinnaker.KUSTOMIZE_DIR / spinnaker.COMPONENT / "files" / "clouddriver-local.yml").read_text())
    assert {a["kubectlExecutable"] for a in cd["kubernetes"]["accounts"]} == {binary}


# --- parity with the Halyard path ---------------------------------------------------------------------------
def halyard_facts() -> dict:
    script = HALYARD["halyard"]["additionalScripts"]["data"]["jenkins-dind-agent.sh"]
    master = next(a for a in hal_lines(script) if a[:5] == ["config", "ci", "jenkins", "master", "add"])
    edit = next(a for a in hal_lines(script) if a[:5] == ["config", "provider", "docker-registry", "account", "edit"])
    [registry] = HALYARD["dockerRegistries"]
    return {
        "jenkins": {"name": master[5], "address": master[master.index("--address") + 1],
                    "username": master[master.index("--username") + 1],
                    "csrf": master[master.index("--csrf") + 1] == "true"},
        "registry": {"name": registry["name"], "address": registry["address"], "username": registry["username"],
                     "trackDigests": edit[5] == registry["name"] and edit[edit.index("--track-digests") + 1] == "true",
                     "repositories": registry.get("repositories", [])},
        "kubernetes": {"name": HALYARD["kubeConfig"]["contexts"], "namespaces": HALYARD["kubeConfig"]["nameSpaces"]},
    }


def test_both_paths_wire_the_same_jenkins_registry_and_kubernetes_account(built):
    hal = halyard_facts()
    docs = built["kind"]
    [master] = local_file(docs, "igor")["jenkins"]["masters"]
    cd = local_file(docs, "clouddriver")
    [registry] = cd["dockerRegistry"]["accounts"]
    assert {k: master[k] for k in ("name", "address", "username", "csrf")} == hal["jenkins"]
    assert {**{k: registry[k] for k in ("name", "address", "username", "trackDigests")},
            "repositories": registry.get("repositories", [])} == hal["registry"]
    assert hal["registry"]["repositories"] == [] and hal["registry"]["trackDigests"] is True
    assert [a["name"] for a in cd["kubernetes"]["accounts"]] == hal["kubernetes"]["name"]
    assert cd["kubernetes"]["accounts"][0]["namespaces"] == hal["kubernetes"]["namespaces"]
    # the Halyard password comes from the same Secret keys
    assert HALYARD["halyard"]["additionalSecrets"]["name"] == SRC.jenkins.token.secret
    script = HALYARD["halyard"]["additionalScripts"]["data"]["jenkins-dind-agent.sh"]
    assert f"cat /opt/halyard/additionalSecrets/{SRC.jenkins.token.key} |" in script
    assert HALYARD["dockerRegistryAccountSecret"] == SRC.registry.password.secret


def test_production_changes_only_the_registry_address_on_both_paths(built):
    """kustomize/production merges its own clouddriver-local.yml; values-production.yaml (hand-kept,
    Halyard) points the same account at the same address."""
    kind, prod = (local_file(built[e], "clouddriver") for e in ("kind", "production"))
    address = SRC.environments["production"]["registry"]["address"]
    assert prod["dockerRegistry"]["accounts"][0]["address"] == address
    prod["dockerRegistry"]["accounts"][0]["address"] = kind["dockerRegistry"]["accounts"][0]["address"]
    assert prod == kind
    halyard = yaml.safe_load((SPINNAKER_DIR / "values-production.yaml").read_text())
    assert [(r["name"], r["address"], r["username"]) for r in halyard["dockerRegistries"]] == \
        [(SRC.registry.account, address, SRC.registry.username)]
    jenkins = yaml.safe_load((REPO_ROOT / "deploy" / "values" / "jenkins-production.yaml").read_text())
    assert urlsplit(address).netloc == jenkins["agent"]["registry"]["server"]


def test_the_readme_says_how_to_create_every_secret():
    readme = (SPINNAKER_DIR / "README.md").read_text()
    refs = [SRC.jenkins.token, SRC.registry.password, SRC.gate_password]
    for ref in refs:
        assert f"create secret generic {ref.secret} " in readme and f"--from-literal={ref.key}=" in readme, ref
    assert f"create secret generic {SRC.database.secret} " in readme
    for key in ("root", *SRC.database.databases):
        assert key in readme
