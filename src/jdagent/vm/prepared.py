"""Prepared disks: images imported once into a qcow2 overlay of the base disk that is kept, keyed by
the base key and the image IDs, in `.tools/vm/<base key>/prepared-<key>.qcow2`. Each test boot is then
a throw-away overlay on top of it (no `docker load` under emulation per boot). The images travel as a
`docker save` archive the guest reads as a second disk (/dev/vdb), removed afterwards: measured here,
`docker load` of the 730 MB stand-ins took 113 s that way and 255 s streamed over SSH, whose
encryption competes with dockerd for the two emulated CPUs. The overlay names its
backing file relatively, so the folder can move. A disk is kept only after a clean power-off (its
stamp is written last); the newest few are kept, older ones removed."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path

from jdagent.vm.image import VM_DIR, Base, disk_usage, locked, qemu_img_create
from jdagent.vm.machine import Machine, host_image_ids
from jdagent.vm.progress import VmError, run_step, say

KEEP = 3


def prepared_key(base_key: str, ids: dict[str, str]) -> str:
    data = {"base": base_key, "images": dict(sorted(ids.items()))}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def disk_of(base: Base, key: str) -> Path:
    return base.folder / f"prepared-{key}.qcow2"


def save(names: list[str], archive: Path, log: Path) -> None:
    """`docker save` into a file the guest reads as a disk, padded to whole 512-byte sectors."""
    seconds = run_step(["docker", "save", "-o", str(archive), *names], "docker save", 900, log, nice=False)
    size = archive.stat().st_size
    with archive.open("ab") as handle:
        handle.truncate(-(-size // 512) * 512)
    say(f"docker save: {size / 1e6:.0f} MB in {seconds:.0f} s")


def ensure(base: Base, names: Sequence[str]) -> tuple[Path, float | None]:
    """The prepared disk holding `names` (images on the host's engine); the seconds the import took
    when it was made now, None when reused."""
    ids = host_image_ids(sorted(set(names)))
    key = prepared_key(base.key, ids)
    disk, stamp = disk_of(base, key), base.folder / f"prepared-{key}.json"
    with locked(f"{base.key}-prepared-{key}"):
        if disk.is_file() and stamp.is_file():
            say(f"reusing the prepared disk {disk.name} ({', '.join(ids)})")
            return disk, None
        partial = base.folder / f"prepared-{key}.partial.qcow2"
        archive = base.folder / f"prepared-{key}.images.tar"
        qemu_img_create(partial, Path(base.disk.name), "raw")
        machine = Machine(base, f"prepare-{key}", writable=partial, extra=[archive])
        try:
            save(list(ids), archive, base.folder / "prepare.log")
            with machine:
                machine.load_archive("/dev/vdb", ids)
                machine.run("sync", 300, check=True)
            if not machine.clean_shutdown:
                raise VmError(f"the guest preparing {disk.name} did not power off cleanly: not keeping it")
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        finally:
            archive.unlink(missing_ok=True)
        partial.replace(disk)
        seconds = machine.timings.get("import", 0.0)
        stamp.write_text(json.dumps({"base": base.key, "images": ids, "import_seconds": round(seconds, 1),
                                     "bytes": disk_usage(disk),
                                     "made": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=2) + "\n")
    prune(base)
    say(f"prepared disk {disk.name}: {disk_usage(disk) / 1e6:.0f} MB")
    return disk, seconds


def prune(base: Base, keep: int = KEEP) -> list[Path]:
    """Remove all but the `keep` newest prepared disks of `base`."""
    stamps = sorted(base.folder.glob("prepared-*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    removed = []
    for stamp in stamps[keep:]:
        lock = VM_DIR / f".{base.key}-{stamp.stem}.lock"
        for path in (stamp, stamp.with_suffix(".qcow2"), lock):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
