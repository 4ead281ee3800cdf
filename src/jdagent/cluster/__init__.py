"""The chart on a real Kubernetes cluster (the e2e tier and scripts/kind-up): providers that make a
cluster (`provider` defines the interface, `kind` implements it), the in-cluster registry, the chart
release and helm test, port-forwards, artifact collection, and Jenkins job helpers.

May import tooling (`jdagent.paths`, `jdagent.tools`) only; it drives the chart through helm and
kubectl, not through `jdagent.chart`."""
