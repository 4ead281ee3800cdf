"""What this machine must have for the VM tier, and where its Debian packages come from.

`missing()` names the first missing part precisely (so tests skip, or fail under JDA_REQUIRE_VM=1,
with that reason): booting needs qemu and an SSH client; building the base disk, only while no
complete build of the current pin exists, also needs root, debootstrap, chroot and an mkfs.ext4 that
takes `-d`. `mirror()` is the Debian mirror the host's own apt sources use."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

DEFAULT_MIRROR = "http://deb.debian.org/debian"
APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))

BOOT_NEEDS = (("qemu-system-x86_64", "qemu-system-x86"), ("qemu-img", "qemu-utils"),
              ("ssh", "openssh-client"), ("ssh-keygen", "openssh-client"))
BUILD_NEEDS = (("debootstrap", "debootstrap"), ("chroot", "coreutils"), ("mkfs.ext4", "e2fsprogs"))


def mkfs_takes_d(mkfs: str = "mkfs.ext4") -> bool:
    """e2fsprogs 1.43+ fills a new file system from a folder (`-d root-directory`); its usage says so."""
    try:
        proc = subprocess.run([mkfs], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "-d " in (proc.stderr + proc.stdout)


def missing(built: bool, which: Callable[[str], str | None] = shutil.which,
            euid: Callable[[], int] = os.geteuid, platform: str = sys.platform,
            takes_d: Callable[[], bool] = mkfs_takes_d, key: Path | None = None) -> str | None:
    """None when the VM tier can run here; else what is missing. `built`: the base disk of the current
    pin is already complete (then the build tools and root are not needed, only its SSH `key`)."""
    if platform != "linux":
        return f"the VM tier needs Linux (this is {platform})"
    for binary, package in BOOT_NEEDS:
        if which(binary) is None:
            return f"`{binary}` is missing (apt-get install {package})"
    if built:
        if key is not None and not os.access(key, os.R_OK):
            return f"the VM's SSH key {key} is not readable by this user (the base disk was built by root)"
        return None
    if euid() != 0:
        return "building the VM's base disk needs root (debootstrap, chroot)"
    for binary, package in BUILD_NEEDS:
        if which(binary) is None:
            return f"`{binary}` is missing (apt-get install {package}): the VM's base disk is built with it"
    if not takes_d():
        return "mkfs.ext4 cannot fill a file system from a folder (`-d`, e2fsprogs 1.43 or newer)"
    return None


def _one_line_uris(text: str) -> list[str]:
    uris = []
    for line in text.splitlines():
        words = re.sub(r"\[[^\]]*\]", "", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb":
            uris.append(words[1])
    return uris


def _deb822_uris(text: str) -> list[str]:
    uris = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes").lower() != "no":
            uris += fields.get("uris", "").split()
    return uris


def mirror_from(sources: dict[str, str]) -> str | None:
    """The first Debian archive (a URI ending in /debian, not the security archive) in the given apt
    source files' text (file name -> text; .sources files are deb822, others one-line)."""
    for name, text in sources.items():
        uris = _deb822_uris(text) if name.endswith(".sources") else _one_line_uris(text)
        for uri in uris:
            if uri.rstrip("/").endswith("/debian"):
                return uri.rstrip("/")
    return None


def read_sources() -> dict[str, str]:
    files: list[Path] = []
    for place in APT_SOURCES:
        if place.is_file():
            files.append(place)
        elif place.is_dir():
            files += sorted(p for p in place.iterdir() if p.suffix in (".list", ".sources"))
    return {str(p): p.read_text(errors="replace") for p in files}


def mirror() -> str:
    """JDA_VM_MIRROR, else the mirror the host's apt uses, else Debian's default."""
    return os.environ.get("JDA_VM_MIRROR") or mirror_from(read_sources()) or DEFAULT_MIRROR
