"""The e2e harness (jdagent.cluster: the kind provider, release, port-forward, jenkinsjob; and
tests/e2e/conftest.py) on its error paths, run here with small fake `kind`, `kubectl` and `helm`
executables on PATH (they log their arguments and answer what a test asks for). The real ones only
run where kind and internet exist."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from jdagent import tools
from jdagent.cluster import jenkinsjob, kind, portforward, release, stack
from jdagent.paths import REPO_ROOT

KIND_FACTS = yaml.safe_load((Path(__file__).parent / "data" / "upstream" / "kind.yaml").read_text())
CLI_FLAGS = yaml.safe_load((Path(__file__).parent / "data" / "upstream" / "cli-flags.yaml").read_text())

FAKE_KIND = r"""#!/bin/sh
printf 'kind %s\n' "$*" >> "$FAKE_LOG"
case "$1 $2" in
  "version "*) echo "kind v${FAKE_KIND_VERSION:-0.32.0} go1.24.6 linux/amd64" ;;
  "get clusters") for c in ${FAKE_CLUSTERS:-}; do echo "$c"; done ;;
  "get kubeconfig") echo "apiVersion: v1 # fake kubeconfig" ;;
  "create cluster")
    [ -z "${FAKE_KIND_CREATE_FAIL:-}" ] || { echo "ERROR: failed to create cluster: interrupted" >&2; exit 1; }
    while [ "$#" -gt 0 ]; do [ "$1" = --kubeconfig ] && echo "apiVersion: v1" > "$2"; shift; done ;;
  "export logs") mkdir -p "$3" && echo "node log" > "$3/kubelet.log" ;;
  "load docker-image") [ "$#" -ge 3 ] || { echo "ERROR: a list of image names is required" >&2; exit 1; } ;;
esac
"""

FAKE_KUBECTL = r"""#!/bin/sh
printf 'kubectl %s\n' "$*" >> "$FAKE_LOG"
case "$*" in
  *"get nodes -o json"*)
    printf '{"items":[{"metadata":{"name":"n1"},"spec":{},"status":{"conditions":[{"type":"Ready","status":"True"}],'
    printf '"allocatable":{"cpu":"%s","memory":"%s"}}}]}\n' "${FAKE_NODE_CPU:-8}" "${FAKE_NODE_MEMORY:-16Gi}" ;;
  *"get pods -A -o json"*)  # kind's control plane (etcd, apiserver, controller-manager, scheduler, CoreDNS, kindnet)
    printf '{"items":[{"metadata":{"namespace":"kube-system"},"spec":{"nodeName":"n1","containers":'
    printf '[{"resources":{"requests":{"cpu":"950m","memory":"290Mi"}}}]},"status":{"phase":"Running"}}]}\n' ;;
  *"wait --for=condition=Ready node --all"*)
    [ -z "${FAKE_NODES_NOT_READY:-}" ] || { echo "error: timed out waiting for the condition on nodes/x" >&2
                                            exit 1; } ;;
  *port-forward*) echo "error: unable to forward port because pod is not running. Current status=Pending" >&2
                  exit 1 ;;
  *"create namespace"*|*"create secret"*) echo "apiVersion: v1" ;;
  *"get pods -o name"*) echo "pod/ci-jenkins-dind-agent-0" ;;
  *" logs "*) echo "fake log line" ;;
esac
"""

FAKE_HELM = r"""#!/bin/sh
printf 'helm %s\n' "$*" >> "$FAKE_LOG"
case "$*" in
  "version --short") echo "v4.3.1+gfake" ;;
  "template "*) exec "$REAL_HELM" "$@" ;;  # renders are real: the harness reads requests from them
  *" status "*"-o json"*)
    if [ -n "${FAKE_HELM_STATUS:-}" ]; then echo "{\"info\":{\"status\":\"$FAKE_HELM_STATUS\"}}";
    else echo "Error: release: not found" >&2; exit 1; fi ;;
  *"upgrade --install"*)
    if [ -n "${FAKE_HELM_UPGRADE_FAIL:-}" ]; then echo "Error: context deadline exceeded" >&2; exit 1; fi ;;
esac
"""


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("kind", FAKE_KIND), ("kubectl", FAKE_KUBECTL), ("helm", FAKE_HELM)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "calls.log"
    monkeypatch.setenv("REAL_HELM", str(tools.find_helm("4")))
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    for var in ("HELM_BIN", "HELM3_BIN", "HELM4_BIN", "FAKE_CLUSTERS", "FAKE_HELM_STATUS", "FAKE_HELM_UPGRADE_FAIL",
                "FAKE_KIND_CREATE_FAIL", "FAKE_NODES_NOT_READY", "JDA_KEEP_CLUSTER", "FAKE_NODE_CPU",
                "FAKE_NODE_MEMORY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(kind, "ARTIFACTS_DIR", tmp_path / "artifacts")
    monkeypatch.setattr(stack, "ARTIFACTS_DIR", tmp_path / "artifacts")
    user_kubeconfig = tmp_path / "user-kubeconfig"
    user_kubeconfig.write_text("current-context: my-prod-cluster\n")
    monkeypatch.setenv("KUBECONFIG", str(user_kubeconfig))
    state = {"log": log, "bin": bin_dir, "tmp": tmp_path, "user_kubeconfig": user_kubeconfig}
    yield state
    # every helm and kubectl call the harness made must be one the pinned binaries accept
    for tool in ("helm", "kubectl"):
        for argv in calls(state, tool):
            check_argv(tool, argv)


def check_argv(tool: str, argv: list[str]) -> str:
    """The subcommand of a helm or kubectl call, after checking each flag against the flags the pinned
    binary prints for it (data/upstream/cli-flags.yaml, jdagent.facts.cliflags); AssertionError otherwise."""
    table = CLI_FLAGS[tool]
    glob = table["global"]
    i = 0
    while i < len(argv) and argv[i].startswith("-"):  # global flags before the subcommand
        name, eq, _ = argv[i].partition("=")
        assert name in glob, f"{tool} {' '.join(argv)}: {name} is not a global flag of {tool} {table['version']}"
        i += 2 if glob[name] == "value" and not eq else 1
    rest = argv[i:]
    command = next((" ".join(rest[:n]) for n in (3, 2, 1) if " ".join(rest[:n]) in table["commands"]), None)
    assert command, f"{tool} {' '.join(argv)}: no recorded subcommand (record it in jdagent.facts.cliflags)"
    allowed = {**glob, **table["commands"][command]}
    args = rest[len(command.split()):]
    j = 0
    while j < len(args):
        arg = args[j]
        if arg == "--":
            break
        if arg.startswith("-") and arg != "-":
            name, eq, _ = arg.partition("=")
            assert name in allowed, (f"{tool} {' '.join(argv)}: {name} is not a flag of `{tool} {command}` "
                                     f"({table['version']})")
            j += 2 if allowed[name] == "value" and not eq else 1
            continue
        j += 1
    return command


def calls(fakes, tool: str) -> list[list[str]]:
    lines = fakes["log"].read_text().splitlines() if fakes["log"].exists() else []
    return [shlex.split(line)[1:] for line in lines if line.startswith(tool + " ")]


def kind_flags_are_known(fakes):
    for argv in calls(fakes, "kind"):
        command = " ".join(argv[:2]) if " ".join(argv[:2]) in KIND_FACTS["commands"] else argv[0]
        assert command in KIND_FACTS["commands"], argv
        flags = [a for a in argv if a.startswith("-")]
        assert set(flags) <= set(KIND_FACTS["commands"][command]), (argv, KIND_FACTS["commands"][command])


# --- prerequisites ---------------------------------------------------------------------------------
def test_reasons_name_the_missing_part():
    present = {"kind": "/usr/bin/kind", "docker": "/usr/bin/docker"}
    ok = {"which": present.get, "kind_version": lambda: "0.32.0", "docker_ok": lambda: True,
          "helm4_ok": lambda: True, "kubectl_ok": lambda: True, "online": lambda: True}
    assert kind.missing_prerequisites(**ok) is None
    assert "kind is not installed" in kind.missing_prerequisites(**{**ok, "which": lambda n: None})
    old = kind.missing_prerequisites(**{**ok, "kind_version": lambda: "0.29.0"})
    assert "kind 0.29.0 is older than 0.32.0" in old
    assert "no Docker engine" in kind.missing_prerequisites(**{**ok, "docker_ok": lambda: False})
    assert "install helm 4 and kubectl" in kind.missing_prerequisites(**{**ok, "helm4_ok": lambda: False})
    assert "install helm 4 and kubectl" in kind.missing_prerequisites(**{**ok, "kubectl_ok": lambda: False})
    assert "no internet" in kind.missing_prerequisites(**{**ok, "online": lambda: False})


def test_kind_version_is_read_from_kind(fakes, monkeypatch):
    assert kind.kind_version() == "0.32.0"
    monkeypatch.setenv("FAKE_KIND_VERSION", "0.29.0")
    assert "older than" in kind.missing_prerequisites(docker_ok=lambda: True, online=lambda: True)


def test_other_platforms_are_told_to_install_helm_4_and_kubectl(monkeypatch):
    monkeypatch.setattr(tools, "this_platform", lambda: "darwin/arm64")
    monkeypatch.setattr(tools.shutil, "which", lambda name: None)
    for var in ("HELM_BIN", "HELM4_BIN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(tools, "TOOLS_DIR", Path("/nonexistent"))
    with pytest.raises(tools.ToolError, match=r"linux/amd64 only \(this is darwin/arm64\): install helm 4 and kubectl"):
        tools.find_helm("4")
    reason = kind.missing_prerequisites(which=lambda n: "/usr/bin/" + n, kind_version=lambda: "0.32.0",
                                        docker_ok=lambda: True, online=lambda: True)
    assert reason.startswith("install helm 4 and kubectl") and "darwin/arm64" in reason


def test_the_pins_match_the_kind_release():
    config = yaml.safe_load(kind.KIND_CONFIG.read_text())
    assert config["apiVersion"] == KIND_FACTS["config_api_version"]
    assert [n["image"] for n in config["nodes"]] == [KIND_FACTS["node_image"]]
    assert re.search(r"@sha256:[0-9a-f]{64}$", KIND_FACTS["node_image"])
    assert kind.KIND_VERSION == KIND_FACTS["version"] == KIND_FACTS["source"]["tag"].lstrip("v")


def test_kind_gets_the_node_registry_hosts_by_absolute_path(tmp_path, monkeypatch):
    """kind resolves a relative extraMounts hostPath against its working directory: the harness passes a
    copy of kind-config.yaml whose host paths are absolute under the repository."""
    monkeypatch.setattr(kind, "ARTIFACTS_DIR", tmp_path)
    config = yaml.safe_load(kind.resolved_config("jda-test").read_text())
    [mount] = config["nodes"][0]["extraMounts"]
    assert mount["hostPath"] == str(REPO_ROOT / "tests" / "e2e" / "containerd-certs.d")
    assert mount["containerPath"] == "/etc/containerd/certs.d" and mount["readOnly"] is True
    assert Path(mount["hostPath"], "registry.registry.svc.cluster.local_5000_", "hosts.toml").is_file()


def test_tox_e2e_does_not_provision_helm_3():
    tox = (REPO_ROOT / "tox.ini").read_text().split("[testenv:e2e]", 1)[1].split("\n[", 1)[0]
    assert re.search(r"(?m)^commands_pre =\s*$", tox), "tox -e e2e must not run `python -m jdagent.tools` (helm 3)"
    [command] = re.findall(r"(?m)^\s+pytest .*$", tox)
    assert "--capture=no" in command.split(), "progress and streamed kind/helm output must show live"


# --- cluster, setup failure, pending releases ------------------------------------------------------
def test_a_new_cluster_gets_a_private_kubeconfig(fakes):
    before = fakes["user_kubeconfig"].read_text()
    cluster, created = kind.KindProvider().up("jda-test")
    assert created
    [create] = [a for a in calls(fakes, "kind") if a[:2] == ["create", "cluster"]]
    private = create[create.index("--kubeconfig") + 1]
    assert Path(private) == cluster.kubeconfig and cluster.kubeconfig.is_file()
    assert str(cluster.kubeconfig).startswith(str(fakes["tmp"] / "artifacts"))
    assert fakes["user_kubeconfig"].read_text() == before
    assert oct(cluster.kubeconfig.stat().st_mode & 0o777) == "0o600"
    kind_flags_are_known(fakes)


def test_an_existing_cluster_is_reused(fakes, monkeypatch):
    monkeypatch.setenv("FAKE_CLUSTERS", "other jda-test")
    cluster, created = kind.KindProvider().up("jda-test")
    assert not created
    assert not [a for a in calls(fakes, "kind") if a[:2] in (["create", "cluster"], ["delete", "cluster"])]
    assert any("wait --for=condition=Ready node --all" in " ".join(a) for a in calls(fakes, "kubectl"))
    assert "fake kubeconfig" in cluster.kubeconfig.read_text()


def deletes(fakes) -> list[list[str]]:
    return [a for a in calls(fakes, "kind") if a[:2] == ["delete", "cluster"]]


@pytest.mark.parametrize("existing,keep,deleted", [("", None, True), ("", "1", False), ("jda-test", None, False)],
                         ids=["created-is-deleted", "created-kept-on-request", "reused-is-kept"])
def test_a_failed_install_saves_evidence_and_deletes_only_a_cluster_it_created(fakes, monkeypatch, existing, keep,
                                                                               deleted):
    monkeypatch.setenv("FAKE_HELM_UPGRADE_FAIL", "1")
    monkeypatch.setenv("FAKE_CLUSTERS", existing)
    if keep:
        monkeypatch.setenv("JDA_KEEP_CLUSTER", keep)
    monkeypatch.setattr(release, "INSTALL_TIMEOUT_S", 5)
    with pytest.raises(RuntimeError, match="upgrade --install"):
        stack.bring_up(kind.KindProvider(), "jda-test")
    setup = fakes["tmp"] / "artifacts" / "e2e" / "setup"
    for name in ("ci-events.txt", "ci-agents-pods.yaml", "helm-status.txt", "helm-history.txt",
                 "ci-ci-jenkins-dind-agent-0.log", "kind/kubelet.log"):
        assert (setup / name).is_file(), name
    kind_calls = calls(fakes, "kind")
    if deleted:
        [delete] = deletes(fakes)
        assert delete[delete.index("--name") + 1] == "jda-test"
        assert kind_calls.index(delete) > kind_calls.index(["export", "logs", str(setup / "kind"), "--name",
                                                             "jda-test"]), "evidence first, then delete"
    else:
        assert deletes(fakes) == []
    kind_flags_are_known(fakes)


def test_an_existing_cluster_whose_nodes_are_not_ready_is_replaced(fakes, monkeypatch):
    monkeypatch.setenv("FAKE_CLUSTERS", "jda-test")
    monkeypatch.setenv("FAKE_NODES_NOT_READY", "1")
    _, created = kind.KindProvider().up("jda-test")
    assert created
    verbs = [a[:2] for a in calls(fakes, "kind")]
    assert verbs.index(["delete", "cluster"]) < verbs.index(["create", "cluster"])
    kind_flags_are_known(fakes)


def test_an_interrupted_create_deletes_the_half_built_cluster(fakes, monkeypatch):
    monkeypatch.setenv("FAKE_KIND_CREATE_FAIL", "1")
    with pytest.raises(RuntimeError, match="create cluster"):
        kind.KindProvider().up("jda-test")
    [delete] = deletes(fakes)
    assert delete[delete.index("--name") + 1] == "jda-test"
    kind_flags_are_known(fakes)



def test_the_provider_loads_a_local_image_into_its_own_cluster(fakes):
    provider = kind.KindProvider()
    cluster, _ = provider.up("jda-test")
    provider.load_image(cluster, "jda-standin-dind:abc123")
    [load] = [a for a in calls(fakes, "kind") if a[:2] == ["load", "docker-image"]]
    assert load[load.index("--name") + 1] == "jda-test" and load[-1] == "jda-standin-dind:abc123"
    kind_flags_are_known(fakes)

@pytest.mark.parametrize("status,action", [("pending-install", "uninstall"), ("pending-upgrade", "rollback"),
                                           ("pending-rollback", "rollback"), ("deployed", None)])
def test_a_release_left_pending_is_recovered_before_the_install(fakes, monkeypatch, status, action):
    monkeypatch.setenv("FAKE_HELM_STATUS", status)
    monkeypatch.setattr(release, "INSTALL_TIMEOUT_S", 5)
    cluster, _ = kind.KindProvider().up("jda-test")
    release.install_chart(cluster)
    verbs = [a[2] for a in calls(fakes, "helm") if a[:1] == ["--kubeconfig"]]
    upgrade = verbs.index("upgrade")
    if action:
        assert action in verbs[:upgrade], verbs
    else:
        assert "uninstall" not in verbs and "rollback" not in verbs


def test_a_port_forward_that_fails_reports_kubectl_and_does_not_hang(fakes):
    cluster, _ = kind.KindProvider().up("jda-test")
    result: dict = {}

    def attempt() -> None:
        try:
            with portforward.port_forward(cluster, "ci", "svc/x", 8080, deadline_s=20):
                result["opened"] = True
        except RuntimeError as exc:
            result["error"] = str(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "port_forward hung on a dead kubectl"
    assert "unable to forward port because pod is not running" in result["error"]


class FakeCluster:
    """Cluster stand-in answering kubectl/helm from scripted outputs (last one repeats)."""

    def __init__(self, answers: dict[str, list[tuple[int, str]]]):
        self.answers = answers
        self.calls: list[tuple[str, ...]] = []

    def _answer(self, args: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        for key, outputs in self.answers.items():
            if key in " ".join(args):
                code, out = outputs.pop(0) if len(outputs) > 1 else outputs[0]
                return subprocess.CompletedProcess(args, code, out, "failed" if code else "")
        return subprocess.CompletedProcess(args, 0, "", "")

    def kubectl(self, *args, check=True, timeout=300, input_text=None):
        return self._answer(args)

    def kubectl_wait(self, seconds, *args, check=True):
        return self._answer((*args, f"--timeout={seconds}s"))

    def helm(self, *args, check=True, timeout=300, stream=False):
        return self._answer(("helm", *args))


def test_restart_waits_for_the_replacement_pod_not_rollout_status(monkeypatch):
    monkeypatch.setattr(release.time, "sleep", lambda s: None)
    fake = FakeCluster({"jsonpath={.metadata.uid}": [(0, "old"), (0, "old"), (1, ""), (0, "new")]})
    release.restart_controller(fake)
    joined = [" ".join(c) for c in fake.calls]
    assert not any("rollout" in c for c in joined)
    assert any("delete pod ci-jenkins-dind-agent-0 --wait=false" in c for c in joined)
    assert joined[-1].endswith("wait --for=condition=Ready pod/ci-jenkins-dind-agent-0 --timeout=600s")
    assert sum("jsonpath={.metadata.uid}" in c for c in joined) == 4


def test_leftover_agent_pods_are_polled_until_the_plugin_deleted_them(monkeypatch):
    monkeypatch.setattr(release.time, "sleep", lambda s: None)
    fake = FakeCluster({"get pods": [(0, "pod/dind-abc\npod/ci-jenkins-dind-agent-dind-build-test"),
                                     (0, "pod/ci-jenkins-dind-agent-dind-build-test")]})
    assert release.pods_left(fake) == []
    assert len(fake.calls) == 2


def test_helm_test_reads_the_pod_log_in_the_agent_namespace():
    fake = FakeCluster({"logs": [(0, "PASS: multi-stage build works in the dind agent pod\n")]})
    assert "PASS" in release.helm_test(fake)
    [test, logs] = fake.calls
    assert "--logs" not in test
    assert logs == ("-n", "ci-agents", "logs", "pod/ci-jenkins-dind-agent-dind-build-test", "-c", "jnlp")
    failing = FakeCluster({"helm": [(1, "")], "logs": [(0, "FAIL: dockerd runs on overlay2")]})
    with pytest.raises(RuntimeError, match="FAIL: dockerd runs on overlay2"):
        release.helm_test(failing)


def test_loopback_is_excluded_from_proxies(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "corp.example")
    monkeypatch.delenv("no_proxy", raising=False)
    portforward.loopback_without_proxy()
    assert os.environ["NO_PROXY"].split(",") == ["corp.example", "127.0.0.1", "localhost"]
    assert "127.0.0.1" in os.environ["no_proxy"].split(",")


# --- Jenkins ---------------------------------------------------------------------------------------
class Clock:
    def __init__(self):
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.slept.append(s)
        self.now += s


class Client:
    def __init__(self, whoami_errors=(), queue=(), builds=()):
        self.whoami_errors = list(whoami_errors)
        self.queue = list(queue)
        self.builds = list(builds)

    def get_whoami(self):
        if self.whoami_errors:
            raise self.whoami_errors.pop(0)
        return {"id": "admin"}

    def build_job(self, job, params):
        return 7

    def get_queue_item(self, queue_id):
        return self.queue.pop(0) if len(self.queue) > 1 else self.queue[0]

    def get_build_info(self, job, number):
        return self.builds.pop(0) if len(self.builds) > 1 else self.builds[0]

    def get_build_console_output(self, job, number):
        return "console"


def test_refused_credentials_fail_fast():
    clock = Clock()
    refused = Exception("Error in request. Possibly authentication failed [401]: Unauthorized")
    client = Client(whoami_errors=[refused] * 100)
    with pytest.raises(jenkinsjob.JenkinsAuthError, match="refused the admin credentials"):
        jenkinsjob.connect(lambda: client, sleep=clock.sleep, clock=clock)
    assert len(clock.slept) == 1


def test_a_starting_jenkins_is_waited_for_and_a_dead_one_times_out():
    clock = Clock()
    starting = Client(whoami_errors=[ConnectionError("refused")] * 3 + [Exception("503 Service Unavailable")])
    assert jenkinsjob.connect(lambda: starting, sleep=clock.sleep, clock=clock) is starting
    dead = Client(whoami_errors=[ConnectionError("refused")] * 1000)
    with pytest.raises(TimeoutError, match="did not answer within 60 s"):
        jenkinsjob.connect(lambda: dead, deadline_s=60, sleep=clock.sleep, clock=clock)


def test_a_cancelled_queue_item_fails_at_once():
    clock = Clock()
    client = Client(queue=[{"why": "Waiting for next available executor"},
                           {"cancelled": True, "why": "Cancelled by admin"}])
    with pytest.raises(jenkinsjob.JobError, match="cancelled the queue item 7 \\(Cancelled by admin\\)"):
        jenkinsjob.run_job(client, "job", {}, sleep=clock.sleep, clock=clock)
    assert clock.now < 60


def test_a_job_stuck_in_the_queue_or_building_fails_with_the_reason():
    clock = Clock()
    stuck = Client(queue=[{"why": "All nodes of label 'dind' are offline"}])
    with pytest.raises(jenkinsjob.JobError, match="never left the queue in 120 s: All nodes of label 'dind'"):
        jenkinsjob.run_job(stuck, "job", {}, timeout_s=120, sleep=clock.sleep, clock=clock)
    running = Client(queue=[{"executable": {"number": 3}}], builds=[{"building": True, "result": None}])
    with pytest.raises(jenkinsjob.JobError, match="#3 still running") as err:
        jenkinsjob.run_job(running, "job", {}, timeout_s=120, sleep=clock.sleep, clock=clock)
    assert (err.value.number, err.value.console) == (3, "console"), "a timed-out build keeps its console"
    done = Client(queue=[{"executable": {"number": 4}}], builds=[{"building": True}, {"building": False,
                                                                                      "result": "SUCCESS"}])
    assert jenkinsjob.run_job(done, "job", {}, sleep=clock.sleep, clock=clock) == jenkinsjob.Build(4, "SUCCESS",
                                                                                                   "console")


def test_the_push_digest_is_the_one_docker_printed():
    console = ("#7 [build 2/2] RUN mkdir -p /out && echo built\n"
               "build: digest: sha256:" + "a" * 64 + " size: 527\n"
               "build: digest: sha256:" + "b" * 64 + " size: 528\n")
    assert jenkinsjob.push_digest(console) == "sha256:" + "b" * 64
    assert jenkinsjob.push_digest("no push here") is None


# --- the tier itself -------------------------------------------------------------------------------
def run_e2e(extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep)
                           if d and not shutil.which("kind", path=d))
    env = {**os.environ, "PATH": path, "JDA_ONLINE": "0", **extra_env}
    for var in ("JDA_REQUIRE_E2E", "JDA_E2E_ALLOW_SKIP"):
        if var not in extra_env:
            env.pop(var, None)
    return subprocess.run([sys.executable, "-m", "pytest", "tests/e2e", "-rs", "-q", "-p", "no:cacheprovider"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_e2e_without_kind_skips_everything_with_reasons_and_fails():
    """The default outcome on a laptop without kind: every test skips, and the run must not pass."""
    proc = run_e2e({})
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "this run FAILS" in out and "JDA_E2E_ALLOW_SKIP=1" in out
    skipped = int(re.search(r"(\d+) skipped", out).group(1))
    assert skipped >= 6
    assert "passed" not in out.splitlines()[-1] and "failed" not in out.splitlines()[-1]
    kind_skips = re.search(r"SKIPPED \[(\d+)\] tests/e2e/test_pipeline.py: kind is not installed", out)
    online_skips = re.search(r"SKIPPED \[(\d+)\] tests/e2e/test_spinnaker_upstream.py: no internet confirmed", out)
    assert kind_skips and int(kind_skips.group(1)) >= 4, out
    assert online_skips and int(online_skips.group(1)) >= 2, out
    assert int(kind_skips.group(1)) + int(online_skips.group(1)) == skipped
    assert "E2E DID NOT RUN" in out


def test_skips_are_accepted_only_when_asked_for():
    proc = run_e2e({"JDA_E2E_ALLOW_SKIP": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "E2E DID NOT RUN" in proc.stdout and "accepted: JDA_E2E_ALLOW_SKIP=1" in proc.stdout
    assert re.search(r"\b\d+ skipped", proc.stdout.splitlines()[-1])


def test_require_e2e_turns_missing_prerequisites_into_failures():
    proc = run_e2e({"JDA_REQUIRE_E2E": "1"})
    out = proc.stdout
    assert proc.returncode == 1, out
    collected = subprocess.run([sys.executable, "-m", "pytest", "tests/e2e", "--collect-only", "-q",
                                "-p", "no:cacheprovider"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    total = len([line for line in collected.stdout.splitlines() if "::" in line])
    assert total >= 6
    assert re.search(rf"\b{total} errors", out), f"all {total} e2e tests must error in setup, not pass or skip"
    assert "JDA_REQUIRE_E2E=1 but kind is not installed" in out
    assert "E2E DID NOT RUN" not in out


# --- the quickstart's provider choice and the missing-image report --------------------------------
def test_the_quickstart_uses_kind_where_it_is_installed_else_the_local_cluster():
    assert stack.choose_provider("auto", which=lambda n: "/usr/bin/kind").label == "kind"
    assert stack.choose_provider("auto", which=lambda n: None).label == "local"
    assert stack.choose_provider("kind", which=lambda n: None).label == "kind"
    assert stack.choose_provider("local", which=lambda n: "/usr/bin/kind").label == "local"


def _events(*pairs):
    return json.dumps({"items": [{"reason": "Failed", "involvedObject": {"name": pod},
                                  "message": f'Failed to pull image "{image}": failed to resolve image'}
                                 for pod, image in pairs]})


def _pods(*names, ready=()):
    return json.dumps({"items": [{"metadata": {"name": n}, "status": {"conditions": [
        {"type": "Ready", "status": "True" if n in ready else "False"}]}} for n in names]})


def test_images_the_kubelet_cannot_pull_are_named_once_every_waiting_pod_has_a_report(monkeypatch):
    monkeypatch.setattr(release.time, "sleep", lambda s: None)
    fake = FakeCluster({
        "get events": [(0, _events(("ci-0", "jenkins/jenkins:2.568.2-jdk21"))),
                       (0, _events(("ci-0", "jenkins/jenkins:2.568.2-jdk21"), ("mirror-1", "registry:3.1.1")))],
        "get pods": [(0, _pods("ci-0", "mirror-1", "ready-2", ready=("ready-2",)))],
    })
    assert release.images_not_pulled(fake, ("ci",)) == ["jenkins/jenkins:2.568.2-jdk21", "registry:3.1.1"]
    assert sum("get events" in " ".join(c) for c in fake.calls) == 2, "it waited for the second pod's report"
    everything_ready = FakeCluster({"get events": [(0, _events())], "get pods": [(0, _pods("a", ready=("a",)))]})
    assert release.images_not_pulled(everything_ready, ("ci",)) == []


def test_every_build_console_of_a_test_is_kept_also_a_timed_out_one(monkeypatch):
    """tests/e2e/test_pipeline.run_job: a second build must not replace the first one's console."""
    import importlib

    pipeline = importlib.import_module("tests.e2e.test_pipeline")
    node = type("Node", (), {})()
    request = type("Request", (), {"node": node})()
    answers = iter([jenkinsjob.Build(1, "SUCCESS", "first"), jenkinsjob.JobError("#2 still running", 2, "second")])

    def fake_run_job(client, job, params):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(jenkinsjob, "run_job", fake_run_job)
    pipeline.run_job(None, request)
    with pytest.raises(jenkinsjob.JobError):
        pipeline.run_job(None, request)
    assert node.jda_artifacts == {"releases-dind-example-1-console.txt": "first",
                                  "releases-dind-example-2-console.txt": "second"}


def test_the_readme_counts_the_docker_hub_pulls_of_a_fresh_run():
    """One registry image for the mirror and the test registry, pinned by digest; the README's count of
    anonymous Docker Hub pulls is what the kind values, the test registry and the node image add up to."""
    from jdagent.chart.render import render

    def images(obj) -> set[str]:
        if isinstance(obj, dict):
            return set().union(*(({v} if k == "image" and isinstance(v, str) else images(v)) for k, v in obj.items()))
        if isinstance(obj, list):
            return set().union(*(images(v) for v in obj)) if obj else set()
        return set()

    manifest = render(values=REPO_ROOT / "tests" / "e2e" / "kind-values.yaml")
    chart = images(list(manifest)) | images(manifest.agent_pod())
    registry = images(list(yaml.safe_load_all((REPO_ROOT / "tests" / "e2e" / "registry.yaml").read_text())))
    values = yaml.safe_load((REPO_ROOT / "charts" / "jenkins-dind-agent" / "values.yaml").read_text())
    mirror = values["mirror"]["image"]
    assert registry == {f"{mirror['repository']}:{mirror['tag']}@{mirror['digest']}"}
    assert registry <= chart, "the test registry uses the mirror's image: one pull for both"
    node = [KIND_FACTS["node_image"]]
    base = [values["exampleJob"]["baseImage"]]

    def on_docker_hub(ref: str) -> bool:
        """Docker's reference rule: a first path element with a dot, a port or "localhost" is a registry."""
        first, _, rest = ref.partition("/")
        return not rest or first == "docker.io" or not ("." in first or ":" in first or first == "localhost")

    hub = {i for i in chart | registry | set(node) | set(base) if on_docker_hub(i)}
    readme = (REPO_ROOT / "README.md").read_text()
    assert f"a fresh e2e run pulls {len(hub)} images from Docker Hub anonymously" in readme, sorted(hub)


# --- capacity ----------------------------------------------------------------------------------------
def test_a_pods_request_counts_init_containers_as_the_scheduler_does():
    from jdagent.cluster.capacity import pod_request

    def c(cpu, mem, **extra):
        return {"resources": {"requests": {"cpu": cpu, "memory": mem}}, **extra}

    spec = {"initContainers": [c("100m", "64Mi", restartPolicy="Always"), c("2", "1Gi")],
            "containers": [c("500m", "256Mi"), c("250m", "128Mi")]}
    cpu, mem = pod_request(spec)
    assert cpu == pytest.approx(2.1), "a plain init container runs beside the sidecars started before it"
    assert mem == (1024 + 64) * 1024**2
    cpu, mem = pod_request({"initContainers": [c("100m", "64Mi")], "containers": [c("500m", "256Mi")]})
    assert (cpu, mem) == (0.5, 256 * 1024**2)


def test_free_capacity_counts_ready_schedulable_nodes_and_running_pods():
    from jdagent.cluster.capacity import free

    def node(name, ready=True, unschedulable=False):
        return {"metadata": {"name": name}, "spec": {"unschedulable": unschedulable},
                "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                           "allocatable": {"cpu": "4", "memory": "8Gi"}}}

    def pod(ns, node_name, phase="Running"):
        return {"metadata": {"namespace": ns}, "spec": {"nodeName": node_name, "containers": [
            {"resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}, "status": {"phase": phase}}

    nodes = {"items": [node("a"), node("b", ready=False), node("c", unschedulable=True)]}
    pods = {"items": [pod("kube-system", "a"), pod("ci", "a"), pod("x", "a", "Succeeded"), pod("y", "b")]}
    left = free(nodes, pods, ignore_namespaces=("ci",))
    assert (left.cpu, left.memory) == (3.0, 7 * 1024**3)


def test_a_two_cpu_node_fails_before_anything_is_installed(fakes, monkeypatch):
    """The e2e install requests more than a 2-CPU VM has left after kind's control plane: the error names
    both sides in seconds."""
    monkeypatch.setenv("FAKE_NODE_CPU", "2")
    monkeypatch.setenv("FAKE_NODE_MEMORY", "4Gi")
    cluster, _ = kind.KindProvider().up("jda-test")
    with pytest.raises(RuntimeError, match="the cluster is too small for the e2e install") as err:
        release.install_chart(cluster)
    message = str(err.value)
    assert "statefulset/ci-jenkins-dind-agent" in message and "an agent pod" in message
    assert "1 Ready node(s) have free 1.05 CPU / 3.72 GiB" in message
    assert not [a for a in calls(fakes, "helm") if "upgrade" in a], "nothing is installed"


def test_the_e2e_install_fits_a_node_the_readme_calls_enough(fakes):
    from jdagent.chart.render import render
    from jdagent.cluster import capacity

    wanted = capacity.needs(render(values=release.E2E_VALUES, release=release.RELEASE, namespace=release.NAMESPACE))
    cpu = sum(w.cpu for w in wanted)
    mem = sum(w.memory for w in wanted) / 1024**3
    readme = (REPO_ROOT / "README.md").read_text()
    found = re.search(r"the e2e install requests ([\d.]+) CPU and ([\d.]+) GiB", readme)
    assert found, "the README states what the e2e install requests"
    assert (float(found.group(1)), float(found.group(2))) == (round(cpu, 2), round(mem, 2))


def test_the_fakes_refuse_a_flag_the_pinned_binaries_do_not_have():
    assert check_argv("kubectl", ["--kubeconfig", "k", "-n", "ci", "get", "pods", "-o", "json"]) == "get"
    assert check_argv("helm", ["--kubeconfig", "k", "upgrade", "--install", "ci", ".", "--wait", "--timeout", "5m"]) \
        == "upgrade"
    assert check_argv("kubectl", ["create", "secret", "generic", "x", "--from-literal=a=b", "--dry-run=client",
                                  "-o", "yaml"]) == "create secret generic"
    for tool, argv in (("kubectl", ["get", "pods", "--namespce", "ci"]), ("helm", ["upgrade", "--instal", "ci", "."]),
                       ("helm", ["test", "ci", "--logs-all"]), ("kubectl", ["frobnicate", "pods"])):
        with pytest.raises(AssertionError):
            check_argv(tool, argv)


def test_the_recorded_flags_are_what_the_pinned_binaries_print():
    from jdagent.facts import cliflags

    assert cliflags.render(cliflags.record()) == cliflags.OUT.read_text(), "rerun python -m jdagent.facts.cliflags"
    assert CLI_FLAGS["helm"]["version"].startswith(tools.PINS["4"].helm_version)
    assert CLI_FLAGS["kubectl"]["version"] == tools.PINS["4"].kubectl_version


def test_a_lost_port_forward_is_reopened_and_the_call_retried_once():
    import contextlib

    opened, closed = [], []

    class FlakyClient:
        def __init__(self, n):
            self.n = n

        def get_job_info(self, job):
            if self.n == 0:
                raise ConnectionError("('Connection aborted.', RemoteDisconnected('Remote end closed connection'))")
            return {"name": job, "via": self.n}

        def get_build_info(self, job, number):
            raise KeyError("not a connection problem")

    @contextlib.contextmanager
    def open_client():
        n = len(opened)
        opened.append(n)
        try:
            yield FlakyClient(n)
        finally:
            closed.append(n)

    client = jenkinsjob.Reconnecting(open_client)
    assert client.get_job_info("dind-example") == {"name": "dind-example", "via": 1}
    assert (opened, closed, client.reconnects) == ([0, 1], [0], 1), "the dead forward is closed, a new one opened"
    with pytest.raises(KeyError):
        client.get_build_info("dind-example", 1)
    assert client.reconnects == 1, "other errors are not retried"
    client.close()
    assert closed == [0, 1]


def test_a_connection_that_stays_lost_fails_after_one_retry():
    import contextlib

    @contextlib.contextmanager
    def open_client():
        class Dead:
            def get_whoami(self):
                raise OSError("[Errno 111] Connection refused")
        yield Dead()

    client = jenkinsjob.Reconnecting(open_client)
    with pytest.raises(OSError, match="Connection refused"):
        client.get_whoami()
    assert client.reconnects == 1
