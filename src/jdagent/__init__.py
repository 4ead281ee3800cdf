"""Reusable code of the jenkins-dind-agent harness: helm binaries, rendering, manifest queries,
running the rendered agent pod on a Docker engine, stand-in images and a local registry."""

from jdagent.paths import CHART_DIR, REPO_ROOT, SPINNAKER_DIR

__all__ = ["CHART_DIR", "REPO_ROOT", "SPINNAKER_DIR"]
