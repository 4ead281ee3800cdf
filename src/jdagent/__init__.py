"""Reusable code of the jenkins-dind-agent harness, in layers; each imports only from layers below it.

- tooling (this package's own modules): `paths` (where the repository is), `tools` (pinned helm and
  kubectl), `mutation` (the mutation gate's runner);
- `jdagent.chart`: the chart as data: render it, query and validate the manifests, JCasC, plugin lock;
- `jdagent.facts`: regenerate the upstream facts the chart is checked against (above `chart`);
- `jdagent.engine`: the chart's agent pod on a real Docker engine: stand-in images, registries, bench;
- `jdagent.cluster`: the chart on a real Kubernetes cluster: providers (kind, local), release, helm test
  (above `engine`: the local cluster's images come from it);
- `jdagent.vm`: a qemu guest with a real cgroup v2 kernel, systemd and Docker: base and prepared disks,
  `Machine` over SSH (above `cluster`).
"""

from jdagent.paths import CHART_DIR, REPO_ROOT, SPINNAKER_DIR

__all__ = ["CHART_DIR", "REPO_ROOT", "SPINNAKER_DIR"]
