"""Does a Testcontainers session register with its reaper? Copied into the jnlp container and run once per
session (python testcontainers_probe.py SERVICE_IMAGE), with the connection mode the caller sets.

testcontainers-python connects to the reaper's mapped port as soon as the reaper's container runs, sends its
session's label filter and never reads the answer. Ryuk answers every filter it stores with "ACK". This
probe reads that answer from the library's own socket (the library never reads it, so this changes nothing
it does) and prints `JDA-PROBE <mode> ack` or `JDA-PROBE <mode> lost (<what the socket said>)`.
"""

from __future__ import annotations

import sys

from testcontainers.core.container import DockerContainer, Reaper


def main(image: str) -> None:
    service = DockerContainer(image).with_command(["sleep", "60"])
    service.start()
    mode = service.get_docker_client().get_connection_mode().value
    answer = b""
    if Reaper._socket is not None:
        Reaper._socket.settimeout(10)
        try:
            answer = Reaper._socket.recv(16)
        except OSError as exc:  # a reset connection, or no answer in time
            answer = repr(exc).encode()
    verdict = "ack" if answer == b"ACK\n" else f"lost ({answer!r})"
    print(f"JDA-PROBE {mode} {verdict}", flush=True)
    service.stop()


if __name__ == "__main__":
    main(sys.argv[1])
