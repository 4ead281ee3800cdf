"""The `local` cluster provider: a real single-node Kubernetes built from the upstream Go modules
(pins), started in a network namespace of its own on this machine (node, host, config, pki, relay).
`python -m jdagent.cluster.local up|down|status` runs it by hand."""
