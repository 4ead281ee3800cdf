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
    agents = [n for n in manifest.all("NetworkPolicy") if n["metadata"]["namespace"] == "ci-builds"]
    assert len(agents) == 1 and agents[0]["spec"]["podSelector"] == {}
    assert agents[0]["spec"]["policyTypes"] == ["Ingress", "Egress"]
    spec = manifest.agent_pod()["spec"]
    assert spec["nodeSelector"] == {"ci.example.com/pool": "builds"} and spec["automountServiceAccountToken"] is False
    assert [n["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] for n in manifest.all("Namespace")] == [
        "privileged"]
    # the controller: TLS at the edge, explicit permissions, kept away from build pods
    ingress = manifest.get("Ingress")["spec"]
    assert ingress["tls"][0]["hosts"] == [r["host"] for r in ingress["rules"]]
    assert manifest.jcasc()["unclassified"]["location"]["url"].startswith("https://")
    assert "globalMatrix" in manifest.jcasc()["jenkins"]["authorizationStrategy"]
    sts = manifest.get("StatefulSet")["spec"]["template"]["spec"]
    assert sts["affinity"]["podAntiAffinity"] and not sts.get("tolerations")
    assert manifest.jcasc()["jenkins"]["numExecutors"] == 0
