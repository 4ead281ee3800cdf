"""The VM tier's pure parts: what changes the base disk's key, where packages come from, the qemu and
ssh command lines (loopback only, software emulation, pinned host key), and the parsers of what the
guest and its build report."""

from __future__ import annotations

from pathlib import Path

from jdagent.vm import host, image, pins, prepared
from jdagent.vm.channel import Ssh
from jdagent.vm.image import Base, base_key, initrd_lacks, parse_dpkg
from jdagent.vm.machine import failed_units, qemu_argv


def test_the_base_key_changes_with_suite_packages_recipe_and_disk_size_only():
    key = base_key()
    assert key == base_key(packages=tuple(reversed(pins.PACKAGES)))  # order does not change the disk
    assert key != base_key(suite="forky")
    assert key != base_key(packages=(*pins.PACKAGES, "strace"))
    assert key != base_key(recipe=pins.RECIPE + 1)
    assert key != base_key(disk_size="20G")


def test_the_prepared_key_follows_the_base_and_the_image_ids():
    ids = {"jda-standin-busybox:1": "sha256:aa", "jda-standin-dind:2": "sha256:bb"}
    key = prepared.prepared_key("base1", ids)
    assert key == prepared.prepared_key("base1", dict(reversed(list(ids.items()))))
    assert key != prepared.prepared_key("base2", ids)
    assert key != prepared.prepared_key("base1", {**ids, "jda-standin-dind:2": "sha256:cc"})


def test_the_pins_name_the_engine_the_kernel_and_the_channel():
    for package in ("docker.io", "docker-cli", "containerd", "runc", "systemd", "systemd-sysv",
                    "linux-image-amd64", "initramfs-tools", "openssh-server", "dbus"):
        assert package in pins.PACKAGES
    assert pins.SUITE == "trixie"
    assert "systemd.unified_cgroup_hierarchy=1" in pins.KERNEL_ARGS


MIRRORS = {
    "/etc/apt/sources.list.d/debian.sources": (
        "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\n"
        "URIs: http://deb.example.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://deb.example.org/debian-security\nSuites: bookworm-security\n"),
}


def test_the_mirror_is_the_one_the_hosts_apt_uses():
    assert host.mirror_from(MIRRORS) == "http://deb.example.org/debian"
    one_line = {"/etc/apt/sources.list": "# deb http://old/debian bookworm main\n"
                "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ bookworm main\n"
                "deb http://security.example/debian-security bookworm-security main\n"}
    assert host.mirror_from(one_line) == "http://mirror.example/debian"
    assert host.mirror_from({"/etc/apt/sources.list.d/x.list": "deb https://packages.example/apt x main\n"}) is None
    disabled = {"/etc/apt/sources.list.d/d.sources": "Types: deb\nEnabled: no\nURIs: http://off.example/debian\n"}
    assert host.mirror_from(disabled) is None


def test_missing_names_the_first_missing_part_and_needs_build_tools_only_before_a_build():
    def which_without(*absent: str):
        return lambda name: None if name in absent else f"/usr/bin/{name}"

    ok = {"euid": lambda: 0, "platform": "linux", "takes_d": lambda: True}
    assert host.missing(False, which_without(), **ok) is None
    assert "qemu-system-x86_64" in host.missing(True, which_without("qemu-system-x86_64"), **ok)
    assert "qemu-utils" in host.missing(True, which_without("qemu-img"), **ok)
    assert "debootstrap" in host.missing(False, which_without("debootstrap"), **ok)
    assert host.missing(True, which_without("debootstrap"), **ok) is None
    assert "root" in host.missing(False, which_without(), **{**ok, "euid": lambda: 1000})
    assert "-d" in host.missing(False, which_without(), **{**ok, "takes_d": lambda: False})
    assert "Linux" in host.missing(True, which_without(), **{**ok, "platform": "darwin"})
    assert "not readable" in host.missing(True, which_without(), **ok, key=Path("/nonexistent/id_ed25519"))


def test_qemu_runs_emulated_and_forwards_only_from_loopback_into_a_restricted_network(tmp_path: Path):
    base = Base("abc")
    argv = qemu_argv(base, tmp_path / "disk.qcow2", 40123, tmp_path / "console.log", name="t", cache="unsafe")
    joined = " ".join(argv)
    # one thread for both vCPUs: multi-threaded TCG raced the guest kernel's live code patching (pins.py)
    assert argv[argv.index("-accel") + 1] == "tcg,thread=single"
    assert argv[argv.index("-cpu") + 1] == "max" and argv[argv.index("-smp") + 1] == "2"
    assert argv[argv.index("-m") + 1] == "3072"
    netdev = argv[argv.index("-netdev") + 1]
    assert "restrict=on" in netdev.split(",")
    assert "hostfwd=tcp:127.0.0.1:40123-:22" in netdev.split(",")
    assert "-no-reboot" in argv and "panic=1" in argv[argv.index("-append") + 1]
    assert f"file={tmp_path / 'disk.qcow2'},if=virtio,format=qcow2,cache=unsafe" in argv
    assert f"-kernel {base.kernel} -initrd {base.initrd}" in joined
    assert f"-serial file:{tmp_path / 'console.log'}" in joined


def test_ssh_reads_no_user_config_and_pins_the_host_key(tmp_path: Path):
    ssh = Ssh(2222, tmp_path / "id", tmp_path / "kh", "jda-vm-abc", control=tmp_path / "c")
    argv = ssh.argv("true")
    assert argv[:3] == ["ssh", "-F", "/dev/null"] and argv[-3:] == ["root@127.0.0.1", "--", "true"]
    for option in ("BatchMode=yes", "StrictHostKeyChecking=yes", f"UserKnownHostsFile={tmp_path / 'kh'}",
                   "GlobalKnownHostsFile=/dev/null", "HostKeyAlias=jda-vm-abc", "IdentitiesOnly=yes",
                   f"ControlPath={tmp_path / 'c'}", "ControlMaster=no"):
        assert option in argv
    assert "ControlMaster=no" not in ssh.argv("true", multiplex=False)


def test_guest_commands_are_bounded_in_the_guest_too():
    assert Ssh.bounded("echo 'a b'", 30) == "timeout -k 5 30 sh -c 'echo '\"'\"'a b'\"'\"''"
    assert Ssh.bounded(["cat", "/x y"], 0.2) == "timeout -k 5 1 sh -c 'cat '\"'\"'/x y'\"'\"''"


def test_the_initrd_check_finds_compressed_and_builtin_drivers():
    listing = ("usr/lib/modules/6.12.1-amd64/kernel/drivers/block/virtio_blk.ko.xz\n"
               "usr/lib/modules/6.12.1-amd64/kernel/fs/ext4/ext4.ko.xz\n")
    builtin = "kernel/drivers/virtio/virtio_pci.ko\n"
    assert initrd_lacks(listing, builtin) == []
    assert initrd_lacks(listing, "") == ["virtio_pci"]
    assert initrd_lacks("", "") == list(image.INITRD_NEEDS)


def test_parsers_of_dpkg_and_systemctl():
    assert parse_dpkg("docker.io\t26.1.5+dfsg1-9+b9\nrunc\t1.1.15+ds1-2\n") == {
        "docker.io": "26.1.5+dfsg1-9+b9", "runc": "1.1.15+ds1-2"}
    assert failed_units("e2scrub_reap.service loaded failed failed Remove Stale\nx.mount loaded failed failed X\n") \
        == ["e2scrub_reap.service", "x.mount"]
    assert failed_units("") == []
