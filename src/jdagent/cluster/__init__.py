"""The chart on a real Kubernetes cluster (the e2e and cluster tiers, scripts/kind-up): providers that make
a cluster (`provider` defines the interface; `kind` and `local` implement it), the in-cluster registry, the
chart release and helm test, port-forwards, artifact collection, and Jenkins job helpers.

May import `jdagent.engine` (stand-in images for the local cluster), `jdagent.chart` and tooling; never
`jdagent.facts`."""
