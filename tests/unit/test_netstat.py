"""The /proc/net parser behind the Docker tier's "loopback only" check, on recorded kernel lines."""

from __future__ import annotations

from jdagent.engine import netstat

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
TCP = HEADER + (
    "   0: 0100007F:0947 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n"
    "   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1\n"
    "   2: 0100007F:0947 0100007F:A1B2 01 00000000:00000000 00:00000000 00000000     0        0 3 1\n")
TCP6 = HEADER + (
    "   0: 00000000000000000000000001000000:0947 00000000000000000000000000000000:0000 0A 0 0 0 0 0 0 1\n"
    "   1: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 0 0 0 0 0 0 1\n")


def test_ipv4_listeners_and_not_connections():
    assert netstat.listeners("tcp", TCP) == {"127.0.0.1:2375", "0.0.0.0:8080"}


def test_ipv6_listeners():
    assert netstat.listeners("tcp6", TCP6) == {"::1:2375", ":::80"}


def test_wildcards_of_both_families_are_beyond_loopback():
    sockets = netstat.listeners("tcp", TCP) | netstat.listeners("tcp6", TCP6)
    assert netstat.beyond_loopback(sockets) == ["0.0.0.0:8080", ":::80"]
    assert netstat.beyond_loopback({"127.0.0.1:2375", "::1:2375"}) == []
