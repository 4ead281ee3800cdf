"""Docker tools as users run them from the jnlp container of an agent pod, shared by the Docker tier
(tests/docker/test_tools_in_agent.py, the pod on a Docker engine) and the cluster tier
(tests/cluster/test_tools_in_agent.py, the pod as the Kubernetes plugin creates it on the real node).

Each tier hands in two callables on its jnlp container: `sh(script, timeout)` runs a shell script and
returns (exit code, stdout and stderr), `put(path, data)` writes a file. The flows below only drive the
tools and read back what the tools and the pod's own dockerd say; the tests assert on it.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jdagent.engine.buildcache import FROM_BUILD, LAST, SLOW_FINAL, SLOW_STAGE, STEPS, CacheBuild
from jdagent.engine.toolimages import VENV_PYTHON

Sh = Callable[[str, float], tuple[int, str]]
Put = Callable[[str, bytes], None]

SESSION_SCRIPT = Path(__file__).with_name("testcontainers_session.py")
PROBE_SCRIPT = Path(__file__).with_name("testcontainers_probe.py")
# What the chart README's Jenkinsfile sets for testcontainers-python besides the reaper's image: reach mapped
# ports through the gateway of dind's bridge (dockerd's NAT rule) rather than localhost (dockerd's userland
# proxy, which accepts a connection before the reaper listens and then drops it: the session's registration
# with the reaper is lost). reaper_registrations() below measures both.
CONNECTION_MODE = "gateway_ip"
PAGE = "hello from a Testcontainers service"  # what the session's service serves (testcontainers_session.py)
COMPOSE_PAGE = "hello from the web service"
COMPOSE_PROJECT = "jda-compose"
COMPOSE_NETWORK = f"{COMPOSE_PROJECT}-backend"


def run(sh: Sh, script: str, timeout: float = 120) -> str:
    """Output of `script`, which must succeed."""
    code, out = sh(script, timeout)
    assert code == 0, f"`{script}` exited {code}:\n{out[-3000:]}"
    return out


def docker_json_lines(sh: Sh, args: str) -> list[dict[str, Any]]:
    """`docker <args> --format '{{json .}}'`, one object per line (the pod's own dockerd answering)."""
    out = run(sh, f"docker {args} --format '{{{{json .}}}}'")
    return [json.loads(line) for line in out.splitlines() if line.strip().startswith("{")]


def wait_until(what: str, check: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


# --- Testcontainers ---------------------------------------------------------------------------------

def user_environment(ryuk_image: str, connection_mode: str | None) -> str:
    """The variables a user sets (shell words): the reaper's image and, unless None, the connection mode."""
    words = [f"RYUK_CONTAINER_IMAGE={shlex.quote(ryuk_image)}"]
    if connection_mode:
        words.append(f"TESTCONTAINERS_CONNECTION_MODE={connection_mode}")
    return " ".join(words)


def reaper_registrations(sh: Sh, put: Put, service_image: str, ryuk_image: str, connection_mode: str | None,
                         runs: int, workdir: str = "/tmp/jda-testcontainers") -> list[str]:
    """Run `runs` short sessions one after another (testcontainers_probe.py): each says `<mode> ack` when the
    reaper acknowledged its label filter, `<mode> lost (...)` when the registration never reached it."""
    run(sh, f"mkdir -p {workdir}")
    put(f"{workdir}/probe.py", PROBE_SCRIPT.read_bytes())
    env = user_environment(ryuk_image, connection_mode)
    out = run(sh, f"cd {workdir} && for i in $(seq {runs}); do out=$({env} {VENV_PYTHON} probe.py "
                  f"{shlex.quote(service_image)} 2>&1); echo \"$out\" | grep '^JDA-PROBE ' "
                  "|| echo \"JDA-PROBE ? the session failed: $(echo \"$out\" | tail -1)\"; done",
              timeout=60 * runs)
    return [line.removeprefix("JDA-PROBE ") for line in out.splitlines() if line.startswith("JDA-PROBE ")]

@dataclass
class TcRun:
    facts: dict[str, Any]               # what the session printed (testcontainers_session.py)
    during: list[dict[str, Any]]        # `docker ps -a` while the session ran
    after: list[dict[str, Any]]         # `docker ps -a` once the reaper was done
    reaped_s: float                     # from killing the session until its containers were gone
    ryuk_log: str                       # Ryuk's own log, followed until its container went away
    session_output: str


def run_testcontainers_session(sh: Sh, put: Put, service_image: str, ryuk_image: str,
                               connection_mode: str | None = CONNECTION_MODE,
                               workdir: str = "/tmp/jda-testcontainers") -> TcRun:
    """Run the session in the background in jnlp, list the pod dockerd's containers while it runs, follow
    Ryuk's log, kill the session with SIGKILL (an aborted build: no atexit, no `with` block ends), and wait
    until its containers are gone."""
    run(sh, f"mkdir -p {workdir}")
    put(f"{workdir}/session.py", SESSION_SCRIPT.read_bytes())
    env = user_environment(ryuk_image, connection_mode)
    pid = int(run(sh, f"cd {workdir} && {env} setsid nohup {VENV_PYTHON} session.py {shlex.quote(service_image)} "
                      "> out 2>&1 < /dev/null & echo $!").strip())

    def reported() -> dict[str, Any] | None:
        _, out = sh(f"cat {workdir}/out", 30)
        line = next((ln for ln in out.splitlines() if ln.startswith("JDA ")), None)
        if line:
            return dict(json.loads(line[4:]))
        if sh(f"kill -0 {pid}", 30)[0] != 0:
            raise AssertionError(f"the Testcontainers session ended before reporting:\n{out[-4000:]}")
        return None

    facts = wait_until("the Testcontainers session to report", reported, timeout=240, every=2)
    during = docker_json_lines(sh, "ps -a --no-trunc")
    ryuk = facts["ryuk"]
    if ryuk:
        run(sh, f"setsid nohup docker logs -f {ryuk} > {workdir}/ryuk.log 2>&1 < /dev/null &")
    time.sleep(1)  # the follower has attached
    run(sh, f"kill -9 {pid}")
    killed = time.monotonic()
    label = f"{facts['label']}={facts['session']}"

    def reaped() -> list[dict[str, Any]] | None:
        listed = docker_json_lines(sh, "ps -a --no-trunc")
        left = [c for c in listed if label in c.get("Labels", "") or c.get("Names") == ryuk]
        return None if left else (listed or [{}])

    after = [c for c in wait_until("the reaper to remove the session's containers", reaped, timeout=120) if c]
    reaped_s = time.monotonic() - killed
    ryuk_log = wait_until("Ryuk's log to end", lambda: (out := sh(f"cat {workdir}/ryuk.log", 30)[1])
                          and "msg=done" in out and out, timeout=60) if ryuk else ""
    return TcRun(facts, during, after, reaped_s, ryuk_log, sh(f"cat {workdir}/out", 30)[1])


def check_testcontainers(result: TcRun, ryuk_image: str) -> list[str]:
    """What the run shows, as lines for the test's report; asserts every promise on the way."""
    facts = result.facts
    assert facts["answer"] == PAGE, facts
    assert facts["ryuk_image"] == ryuk_image and facts["ryuk_disabled"] is False, facts
    assert facts["ryuk"] and facts["ryuk_status"] == "running", facts
    label = f"{facts['label']}={facts['session']}"
    service = next(c for c in result.during if c["Names"] == facts["service"])
    assert service["State"] == "running" and label in service["Labels"], service
    reaper = next(c for c in result.during if c["Names"] == facts["ryuk"])
    assert reaper["State"] == "running" and reaper["Image"] == ryuk_image, reaper
    assert label not in reaper["Labels"], "the reaper must not carry the session label it reaps"
    assert result.after == [], f"containers left in the pod's dockerd: {result.after}"
    log = result.ryuk_log
    for pattern in (r"msg=Started", r'msg="client connected"',
                    rf'msg="adding filter" type=label values="?\[[^\]]*{re.escape(label)}',
                    r'msg="client disconnected"', r"msg=removed containers=1 ", r"msg=done"):
        assert re.search(pattern, log), f"Ryuk's log lacks {pattern!r}:\n{log}"
    return [f"service {facts['service']} ready in {facts['ready_s']} s, answered {facts['answer']!r} through "
            f"{facts['host']}:{facts['port']} (connection mode {facts['mode']}, DOCKER_HOST {facts['docker_host']}, "
            f"dockerd {facts['server']})",
            f"reaper {facts['ryuk']} ({ryuk_image}, socket {facts['ryuk_socket']}) removed the session's "
            f"container {result.reaped_s:.1f} s after the session was killed; the pod's dockerd lists none",
            f"Ryuk: the session connected {_gap_ms(log, 'msg=Started', 'client connected')} ms after Ryuk listened; "
            + next(ln for ln in log.splitlines() if "msg=removed" in ln)]


def _gap_ms(log: str, first: str, second: str) -> int:
    """Milliseconds between the log lines holding `first` and `second` (slog's time=... stamps)."""
    from datetime import datetime

    stamps = [datetime.fromisoformat(next(ln for ln in log.splitlines() if key in ln).split()[0][5:])
              for key in (first, second)]
    return round((stamps[1] - stamps[0]).total_seconds() * 1000)


def check_registrations(recommended: list[str], other: list[str], other_mode: str) -> str:
    """Every session in the recommended mode registered with its reaper; the other mode's tally is measured
    and reported, not asserted (it is a race: a lost registration shows as an empty or reset answer, or as a
    session that failed to start when the library's own send hit the closed connection)."""
    assert recommended and all(r == f"{CONNECTION_MODE} ack" for r in recommended), recommended
    assert other and all(r.startswith((f"{other_mode} ", "? ")) for r in other), other
    lost = [r.removeprefix(f"{other_mode} ") for r in other if r != f"{other_mode} ack"]
    return (f"reaper registrations: {CONNECTION_MODE} {len(recommended)}/{len(recommended)}; {other_mode} "
            f"{len(other) - len(lost)}/{len(other)}" + (f", lost: {'; '.join(sorted(set(lost)))}" if lost else ""))


# --- Compose -----------------------------------------------------------------------------------------

def compose_file(image: str) -> str:
    """Two services on a named network: `client` fetches `web` by its service name once web is healthy,
    and is healthy itself when it holds web's page; web keeps a named volume."""
    return f"""name: {COMPOSE_PROJECT}
services:
  web:
    image: {image}
    command:
      - sh
      - -c
      - >-
        mkdir -p /www && echo '{COMPOSE_PAGE}' > /www/index.html && cp /www/index.html /data/page
        && exec busybox httpd -f -v -p 8080 -h /www
    healthcheck:
      test: [CMD, busybox, wget, -q, -O, /dev/null, "http://127.0.0.1:8080/"]
      interval: 1s
      timeout: 5s
      retries: 60
    stop_grace_period: 1s
    volumes: [pages:/data]
    networks: [backend]
  client:
    image: {image}
    command: [sh, -c, "until busybox wget -q -O /tmp/answer http://web:8080/; do sleep 1; done; exec sleep 3600"]
    depends_on:
      web: {{condition: service_healthy}}
    healthcheck:
      test: [CMD, busybox, grep, -q, "{COMPOSE_PAGE}", /tmp/answer]
      interval: 1s
      timeout: 5s
      retries: 60
    stop_grace_period: 1s
    networks: [backend]
networks:
  backend:
    name: {COMPOSE_NETWORK}
volumes:
  pages: {{}}
"""


@dataclass
class ComposeRun:
    up: str
    up_s: float
    ps: list[dict[str, Any]]
    answer: str
    network_members: list[str]
    volumes_during: list[str]
    down: str
    containers_after: list[dict[str, Any]]
    networks_after: list[dict[str, Any]]
    volumes_after: list[dict[str, Any]]


def compose_up_and_down(sh: Sh, put: Put, image: str, workdir: str = "/home/jenkins/agent/compose") -> ComposeRun:
    """`docker compose up --wait`, what compose and dockerd then say, `docker compose down -v`, what is left."""
    run(sh, f"mkdir -p {workdir}")
    put(f"{workdir}/compose.yaml", compose_file(image).encode())
    cd = f"cd {workdir} && "
    started = time.monotonic()
    code, up = sh(f"{cd}docker compose up --wait --wait-timeout 180 2>&1", 300)
    up_s = time.monotonic() - started
    assert code == 0, f"docker compose up --wait exited {code}:\n{up[-3000:]}"
    ps_out = run(sh, f"{cd}docker compose ps --all --format json")
    ps_out = ps_out.strip()
    ps = json.loads(ps_out) if ps_out.startswith("[") else [json.loads(ln) for ln in ps_out.splitlines() if ln.strip()]
    answer = run(sh, f"{cd}docker compose exec -T client cat /tmp/answer").strip()
    members = run(sh, f"docker network inspect {COMPOSE_NETWORK} --format "
                      "'{{range .Containers}}{{.Name}} {{end}}'").split()
    volumes = run(sh, f"docker volume ls -q --filter label=com.docker.compose.project={COMPOSE_PROJECT}").split()
    down = run(sh, f"{cd}docker compose down -v 2>&1", 180)
    return ComposeRun(
        up, up_s, ps, answer, sorted(members), volumes, down,
        docker_json_lines(sh, "ps -a --no-trunc"),
        [n for n in docker_json_lines(sh, "network ls") if n["Name"] not in ("bridge", "host", "none")],
        docker_json_lines(sh, "volume ls"))


def check_compose(result: ComposeRun) -> list[str]:
    """What the run shows, as lines for the test's report; asserts every promise on the way."""
    by_service = {c["Service"]: c for c in result.ps}
    assert set(by_service) == {"web", "client"}, result.ps
    for state in by_service.values():
        assert state["State"] == "running" and state["Health"] == "healthy", state
    assert result.answer == COMPOSE_PAGE, "client reached web by its service name on the named network"
    assert result.network_members == sorted(c["Name"] for c in result.ps), result.network_members
    assert result.volumes_during == [f"{COMPOSE_PROJECT}_pages"], result.volumes_during
    assert result.containers_after == [], result.containers_after
    assert result.networks_after == [], result.networks_after
    assert result.volumes_after == [], result.volumes_after
    return [f"compose up --wait: web and client healthy in {result.up_s:.1f} s; client read {result.answer!r} from "
            f"http://web:8080/ on {COMPOSE_NETWORK} ({', '.join(result.network_members)})",
            "compose down -v: no container, network or volume left in the pod's dockerd"]



# --- BuildKit with a registry cache (the flow: jdagent.engine.buildcache) --------------------------------

def check_cache_builds(runs: dict[str, CacheBuild]) -> str:
    """Three builds in three fresh pods sharing one mode=max registry cache: `cold` runs every step, `unchanged`
    none (each printed CACHED), `changed last file` the two steps from the app's file on, while the build
    stage's step comes from the cache; returns the report line."""
    cold, unchanged, changed = runs["cold"], runs["unchanged"], runs["changed last file"]
    assert all(cold.ran.values()), cold.output[-3000:]
    assert not any(unchanged.ran.values()) and all(unchanged.marked_cached.values()), unchanged.output[-3000:]
    # the build stage's layer is in the cache only because mode=max exports it (it is not in the image)
    assert changed.ran == {SLOW_STAGE: False, SLOW_FINAL: False, LAST: True, FROM_BUILD: True}, changed.output[-3000:]
    return "; ".join(f"{label}: {r.seconds:.1f} s, ran {sum(r.ran.values())} of {len(STEPS)} steps"
                     for label, r in runs.items())
