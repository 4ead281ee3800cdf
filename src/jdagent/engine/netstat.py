"""Listening TCP sockets from /proc/net/tcp and /proc/net/tcp6 (what `ss -ltn` shows), for checks
that a pod listens on loopback only."""

from __future__ import annotations

import ipaddress

LISTEN = "0A"


def listeners(table: str, text: str) -> set[str]:
    """"address:port" of the LISTEN sockets in a /proc/net/tcp (table "tcp") or tcp6 ("tcp6") dump.
    The kernel prints the address as 32-bit words in host order (little-endian here)."""
    found = set()
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or fields[3] != LISTEN:
            continue
        addr, port = fields[1].split(":")
        raw = bytes.fromhex(addr)
        words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
        host = ipaddress.IPv4Address(words) if table == "tcp" else ipaddress.IPv6Address(words)
        found.add(f"{host}:{int(port, 16)}")
    return found


def beyond_loopback(sockets: set[str]) -> list[str]:
    return sorted(s for s in sockets if not ipaddress.ip_address(s.rsplit(":", 1)[0]).is_loopback)
