"""Security policy over every rendered pod spec (controller, helm test pod and the JCasC agent pod),
for every ci/ values file."""

from __future__ import annotations

import base64
import re

import pytest

from jdagent.chart.manifest import all_containers
from jdagent.chart.render import render
from tests.conftest import RENDER_CASES, ci_ids

IMAGE_RE = re.compile(r"^[a-z0-9]+([._/-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9._-]+)*:(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]*)"
                      r"(@sha256:[0-9a-f]{64})?$")


@pytest.fixture(params=RENDER_CASES, ids=ci_ids(RENDER_CASES))
def manifest(request):
    return render(values=request.param)


def test_no_host_access(manifest):
    for obj, spec in manifest.workloads():
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(flag), f"{obj['kind']} sets {flag}"
        assert not [v for v in spec.get("volumes", []) if "hostPath" in v]
        for c in all_containers(spec):
            assert not any(p.get("hostPort") for p in c.get("ports", []))
    # the only docker.sock is dind's own listener inside its container, never a node path
    assert manifest.text.count("docker.sock") == manifest.text.count("--host=unix:///var/run/docker.sock")


def test_only_dind_is_privileged_anywhere(manifest):
    for obj, spec in manifest.workloads():
        for c in all_containers(spec):
            sc = c.get("securityContext", {})
            if c["name"] == "dind":
                assert sc.get("privileged") is True
                continue
            assert not sc.get("privileged"), f"{obj['kind']}/{c['name']} is privileged"
            assert sc.get("allowPrivilegeEscalation") is False, f"{c['name']} may escalate"
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], f"{c['name']} keeps capabilities"
            assert not sc.get("capabilities", {}).get("add"), f"{c['name']} adds capabilities"


AGENT_UID = 1000  # the jenkins user of jenkins/inbound-agent and jenkins/jenkins (checkov skip reasons)


def test_every_container_but_dind_runs_as_a_user_with_a_read_only_root(manifest):
    """The checkov skip reasons promise it: "jnlp is read-only", "uid 1000 is the jenkins user"."""
    for obj, spec in manifest.workloads():
        pod_sc = spec.get("securityContext") or {}
        for c in all_containers(spec):
            if c["name"] == "dind":
                continue
            sc = c.get("securityContext") or {}
            where = f"{obj['kind']}/{obj.get('metadata', {}).get('name')}/{c['name']}"
            assert sc.get("readOnlyRootFilesystem") is True, f"{where} has a writable root"
            uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
            assert uid is not None and uid != 0, f"{where} may run as root"
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, f"{where}: runAsNonRoot"
            if c["name"] in ("jnlp", "docker-setup", "jenkins", "install-plugins", "casc-reload"):
                assert uid == AGENT_UID, f"{where} runs as {uid}"


def test_images_are_pinned(manifest):
    for _, spec in manifest.workloads():
        for c in all_containers(spec):
            match = IMAGE_RE.match(c["image"])
            assert match, f"{c['name']}: {c['image']} has no explicit tag"
            assert match["tag"] != "latest"
    for plugin in manifest.get("ConfigMap", suffix="-config")["data"]["plugins.txt"].split():
        assert not plugin.endswith(":latest")


def test_no_secret_material_in_configmaps(manifest):
    secret_values = set()
    for secret in manifest.all("Secret"):
        for value in secret.get("data", {}).values():
            decoded = base64.b64decode(value).decode()
            if len(decoded) >= 12:
                secret_values.add(decoded)
    for cm in manifest.all("ConfigMap"):
        for key, text in cm.get("data", {}).items():
            for value in secret_values:
                assert value not in text, f"{cm['metadata']['name']}/{key} holds a Secret value"
            assert "PRIVATE KEY" not in text
            assert '"auths"' not in text, "docker credentials belong in a dockerconfigjson Secret"
            for m in re.finditer(r"(?i)password\s*[:=][ \t]*['\"]?([^'\"\s]+)", text):
                assert m.group(1).startswith("${"), f"{cm['metadata']['name']}/{key}: inline password"


def test_generated_password_is_random_and_long():
    first = render(release="a").get("Secret")["data"]["jenkins-admin-password"]
    second = render(release="b").get("Secret")["data"]["jenkins-admin-password"]
    assert first != second
    assert len(base64.b64decode(first)) == 24
