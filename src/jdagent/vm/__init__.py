"""A real cgroup v2 node on cgroup v1 machines: a qemu guest (software emulation) booting a debootstrapped
Debian rootfs with systemd on the unified hierarchy and Docker; the base disk built once per pin, images
imported once into a prepared disk, each boot a throw-away overlay, driven over SSH on loopback.

May import `jdagent.cluster`, `jdagent.engine`, `jdagent.chart` and tooling; nothing imports it but tests
and its own `python -m jdagent.vm`."""
