"""The local cluster provider without starting it: its pins agree with the recorded upstream facts, its
prerequisites name what is missing, its Go build reads go.mod replaces and licences as the files say,
and the configuration files it writes parse with the keys the pinned sources read."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml

from jdagent import gobuild
from jdagent.cluster.local import addons, config, pins
from jdagent.cluster.local.config import Layout
from jdagent.cluster.local.node import missing
from jdagent.cluster.local.relay import main as relay_main

FACTS = yaml.safe_load((Path(__file__).parent / "data" / "upstream" / "kubernetes.yaml").read_text())
KIND = yaml.safe_load((Path(__file__).parent / "data" / "upstream" / "kind.yaml").read_text())


def minor(version: str) -> str:
    return ".".join(version.lstrip("v").split(".")[:2])


def test_kubernetes_follows_the_minor_of_the_kind_node_image_the_e2e_tier_pins():
    node = KIND["node_image"].split("@")[0]
    assert node.startswith(FACTS["kind"]["node_image"])
    assert minor(pins.KUBERNETES) == minor(FACTS["kind"]["node_image"].split(":v")[1])
    assert FACTS["kubernetes"]["source"]["version"] == pins.KUBERNETES
    assert FACTS["kubernetes"]["source"]["time"] == pins.KUBERNETES_DATE


def test_the_other_pins_are_the_ones_their_sources_declare():
    deps = FACTS["kubernetes"]["dependencies"]
    etcd_module = FACTS["kubernetes"]["go_mod"]["go.etcd.io/etcd/server/v3"]
    assert pins.ETCD.lstrip("v") == deps["etcd"] == etcd_module.lstrip("v")
    assert pins.CNI_PLUGINS.lstrip("v") == deps["cni"] == FACTS["kind"]["cni_plugins"].lstrip("v")
    assert pins.COREDNS.lstrip("v") == deps["coredns-kubeadm"]
    assert pins.PAUSE == deps["registry.k8s.io/pause"] == FACTS["kubernetes"]["kubeadm_constants"]["PauseVersion"]
    assert FACTS["kind"]["runc"] == pins.RUNC
    # kind's containerd is not served; the pin is the newest served patch of the same minor
    assert minor(pins.CONTAINERD) == minor(FACTS["kind"]["containerd"])
    served = FACTS["served"]["github.com/containerd/containerd/v2"]
    same_minor = [v for v in served if minor(v) == minor(pins.CONTAINERD)]
    assert same_minor[-1] == pins.CONTAINERD


def test_every_program_records_its_source_and_builds_one_binary_per_command():
    programs = {p.name: p for p in pins.PROGRAMS}
    assert set(programs) == {"kubernetes", "containerd", "containerd-shim", "runc", "cni-plugins", "coredns",
                             "kube-router"}
    assert all(p.source for p in programs.values())
    assert set(programs["kubernetes"].links) == set(pins.KUBE_COMMANDS)
    assert set(programs["cni-plugins"].packages) == {"bridge", "host-local", "loopback", "portmap"}
    flags = " ".join(programs["kubernetes"].ldflags)
    assert f"k8s.io/component-base/version.gitVersion={pins.KUBERNETES}" in flags
    assert "k8s.io/client-go/pkg/version.gitMinor=36" in flags


def test_the_build_key_changes_with_the_pin_and_the_go_version():
    program = pins.PROGRAMS[1]
    assert program.key("go1.26.8") != program.key("go1.26.9")
    moved = gobuild.GoProgram(**{**program.__dict__, "version": "v2.3.6"})
    assert moved.key("go1.26.8") != program.key("go1.26.8")


def test_staging_replaces_are_read_from_a_go_mod():
    gomod = """module k8s.io/kubernetes
require k8s.io/api v0.0.0
replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tgithub.com/x/y => github.com/x/y v1.2.3
)
replace k8s.io/kubelet => ./staging/src/k8s.io/kubelet
"""
    assert gobuild.staging_replaces(gomod) == ["k8s.io/api", "k8s.io/client-go", "k8s.io/kubelet"]
    assert pins.PROGRAMS[0].staging is not None and pins.PROGRAMS[0].staging("k8s.io/api") == "v0.36.3"


@pytest.mark.parametrize("files,expected", [
    ({"LICENSE": "Apache License\n  Version 2.0, January 2004"}, "Apache-2.0"),
    ({"LICENSE": "Licensed under the Apache License, Version 2.0 (the \"License\");"}, "Apache-2.0"),
    ({"license.md": "MIT License\n\nPermission is hereby granted, free of charge, to any person"}, "MIT"),
    ({"LICENSE.BSD": "Redistribution and use in source and binary forms", "LICENSE.MPL-2.0":
      "Mozilla Public License, version 2.0"}, "BSD AND MPL-2.0"),
    ({"COPYING.md": "`SPDX-License-Identifier: ISC`"}, "ISC"),
    ({"LICENSE": "All rights reserved. Do not copy."}, "unrecognised (LICENSE)"),
    ({"README.md": "no licence here"}, None),
])
def test_licences_are_read_from_the_module_files(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert gobuild.licence_of(tmp_path) == expected


def test_prerequisites_name_the_missing_part():
    everything = {"go": "/usr/bin/go", "ip": "/sbin/ip", "nsenter": "/usr/bin/nsenter", "iptables": "/sbin/iptables",
                  "mount": "/bin/mount", "gcc": "/usr/bin/gcc", "docker": "/usr/bin/docker"}
    assert "needs Linux (this is darwin)" in missing(everything.get, lambda: 0, "darwin")
    assert "needs root" in missing(everything.get, lambda: 1000, "linux")
    for tool, package in (("ip", "iproute2"), ("nsenter", "util-linux"), ("iptables", "iptables")):
        reason = missing({k: v for k, v in everything.items() if k != tool}.get, lambda: 0, "linux")
        assert f"`{tool}` is missing (apt-get install {package})" == reason


def test_containerd_config_has_the_cri_keys_the_pinned_source_reads(tmp_path):
    layout = Layout("unit")
    bins = {"runc": tmp_path / "runc", "cni-plugins": tmp_path / "cni"}
    parsed = tomllib.loads(config.containerd_toml(layout, bins))
    assert parsed["version"] == 3
    runtime = parsed["plugins"]["io.containerd.cri.v1.runtime"]
    assert runtime["restrict_oom_score_adj"] is True
    runc = runtime["containerd"]["runtimes"]["runc"]
    assert runc["runtime_type"] == "io.containerd.runc.v2"
    assert runc["options"] == {"BinaryName": str(tmp_path / "runc" / "runc"), "SystemdCgroup": False}
    assert runtime["cni"]["bin_dirs"] == [str(tmp_path / "cni")]
    images = parsed["plugins"]["io.containerd.cri.v1.images"]
    assert images["pinned_images"]["sandbox"] == f"registry.k8s.io/pause:{pins.PAUSE}"
    # the in-cluster registry's name maps to its ClusterIP (the hosts.toml kind mounts, too)
    hosts = Path(images["registry"]["config_path"])
    assert hosts == config.REGISTRY_HOSTS_DIR
    server = tomllib.loads((hosts / "registry.registry.svc.cluster.local_5000_" / "hosts.toml").read_text())
    assert server == {"server": f"http://{addons.REGISTRY}"}
    assert parsed["grpc"]["address"].startswith("/run/jda-local/unit/")


def test_kubelet_and_kube_proxy_configs_keep_machine_wide_settings_alone(tmp_path):
    layout = Layout("unit")
    files = (tmp_path / "cert", tmp_path / "key", tmp_path / "ca", tmp_path / "resolv")
    kubelet = yaml.safe_load(config.kubelet_yaml(layout, *files))
    assert kubelet["kind"] == "KubeletConfiguration" and kubelet["apiVersion"] == "kubelet.config.k8s.io/v1beta1"
    assert kubelet["cgroupDriver"] == "cgroupfs" and kubelet["failCgroupV1"] is False
    assert kubelet["cgroupRoot"] == "/unit" and kubelet["readOnlyPort"] == 0
    assert kubelet["authentication"]["anonymous"]["enabled"] is False
    proxy = yaml.safe_load(config.kube_proxy_yaml(tmp_path / "kc", "unit"))
    assert proxy["mode"] == "iptables"
    assert proxy["conntrack"]["maxPerCore"] == 0 and proxy["conntrack"]["min"] == 0


def test_the_relay_listens_on_loopback_only():
    with pytest.raises(SystemExit):
        relay_main(["--netns", "/run/netns/x", "--listen", "0.0.0.0:6443", "--target", "10.213.0.1:6443"])


def test_kube_router_runs_its_firewall_alone_with_flags_its_source_defines():
    facts = FACTS["kube_router"]
    assert facts["source"]["tag"] == pins.KUBE_ROUTER
    args = config.kube_router_args(Path("/k/kube-router.kubeconfig"), "node-a")
    given = dict(arg.lstrip("-").split("=", 1) for arg in args)
    assert set(given) <= set(facts["flags"])
    # the router and the service proxy are on unless switched off; kube-proxy is the service proxy here
    assert facts["defaults"]["run-router"] is True and given["run-router"] == "false"
    assert facts["defaults"]["run-service-proxy"] is True and given["run-service-proxy"] == "false"
    assert given["run-firewall"] == "true" and given["hostname-override"] == "node-a"
    assert int(given["health-port"]) == facts["defaults"]["health-port"] == config.KUBE_ROUTER_HEALTH_PORT
    assert given["service-cluster-ip-range"] == config.SERVICE_CIDR
    assert facts["forward_chain"] == config.KUBE_ROUTER_CHAIN


def test_kube_router_may_read_what_its_informers_list_and_nothing_more():
    from jdagent.cluster.local import addons

    granted = {group: sorted(resources) for group, resources in addons.KUBE_ROUTER_READS.items()}
    assert granted == {group: sorted(resources) for group, resources in FACTS["kube_router"]["informers"].items()}
    docs = list(yaml.safe_load_all(addons.kube_router_rbac()))
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    assert all(rule["verbs"] == ["get", "list", "watch"] for rule in role["rules"])
    assert {r["apiGroups"][0]: sorted(r["resources"]) for r in role["rules"]} == granted
    binding = next(d for d in docs if d["kind"] == "ClusterRoleBinding")
    assert binding["subjects"][0]["name"] == addons.KUBE_ROUTER_USER


def test_coredns_is_built_with_exactly_the_plugins_its_corefile_uses_and_reads_what_they_list():
    from jdagent.cluster.local import addons

    facts = FACTS["coredns"]
    assert facts["source"]["version"] == pins.COREDNS
    used = [line.split()[0] for line in addons.COREFILE.splitlines()[1:]
            if line.startswith("    ") and not line.startswith("     ") and line.strip() != "}"]
    assert sorted(used) == sorted(pins.COREDNS_PLUGINS)
    assert set(pins.COREDNS_PLUGINS) <= set(facts["directives_in_order"])
    for name in pins.COREDNS_PLUGINS:
        assert f'"{pins.COREDNS_MODULE}/plugin/{name}"' in pins.COREDNS_MAIN
    granted = {g: sorted(r) for g, r in addons.COREDNS_READS.items()}
    assert granted == {g: sorted(r) for g, r in facts["kubernetes_plugin_reads"].items()}
    docs = list(yaml.safe_load_all(addons.coredns("jda-local/coredns:test")))
    service = next(d for d in docs if d["kind"] == "Service")
    assert service["spec"]["clusterIP"] == config.DNS_SERVICE_IP
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    corefile = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["Corefile"]
    assert corefile == addons.COREFILE


def test_down_finds_the_shims_by_the_clusters_containerd_socket(tmp_path):
    from jdagent.cluster.local.host import processes_mentioning

    for pid, args in ((101, [b"containerd-shim-runc-v2", b"-address", b"/run/jda-local/a/containerd.sock"]),
                      (102, [b"containerd-shim-runc-v2", b"-address", b"/run/jda-local/b/containerd.sock"]),
                      (103, [b"sleep", b"60"])):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cmdline").write_bytes(b"\0".join(args) + b"\0")
    (tmp_path / "self").mkdir()
    assert processes_mentioning("/run/jda-local/a/containerd.sock", tmp_path) == [101]
