"""The chart as data: `helm template` with caching, manifest queries, strict Kubernetes and CRD schemas,
JCasC and Kubernetes-plugin models, the plugin lock, the values table and golden renders.

May import tooling (`jdagent.paths`, `jdagent.tools`) only; no Docker engine, no cluster."""
