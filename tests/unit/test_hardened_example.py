"""ci/hardened-values.yaml, the production example, turns on every guard the chart has; the render,
lint, schema, kubeconform, checkov, ct and cluster-install cases run it like every other ci file."""

from __future__ import annotations

from jdagent.chart.render import render
from jdagent.paths import CHART_DIR

HARDENED = CHART_DIR / "ci" / "hardened-values.yaml"


def test_the_hardened_example_has_every_guard_on():
    manifest = render(values=[HARDENED])
    # agents apart, behind the admission policy, on the pool, with egress restricted
    [vap] = manifest.all("ValidatingAdmissionPolicy")
    assert any("node pool" in v.get("message", "") for v in vap["spec"]["validations"])
    for ns in ("ci-builds", "ci-builds-push"):
        agents = [n for n in manifest.all("NetworkPolicy") if n["metadata"]["namespace"] == ns]
        assert len(agents) == 1 and agents[0]["spec"]["podSelector"] == {}
        assert agents[0]["spec"]["policyTypes"] == ["Ingress", "Egress"]
    for spec in (manifest.agent_pod()["spec"], manifest.push_pod()["spec"]):
        assert spec["nodeSelector"] == {"ci.example.com/pool": "builds"}
        assert spec["automountServiceAccountToken"] is False
    assert {n["metadata"]["name"]: n["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
            for n in manifest.all("Namespace")} == {"ci-builds": "privileged", "ci-builds-push": "privileged"}
    # only listed folders use the agents; only the release folder's jobs get push credentials
    clouds = {c["name"]: c for c in manifest.kubernetes_clouds()}
    assert clouds["kubernetes"]["usageRestricted"] is True and clouds["kubernetes-push"]["usageRestricted"] is True
    assert not [v for v in manifest.agent_pod()["spec"]["volumes"] if "secret" in v]
    [job] = manifest.jcasc()["jobs"]
    assert "permittedClouds(['kubernetes'])" in job["script"]
    assert "permittedClouds(['kubernetes', 'kubernetes-push'])" in job["script"]
    # the controller: TLS at the edge, explicit permissions, kept away from build pods
    ingress = manifest.get("Ingress")["spec"]
    assert ingress["tls"][0]["hosts"] == [r["host"] for r in ingress["rules"]]
    assert manifest.jcasc()["unclassified"]["location"]["url"].startswith("https://")
    assert "globalMatrix" in manifest.jcasc()["jenkins"]["authorizationStrategy"]
    sts = manifest.get("StatefulSet")["spec"]["template"]["spec"]
    assert sts["affinity"]["podAntiAffinity"] and not sts.get("tolerations")
    assert manifest.jcasc()["jenkins"]["numExecutors"] == 0
