"""A TCP relay from the host's loopback into the cluster's network namespace, so that helm, kubectl
and the tests reach the API server at https://127.0.0.1:<port> while the host's network stays as it
was. Each connection is opened by a thread that has entered the namespace (setns is per thread).

    python -m jdagent.cluster.local.relay --netns /run/netns/jda-local --listen 127.0.0.1:6443 \\
        --target 10.213.0.1:6443
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import socket
import sys
import threading

CLONE_NEWNET = 0x40000000


def _enter(netns: str) -> None:
    fd = os.open(netns, os.O_RDONLY)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({netns})")
    finally:
        os.close(fd)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def _serve(client: socket.socket, netns: str, target: tuple[str, int]) -> None:
    try:
        _enter(netns)
        upstream = socket.create_connection(target, timeout=10)
        upstream.settimeout(None)
    except OSError as exc:
        print(f"[relay] cannot reach {target[0]}:{target[1]} in {netns}: {exc}", file=sys.stderr, flush=True)
        client.close()
        return
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--netns", required=True)
    parser.add_argument("--listen", required=True, type=_address)
    parser.add_argument("--target", required=True, type=_address)
    args = parser.parse_args(argv)
    if args.listen[0] not in ("127.0.0.1", "::1", "localhost"):
        parser.error("--listen must be a loopback address")
    server = socket.create_server(args.listen, reuse_port=False)
    print(f"[relay] {args.listen[0]}:{args.listen[1]} -> {args.target[0]}:{args.target[1]} in {args.netns}",
          file=sys.stderr, flush=True)
    while True:
        client, _ = server.accept()
        threading.Thread(target=_serve, args=(client, args.netns, args.target), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
