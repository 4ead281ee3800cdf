"""charts/spinnaker-values is consistent with charts/jenkins-dind-agent and with the pinned upstream
chart: same Jenkins Service, same registry, hal lines that parse and use known flags, no inline
secrets, only upstream keys."""

from __future__ import annotations

import base64
import fnmatch
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from jdagent.chart.render import deep_merge, render
from jdagent.facts.halyard import hal_problems
from jdagent.paths import REPO_ROOT, SPINNAKER_DIR

DATA = Path(__file__).parent / "data"
UPSTREAM = yaml.safe_load((SPINNAKER_DIR / "upstream.yaml").read_text())
BASE = yaml.safe_load((SPINNAKER_DIR / "values.yaml").read_text())
OVERLAYS = sorted(SPINNAKER_DIR.glob("values-*.yaml"))
HAL_FLAGS: dict[str, dict] = yaml.safe_load((DATA / "hal-flags.yaml").read_text())
SPIN = yaml.safe_load((DATA / "upstream" / "spinnaker.yaml").read_text())


def semver(version: str) -> tuple[int, ...]:
    """Halyard's order (Versions.orderBySemVer): numeric major, minor, patch."""
    return tuple(int(x) for x in version.split("-")[0].split("."))
UPSTREAM_KEYS = [line.strip() for line in (DATA / "spinnaker-upstream-keys.txt").read_text().splitlines()
                 if line.strip() and not line.startswith("#")]


def script() -> str:
    return BASE["halyard"]["additionalScripts"]["data"]["jenkins-dind-agent.sh"]


def hal_lines(text: str) -> list[list[str]]:
    """argv (after $HAL_COMMAND) of every hal invocation in the script, with `if`/pipes peeled off."""
    found = []
    for line in text.splitlines():
        if "$HAL_COMMAND" not in line or line.strip().startswith("#"):
            continue
        segment = line.split("$HAL_COMMAND", 1)[1]
        segment = segment.split(">/dev/null")[0].split("; then")[0]
        for action in ("add", "edit") if "$ACTION" in segment else ("",):
            found.append(shlex.split(segment.replace("$ACTION", action)))
    return found


def command_of(argv: list[str]) -> tuple[str, list[str]]:
    """Longest known command prefix and the rest (positional NAME, flags)."""
    words = [w for w in argv if not w.startswith("-")]
    for n in range(len(words), 0, -1):
        key = " ".join(argv[:n])
        if key in HAL_FLAGS:
            return key, argv[n:]
    raise AssertionError(f"unknown hal command: {' '.join(argv)}")


def flatten(node, prefix="") -> list[str]:
    keys = []
    if isinstance(node, dict):
        for k, v in node.items():
            keys += flatten(v, f"{prefix}{k}.") if isinstance(v, dict) and v else [f"{prefix}{k}"]
            if isinstance(v, list) and v and all(isinstance(i, dict) for i in v):
                keys.remove(f"{prefix}{k}")
                for item in v:
                    keys += [f"{prefix}{k}[].{sub}" for sub in item]
    return keys


def jenkins_manifest():
    return render(values=REPO_ROOT / UPSTREAM["jenkins"]["valuesFile"], release=UPSTREAM["jenkins"]["release"],
                  namespace=UPSTREAM["jenkins"]["namespace"])


def test_jenkins_address_is_the_rendered_controller_service():
    argv = next(a for a in hal_lines(script()) if a[:4] == ["config", "ci", "jenkins", "master"] and "--address" in a)
    address = argv[argv.index("--address") + 1]
    manifest = jenkins_manifest()
    assert address == manifest.kubernetes_cloud()["jenkinsUrl"]
    host = urlsplit(address)
    name, namespace = host.hostname.split(".")[:2]
    service = manifest.get("Service", name=name)
    assert service["metadata"]["namespace"] == namespace
    assert host.port in [p["port"] for p in service["spec"]["ports"]]


def test_jenkins_user_and_csrf_match_the_jenkins_chart():
    argv = next(a for a in hal_lines(script()) if "--username" in a)
    manifest = jenkins_manifest()
    admin_id = manifest.get("Secret", suffix="-admin")["data"]["jenkins-admin-user"]
    assert argv[argv.index("--username") + 1] == base64.b64decode(admin_id).decode()
    assert "--csrf" in argv and manifest.jcasc()["jenkins"]["crumbIssuer"] == "standard"


def test_csrf_takes_a_value_and_password_comes_from_a_secret_file():
    """Halyard declares --csrf with arity 1 (a bare --csrf would swallow nothing and fail the install);
    --password is read from standard input, fed by the mounted Secret file."""
    line = next(line for line in script().splitlines() if "master $ACTION" in line)
    argv = shlex.split(line.split("|", 1)[1])
    assert HAL_FLAGS["config ci jenkins master add"]["flags"]["--csrf"] == "value"
    assert argv[argv.index("--csrf") + 1] == "true"
    assert HAL_FLAGS["config ci jenkins master add"]["flags"]["--password"] == "stdin"
    j = argv.index("--password")
    assert j == len(argv) - 1 or argv[j + 1].startswith("--"), "--password must read stdin, not a value"
    source = line.split("|", 1)[0].strip()
    assert source == f"cat {SPIN['upstream_chart']['mounts']['additionalSecrets']}/jenkins-password"
    assert BASE["halyard"]["additionalSecrets"] == {"create": False, "name": "spinnaker-jenkins"}


def test_the_release_is_supported_and_the_halyard_can_deploy_it():
    version = BASE["halyard"]["spinnakerVersion"]
    line = ".".join(version.split(".")[:2])
    lines = sorted(SPIN["releases"], key=lambda v: [int(x) for x in v.split(".")], reverse=True)
    supported = lines[:SPIN["versions_yml"]["supported_lines"]]
    assert line in supported, f"{version} is not in the {len(supported)} supported lines {supported}"
    assert version == SPIN["releases"][line]["latest"], "the newest patch of its line"
    # Halyard refuses a listed release whose minimumHalyardVersion (the release itself) is above it
    image = BASE["halyard"]["image"]
    assert SPIN["versions_yml"]["minimum_halyard"] == "same-as-release"
    assert image["repository"] == SPIN["halyard"]["image"] and SPIN["halyard"]["image_tag"] == "same-as-release"
    assert semver(image["tag"]) >= semver(version)
    # the line still ships a Halyard (main dropped it after 2026.2)
    assert semver(line + ".0") <= semver(SPIN["halyard"]["last_line_with_halyard"] + ".0")
    assert UPSTREAM["spinnakerVersion"] == version
    assert UPSTREAM["halyardImage"] == f"{image['repository']}:{image['tag']}"


def test_the_upstream_charts_default_halyard_could_not_deploy_it():
    """Why values.yaml sets halyard.image: the chart's default is older than the release."""
    default = SPIN["upstream_chart"]["default_halyard_image"].rsplit(":", 1)[1]
    assert semver(default) < semver(BASE["halyard"]["spinnakerVersion"])
    assert SPIN["upstream_chart"]["tag"] == f"spinnaker-{UPSTREAM['version']}"


def test_igor_needs_a_token_to_trigger_builds_on_this_jenkins():
    """igor keeps no session cookie and Jenkins binds crumbs to the session, so a password cannot trigger
    builds; an API token skips the crumb check. The README says so and how to make one."""
    assert SPIN["igor"]["keeps_session_cookie"] is False and SPIN["jenkins"]["crumb_bound_to_session"] is True
    assert SPIN["jenkins"]["api_token_skips_crumb"] is True
    readme = (SPINNAKER_DIR / "README.md").read_text()
    assert SPIN["jenkins"]["token_endpoint"] in readme and "API token" in readme
    assert "jenkins-password" in readme


@pytest.mark.parametrize("overlay", [None, *OVERLAYS], ids=["base", *[p.stem for p in OVERLAYS]])
def test_registry_account_is_where_the_agents_push(overlay):
    values = BASE if overlay is None else deep_merge(BASE, yaml.safe_load(overlay.read_text()))
    registries = {r["name"]: r for r in values["dockerRegistries"]}
    assert list(registries) == ["jda-registry"], "the only registry account: where the agents push"
    if overlay is None:
        server = jenkins_manifest().jcasc()["jobs"][0]["script"]
        pushed = yaml.safe_load((REPO_ROOT / UPSTREAM["jenkins"]["valuesFile"]).read_text())["agent"]["registry"]
        address = urlsplit(registries["jda-registry"]["address"]).netloc
        assert address == pushed["server"]
        assert f"'{pushed['server']}/" in server, "the example job pushes to that registry"


def registry_severity(account: dict, state: str) -> str:
    """The worst problem DockerRegistryAccountValidator reports for `account` against a registry in
    `state` (fresh: nothing pushed yet, its catalog empty and every repository's tags 404), by the rules
    recorded in data/upstream/spinnaker.yaml."""
    rules = SPIN["validation"]["docker_registry_account"]
    assert state == "fresh"
    if account.get("repositories"):
        return rules["with_repositories"]["tags_fetch_failed"]
    return rules["without_repositories"]["catalog_empty"]


SEVERITY = ["OK", "WARNING", "ERROR", "FATAL"]


@pytest.mark.parametrize("overlay", [None, *OVERLAYS], ids=["base", *[p.stem for p in OVERLAYS]])
def test_a_fresh_install_gets_past_halyards_validation(overlay):
    """Before Jenkins has pushed, every registry account validates at WARNING at most, which `account add`
    and `deploy apply` both accept; listing the pushed repository (as these values did) would be an ERROR."""
    values = BASE if overlay is None else deep_merge(BASE, yaml.safe_load(overlay.read_text()))
    limit = SEVERITY.index(SPIN["validation"]["fails_above"])
    for account in values["dockerRegistries"]:
        worst = registry_severity(account, "fresh")
        assert SEVERITY.index(worst) <= limit, (account["name"], worst)
    before = {**values["dockerRegistries"][0], "repositories": ["dind-example"]}
    assert SEVERITY.index(registry_severity(before, "fresh")) > limit, "the rule the fix answers"
    # the kubernetes account's --docker-registries (the upstream chart's "dockerhub") is checked for v1 only
    kubernetes = SPIN["validation"]["kubernetes_account"]
    assert kubernetes["docker_registries_checked_for"] == ["V1"] and SPIN["upstream_chart"]["provider_version"] == "v2"


def test_settings_that_do_nothing_are_gone():
    """No Docker Hub account (nothing references it for a v2 account), no --docker-registries on the v2
    account (clouddriver ignores it), no liveManifestCalls (no clouddriver source reads it)."""
    kubernetes = SPIN["validation"]["kubernetes_account"]
    assert kubernetes["docker_registries_used_by_v2"] is False
    assert kubernetes["live_manifest_calls_read_by_clouddriver"] is False
    assert "--docker-registries" not in script()
    for values in [BASE, *[yaml.safe_load(p.read_text()) for p in OVERLAYS]]:
        assert "liveManifestCalls" not in values.get("kubeConfig", {})
        assert all("docker.io" not in r["address"] for r in values.get("dockerRegistries", []))


def reported(pushes: list[tuple[str, str]], track_digests: bool) -> list[bool]:
    """Which pushes (tag, digest) igor reports as a trigger, by DockerMonitor.getUpdateType as recorded."""
    seen: dict[str, str | None] = {}
    out = []
    for tag, digest in pushes:
        if tag not in seen:
            out.append(True)
        elif not track_digests:
            out.append(False)
        else:
            out.append(seen[tag] is not None and seen[tag] != digest)
        seen[tag] = digest if track_digests else None
    return out


def test_a_second_push_of_the_same_tag_triggers_again():
    """The example job pushes one tag at every build; the registry account tracks digests, so igor
    reports the second push (a new digest under a seen tag), which it would ignore otherwise."""
    rules = SPIN["docker_triggers"]
    assert rules["seen_tag_reported_only_with_track_digests"] is True and rules["track_digests_default"] is False
    edit = [a for a in hal_lines(script()) if a[:5] == ["config", "provider", "docker-registry", "account", "edit"]]
    assert len(edit) == 1 and edit[0][5] == BASE["dockerRegistries"][0]["name"]
    assert HAL_FLAGS["config provider docker-registry account edit"]["flags"]["--track-digests"] == "value"
    track = edit[0][edit[0].index("--track-digests") + 1] == "true"
    pushes = [("1.0", "sha256:a"), ("1.0", "sha256:b")]
    assert reported(pushes, track_digests=track) == [True, True]
    assert reported(pushes, track_digests=False) == [True, False], "what the default would do"
    job = jenkins_manifest().jcasc()["jobs"][0]["script"]
    assert "stringParam('IMAGE'" in job, "one IMAGE (one tag) for every build of the example job"


def test_every_hal_line_parses_with_its_names_and_required_flags():
    lines = hal_lines(script())
    assert len(lines) >= 4
    for argv in lines:
        assert command_of(argv)
        assert hal_problems(HAL_FLAGS, argv) == [], argv


@pytest.mark.parametrize("drop,expected", [
    ("jenkins-dind-agent", "takes 1 positional (MASTER)"),
    ("--address", "--address is required"),
])
def test_a_hal_line_without_its_name_or_a_required_flag_is_refused(drop, expected):
    argv = next(a for a in hal_lines(script()) if a[:5] == ["config", "ci", "jenkins", "master", "add"])
    i = argv.index(drop)
    broken = argv[:i] + argv[i + (2 if drop.startswith("--") else 1):]
    assert any(expected in p for p in hal_problems(HAL_FLAGS, broken)), hal_problems(HAL_FLAGS, broken)
    assert HAL_FLAGS["config version edit"]["required"] == ["--version"]


def test_no_password_inline():
    text = (SPINNAKER_DIR / "values.yaml").read_text()
    for overlay in OVERLAYS:
        text += overlay.read_text()
    for values in [BASE, *[yaml.safe_load(p.read_text()) for p in OVERLAYS]]:
        for reg in values.get("dockerRegistries", []):
            assert "password" not in reg, "registry passwords come from dockerRegistryAccountSecret"
    assert "--password " not in script().replace("--password --csrf", "")
    assert BASE["dockerRegistryAccountSecret"]


@pytest.mark.parametrize("path", [SPINNAKER_DIR / "values.yaml", *OVERLAYS], ids=lambda p: p.name)
def test_every_key_exists_upstream(path):
    keys = flatten(yaml.safe_load(path.read_text()))
    unknown = [k for k in keys if not any(k == u or fnmatch.fnmatchcase(k, u) for u in UPSTREAM_KEYS)]
    assert unknown == []


def test_upstream_pin_is_consistent():
    assert UPSTREAM["version"] == "2.2.18"
    assert BASE["halyard"]["spinnakerVersion"] == UPSTREAM["spinnakerVersion"]


def test_the_readme_states_the_kubectl_skew_of_the_halyard_path():
    """Recorded: Halyard's image ships kubectl 1.15.10 and clouddriver's links kubectl to 1.22.17; with a
    skew of one minor version, neither is supported against any Kubernetes the Jenkins chart allows, and
    Halyard offers no way to point clouddriver's account at the 1.29 binary the image also holds. The
    README says so instead of promising a supported path."""
    facts = SPIN["kubectl"]
    chart = yaml.safe_load((REPO_ROOT / "charts" / "jenkins-dind-agent" / "Chart.yaml").read_text())
    oldest = int(chart["kubeVersion"].split(".")[1])
    for version in (facts["halyard_image"]["version"], facts["clouddriver_image"]["default"]):
        assert int(version.split(".")[1]) + facts["skew_minor_versions"] < oldest, version
    readme = (SPINNAKER_DIR / "README.md").read_text()
    assert f"kubectl {facts['halyard_image']['version']}" in readme
    assert f"kubectl {facts['clouddriver_image']['default']}" in readme


def test_the_kubernetes_account_is_limited_to_the_sources_namespaces():
    """values.yaml is generated from spinnaker.yaml (test_spinnaker_kustomize checks it is fresh); the upstream
    chart passes kubeConfig.nameSpaces as --namespaces (and omittedNameSpaces only without them), a flag the
    pinned Halyard declares: the same namespaces as the kustomize path's account."""
    from jdagent.chart.spinnaker import load

    source = load()
    assert BASE["kubeConfig"]["nameSpaces"] == list(source.kubernetes.namespaces)
    assert "omittedNameSpaces" not in BASE["kubeConfig"]
    assert BASE["kubeConfig"]["contexts"] == [source.kubernetes.name] == [BASE["kubeConfig"]["deploymentContext"]]
    assert HAL_FLAGS["config provider kubernetes account add"]["flags"]["--namespaces"] == "value"
    assert BASE["halyard"]["spinnakerVersion"] == source.halyard_release
