"""The chart README's restore procedure on the real cluster: its claim and pod are admitted by a
namespace that enforces Pod Security `restricted`, the documented `kubectl exec -i ... tar -x` unpacks a
JENKINS_HOME archive into the claim as the jenkins user, and the chart installs on that claim through
controller.persistence.existingClaim."""

from __future__ import annotations

import io
import re
import subprocess
import tarfile

import yaml

from jdagent import tools
from jdagent.paths import CHART_DIR
from tests.cluster.kube import apply, delete_namespace, find_json, helm, wait_for

NS = "restore"
README = (CHART_DIR / "README.md").read_text()


def documented_restore() -> list[dict]:
    [block] = [b for b in re.findall(r"```yaml\n(.*?)```", README, re.S) if b.startswith("# restore.yaml")]
    return [d for d in yaml.safe_load_all(block) if d]


def home_archive() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in {"./secrets/master.key": b"k" * 64, "./jobs/app/config.xml": b"<project/>",
                           "./credentials.xml": b"<credentials/>"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_the_documented_restore_pod_unpacks_a_home_the_chart_then_mounts(cluster, standins):
    docs = documented_restore()
    claim, pod = (next(d for d in docs if d["kind"] == kind) for kind in ("PersistentVolumeClaim", "Pod"))
    assert "kubectl -n jenkins exec -i jenkins-home-restore -- tar -C /restore -xzf - < jenkins-home.tgz" in README
    assert f"--set controller.persistence.existingClaim={claim['metadata']['name']}" in README
    # the stand-in jnlp image (Debian, tar included) replaces jenkins/jenkins, which cannot be pulled here
    documented_image = pod["spec"]["containers"][0]["image"]
    assert documented_image == yaml.safe_load((CHART_DIR / "values.yaml").read_text())["controller"]["image"][
        "repository"] + ":2.568.2-jdk21"
    pod["spec"]["containers"][0].update(image=standins["jnlp"], imagePullPolicy="Never")
    apply(cluster, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": {
        "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}}}])
    try:
        for doc in (claim, pod):
            doc["metadata"]["namespace"] = NS
        created = cluster.kubectl("apply", "-f", "-", input_text=yaml.safe_dump_all([claim, pod]), check=False)
        assert created.returncode == 0, created.stderr  # restricted admits it
        wait_for("the restore pod to run", lambda: (find_json(cluster, "-n", NS, "get", "pod", pod["metadata"]["name"])
                                                    or {}).get("status", {}).get("phase") == "Running", timeout=180)
        kubectl = [str(tools.find_kubectl()), "--kubeconfig", str(cluster.kubeconfig), "-n", NS]
        unpacked = subprocess.run([*kubectl, "exec", "-i", pod["metadata"]["name"], "--", "tar", "-C", "/restore",
                                   "-xzf", "-"], input=home_archive(), capture_output=True, timeout=120)
        assert unpacked.returncode == 0, unpacked.stderr
        files = "secrets/master.key jobs/app/config.xml credentials.xml"
        listed = cluster.kubectl("-n", NS, "exec", pod["metadata"]["name"], "--", "sh", "-c",
                                 f"cd /restore && stat -c '%u %n' {files}")
        owners = dict(line.split(" ", 1)[::-1] for line in listed.stdout.splitlines())
        assert owners == {"secrets/master.key": "1000", "jobs/app/config.xml": "1000", "credentials.xml": "1000"}, \
            listed.stdout
        cluster.kubectl("-n", NS, "delete", "pod", pod["metadata"]["name"], "--grace-period=1", "--wait=true")
        # the chart takes the restored claim as its JENKINS_HOME
        helm(cluster, "4", "install", "ci", str(CHART_DIR), "-n", NS, "--set",
             f"controller.persistence.existingClaim={claim['metadata']['name']}", "--set", "helmTest.enabled=false")
        sts = find_json(cluster, "-n", NS, "get", "statefulset", "ci-jenkins-dind-agent")
        assert sts is not None and "volumeClaimTemplates" not in sts["spec"]
        [home] = [v for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] == "jenkins-home"]
        assert home["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    finally:
        helm(cluster, "4", "uninstall", "ci", "-n", NS, check=False)
        delete_namespace(cluster, NS)
