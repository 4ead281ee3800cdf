"""What the guest is made of, pinned in one place: the Debian suite, the packages debootstrap installs,
the version of our own build recipe (bump it whenever image.py changes what lands on the disk), the
disk size, and how qemu runs it. The key of a base disk hashes all that changes its bytes
(`image.base_key`); the package versions actually installed are read back with dpkg-query and
recorded in the build's stamp (they float within the suite)."""

from __future__ import annotations

SUITE = "trixie"
RECIPE = 2  # bump when image.py changes the rootfs, the disk or the files copied out

# debootstrap --variant=minbase --include=...: Depends are resolved, Recommends are not.
PACKAGES = (
    "systemd", "systemd-sysv", "udev", "dbus",            # init on the unified hierarchy; D-Bus for the
                                                         # systemd cgroup driver and systemd-run
    "linux-image-amd64", "initramfs-tools", "zstd", "kmod",  # Debian's kernel, its initrd (MODULES=most)
    "docker.io", "docker-cli", "containerd", "runc",     # the engine under test, all from the suite
    "iptables", "iproute2", "procps",                     # docker's bridge; our static address; ps
    "openssh-server",                                     # the control channel (see channel.py)
)
# what the smoke tests expect from the suite (for the summary line, not an install pin)
EXPECTED = {"docker.io": "26.1.5"}

DISK_SIZE = "12G"          # sparse raw ext4: the rootfs (~1 GB) plus room for loaded images and builds
HOSTNAME = "jda-vm"
GUEST_ADDRESS = "10.0.2.15"  # qemu user networking's guest address (inside the qemu process only)

# Software emulation only: these machines are VMs whose KVM runs only kernels built for it. One host thread
# for both vCPUs: with multi-threaded TCG the guest kernel's live code patching (text_poke_bp: an int3 over
# the instruction, then the new bytes) raced a vCPU still running the old translation; a CI boot died at
# 3.4 s with "Oops: int3" in sched_clock_cpu right after "sched_clock: Marking stable" (a static key being
# switched), then "Kernel panic - not syncing". Single-threaded TCG runs the vCPUs in turn, so a patch is
# never half seen.
ACCEL = "tcg,thread=single"
CPU = "max"
CPUS = 2
MEMORY_MB = 3072
KERNEL_ARGS = (
    "root=/dev/vda", "rw", "rootfstype=ext4",
    "console=ttyS0,115200",                  # kernel and systemd status into console.log
    "systemd.unified_cgroup_hierarchy=1",    # cgroup v2 only (the point of the tier)
    "systemd.firstboot=off",                 # never prompt on the console
    "systemd.ssh_auto=no",                   # no sshd on AF_VSOCK (there is none): ours is on eth0
    "net.ifnames=0",                         # eth0, as jda-net.service expects
    "panic=1",                               # with -no-reboot: a panic ends qemu at once
    "mitigations=off",                       # emulated CPU: speculation mitigations only cost time
)
