"""The chart on a real Docker engine: `podrun` starts a rendered pod as containers, `agentpod` runs
builds in the agent pod, with stand-in images, local registries (plain and TLS), prewarmed dind
images, the benchmark and scripts/try-agent.

May import `jdagent.chart` and tooling; never `jdagent.cluster` or `jdagent.facts`."""
