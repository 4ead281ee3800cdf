"""python -m jdagent.cluster.local up|down|status|build [--name NAME]"""

from __future__ import annotations

import argparse
import sys

from jdagent import gobuild
from jdagent.cluster.local import node, pins


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jdagent.cluster.local",
                                     description="A single-node Kubernetes built from the upstream Go modules.")
    parser.add_argument("action", choices=["up", "down", "status", "build"])
    parser.add_argument("--name", default=node.NAME, help="cluster name (default %(default)s)")
    args = parser.parse_args(argv)
    provider = node.LocalProvider()
    if args.action == "build":
        for name, folder in gobuild.build_all(pins.PROGRAMS + pins.TOOLS).items():
            print(f"{name}: {folder} (built in {gobuild.built_seconds(folder)} s)")
        return 0
    if args.action == "down":
        provider.delete(args.name)
        return 0
    if args.action == "status":
        state = node.Node(node.Layout(args.name))
        running = {n: state.alive(n) for n in state.state["processes"]}
        for name, alive in running.items():
            print(f"{name}: {'running' if alive else 'STOPPED'} (pid {state.state['processes'][name]})")
        if not running:
            print(f"local cluster {args.name} is not running")
        return 0 if running and all(running.values()) else 1
    reason = provider.missing()
    if reason:
        print(f"cannot start the local cluster: {reason}", file=sys.stderr)
        return 2
    try:
        cluster, _ = provider.up(args.name)
    except (RuntimeError, gobuild.GoBuildError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"export KUBECONFIG={cluster.kubeconfig}\nstop it with: python -m jdagent.cluster.local down --name "
          f"{cluster.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
