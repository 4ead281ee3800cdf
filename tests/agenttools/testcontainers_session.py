"""A Testcontainers session as a pipeline's integration test runs it, copied into the jnlp container and run
with the venv of the jnlp tools image (python testcontainers_session.py SERVICE_IMAGE).

Only what a user sets is set: DOCKER_HOST comes from the chart, RYUK_CONTAINER_IMAGE from the caller
(the reaper stays on). It starts a busybox httpd from a local image, waits for it with an HTTP wait
strategy, asks it through the mapped port, prints one `JDA {...}` line of facts (the connection the
library chose, the answer, the reaper it started and what the Docker API says about it), then stays until
it is killed, as a build a user aborts: cleaning up is then up to the reaper alone.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request

from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer, Reaper
from testcontainers.core.labels import LABEL_SESSION_ID, SESSION_ID
from testcontainers.core.wait_strategies import HttpWaitStrategy

PAGE = "hello from a Testcontainers service"


def main(image: str) -> None:
    started = time.monotonic()
    service = (
        DockerContainer(image)
        .with_command(["sh", "-c", f"mkdir -p /www && echo '{PAGE}' > /www/index.html "
                                   "&& exec busybox httpd -f -v -p 8080 -h /www"])
        .with_exposed_ports(8080)
        .waiting_for(HttpWaitStrategy(8080).for_status_code(200))
    )
    service.start()
    ready = time.monotonic() - started
    host = service.get_container_host_ip()
    port = service.get_exposed_port(8080)
    # the proxy variables of a CI machine must not reroute a call to the service
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://{host}:{port}/", timeout=10) as response:
        answer = response.read().decode().strip()
    client = service.get_docker_client()
    reaper = Reaper._container.get_wrapped_container() if Reaper._container else None
    if reaper is not None:
        reaper.reload()
    facts = {
        "session": SESSION_ID, "label": LABEL_SESSION_ID, "ready_s": round(ready, 1),
        "mode": client.get_connection_mode().value, "host": host, "port": int(port), "answer": answer,
        "service": service.get_wrapped_container().name,
        "ryuk_image": testcontainers_config.ryuk_image, "ryuk_disabled": testcontainers_config.ryuk_disabled,
        "ryuk_socket": testcontainers_config.ryuk_docker_socket,
        "ryuk": reaper.name if reaper else None, "ryuk_status": reaper.status if reaper else None,
        "docker_host": os.environ.get("DOCKER_HOST"), "server": client.client.version().get("Version"),
        "pid": os.getpid(),
    }
    print("JDA " + json.dumps(facts), flush=True)
    time.sleep(600)  # a test still running: the harness kills this process


if __name__ == "__main__":
    main(sys.argv[1])
