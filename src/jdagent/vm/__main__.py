"""python -m jdagent.vm build|boot|prepare|status|clean

- build [--force]: the base disk of the current pin (once per pin, into .tools/vm/<key>/);
- boot [IMAGE...]: boot a throw-away overlay (on a prepared disk holding IMAGEs, when named), print
  what the guest says about its cgroups and Docker, power it off;
- prepare IMAGE...: import host images into a prepared disk (kept, keyed by their IDs);
- status: what is built, and what this machine lacks;
- clean: remove base disks of other pins (with their prepared disks) and their locks.
"""

from __future__ import annotations

import argparse
import sys

from jdagent.vm import image, prepared
from jdagent.vm.machine import Machine
from jdagent.vm.progress import VmError, say

PROBES = (
    ("cgroup fs", "stat -f -c %T /sys/fs/cgroup"),
    ("PID 1", "cat /proc/1/comm"),
    ("kernel", "uname -r"),
    ("docker", "docker info --format 'server {{.ServerVersion}}, cgroup v{{.CgroupVersion}}, "
               "driver {{.CgroupDriver}}, storage {{.Driver}}'"),
    ("containerd", "containerd --version"),
    ("runc", "runc --version | head -1"),
)


def _boot(images: list[str]) -> int:
    base = image.ensure()
    backing = prepared.ensure(base, images)[0] if images else None
    with Machine(base, "boot", backing=backing) as machine:
        for label, command in PROBES:
            result = machine.run(command, 60)
            print(f"{label}: {result.stdout.strip() or result.stderr.strip()}")
        if images:
            print(machine.run("docker images --format '{{.Repository}}:{{.Tag}} {{.ID}}'", 60).stdout.strip())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jdagent.vm",
                                     description="A qemu guest with a real cgroup v2 kernel, systemd and Docker.")
    parser.add_argument("action", choices=["build", "boot", "prepare", "status", "clean"])
    parser.add_argument("images", nargs="*", metavar="IMAGE", help="host Docker images (boot, prepare)")
    parser.add_argument("--force", action="store_true", help="build: rebuild even when the pin's build exists")
    args = parser.parse_args(argv)
    base = image.current()
    reason = image.missing(base, force=args.force)
    if args.action == "status":
        print(image.describe(base) if base.complete() else f"base disk {base.key}: not built")
        for stamp in sorted(base.folder.glob("prepared-*.json")):
            print(f"prepared: {stamp.with_suffix('.qcow2').name}")
        print(f"missing: {reason}" if reason else "this machine can build and boot the VM")
        return 0
    if args.action == "clean":
        for path in sorted(image.VM_DIR.iterdir()) if image.VM_DIR.is_dir() else []:
            if path.is_dir() and path.name not in (base.key, image.DEBS_DIR.name):
                say(f"removing {path}")
                image.wipe(path)
            elif path.name.endswith(".lock") and not path.name.startswith(f".{base.key}"):
                path.unlink()
        return 0
    if reason:
        print(f"cannot {args.action}: {reason}", file=sys.stderr)
        return 2
    try:
        if args.action == "build":
            built = image.ensure(force=args.force)
            print(image.describe(built))
            return 0
        if args.action == "prepare":
            if not args.images:
                parser.error("prepare needs at least one IMAGE")
            print(prepared.ensure(image.ensure(), args.images)[0])
            return 0
        return _boot(args.images)
    except VmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
