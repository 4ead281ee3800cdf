"""files/casc-reload.sh against a small HTTP endpoint on loopback standing in for Jenkins' reload URL,
with the JCasC directory laid out like a ConfigMap volume (..data symlink swapped on update): a changed
file produces one authenticated POST, an unchanged directory none; Jenkins not answering is retried,
a refusal is not."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import yaml

from jdagent.paths import CHART_DIR

SCRIPT = CHART_DIR / "files" / "casc-reload.sh"
RELOAD = yaml.safe_load((Path(__file__).parent / "data" / "upstream" / "jenkins-runtime.yaml").read_text())[
    "configuration-as-code"]["reload"]
TOKEN = "t0k+en/with=odd&chars"
INTERVAL = 0.2

pytestmark = pytest.mark.skipif(not (shutil.which("curl") and shutil.which("sha256sum")),
                                reason="this machine has no curl or sha256sum (the jenkins image has both)")


@dataclass
class Endpoint:
    status: int = 200
    delay: float = 0.0
    arrived: threading.Event = field(default_factory=threading.Event)
    requests: list[tuple[str, str, str, str]] = field(default_factory=list)  # method, path, type, body
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}{RELOAD['crumb_excluded_path_info']}"


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    state = Endpoint()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            state.requests.append(("POST", self.path, self.headers.get("Content-Type", ""), body))
            state.arrived.set()
            time.sleep(state.delay)
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    state.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=state.server.serve_forever, daemon=True)
    thread.start()
    yield state
    state.server.shutdown()


def publish(casc: Path, files: dict[str, str]) -> None:
    """Write files the way kubelet updates a ConfigMap volume: a new hidden timestamp directory, then an
    atomic swap of the ..data symlink that the visible names point through."""
    stamp = casc / f"..{time.monotonic_ns()}"
    stamp.mkdir()
    for name, text in files.items():
        (stamp / name).write_text(text)
        link = casc / name
        if not link.is_symlink():
            link.symlink_to(Path("..data") / name)
    tmp = casc / "..data_tmp"
    tmp.symlink_to(stamp.name)
    os.replace(tmp, casc / "..data")


@pytest.fixture
def sidecar(tmp_path: Path, endpoint: Endpoint) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    casc = tmp_path / "casc"
    casc.mkdir()
    publish(casc, {"jenkins.yaml": "jenkins:\n  numExecutors: 0\n", "team.yaml": "jobs: []\n"})
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    env = {"PATH": os.environ["PATH"], "CASC_DIR": str(casc), "RELOAD_URL": endpoint.url,
           "TOKEN_FILE": str(token), "INTERVAL": str(INTERVAL), "HEARTBEAT": str(tmp_path / "heartbeat")}
    proc = subprocess.Popen(["sh", str(SCRIPT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    time.sleep(4 * INTERVAL)  # the first digest is taken
    yield casc, proc
    proc.kill()
    proc.wait(timeout=10)


def wait_for(predicate, timeout: float = 30) -> bool:
    """Until `predicate` holds (True) or `timeout` seconds pass (False). Generous: each check of the
    sidecar spawns about ten processes, and in CI the unit tier shares two cores with Go builds (one run
    saw a retry arrive after more than 10 s); a sidecar that stopped still fails."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_an_unchanged_directory_costs_no_request(sidecar, endpoint):
    time.sleep(10 * INTERVAL)
    assert endpoint.requests == []
    assert sidecar[1].poll() is None, "the sidecar keeps running"


def test_the_heartbeat_the_probes_read_keeps_moving(sidecar, tmp_path):
    beat = tmp_path / "heartbeat"
    assert wait_for(beat.is_file)
    first = int(beat.read_text())
    assert abs(first - time.time()) < 5
    assert wait_for(lambda: int(beat.read_text()) > first, timeout=5), "rewritten on every check"


def test_the_probe_never_reads_a_half_written_heartbeat(sidecar, tmp_path):
    """The liveness probe runs `$(( now - $(cat heartbeat) ))`: an empty read fails it."""
    beat = tmp_path / "heartbeat"
    assert wait_for(beat.is_file)
    reads = []
    deadline = time.monotonic() + 12 * INTERVAL
    while time.monotonic() < deadline:
        reads.append(beat.read_text())
    assert len(reads) > 1000
    assert all(r.strip().isdigit() for r in reads), sorted(set(reads))[:3]


def test_a_changed_file_produces_one_authenticated_post(sidecar, endpoint):
    casc, _ = sidecar
    publish(casc, {"jenkins.yaml": "jenkins:\n  numExecutors: 0\n", "team.yaml": "jobs:\n  - script: x\n"})
    assert wait_for(lambda: len(endpoint.requests) >= 1)
    time.sleep(10 * INTERVAL)
    assert len(endpoint.requests) == 1, endpoint.requests
    method, path, content_type, body = endpoint.requests[0]
    assert method == RELOAD["method"] and path == RELOAD["crumb_excluded_path_info"]
    assert content_type == "application/x-www-form-urlencoded"
    assert parse_qs(body) == {RELOAD["token_parameter"]: [TOKEN]}, "the token, without its file's newline"


def test_a_new_file_counts_as_a_change(sidecar, endpoint):
    casc, _ = sidecar
    publish(casc, {"jenkins.yaml": "jenkins:\n  numExecutors: 0\n", "team.yaml": "jobs: []\n",
                   "more.yaml": "unclassified: {}\n"})
    assert wait_for(lambda: len(endpoint.requests) == 1)


def test_jenkins_not_answering_is_retried_until_it_takes_the_reload(sidecar, endpoint):
    endpoint.status = 503
    casc, _ = sidecar
    publish(casc, {"jenkins.yaml": "jenkins:\n  numExecutors: 1\n", "team.yaml": "jobs: []\n"})
    assert wait_for(lambda: len(endpoint.requests) >= 3)
    endpoint.status = 200
    assert wait_for(lambda: endpoint.requests and len(endpoint.requests) >= 4)
    settled = len(endpoint.requests)
    time.sleep(10 * INTERVAL)
    assert len(endpoint.requests) == settled, "no more requests once one succeeded"


@pytest.mark.parametrize("status", [RELOAD["status_wrong_token"], RELOAD["status_without_token"], 500])
def test_a_refusal_is_not_repeated_for_the_same_files(sidecar, endpoint, status):
    endpoint.status = status
    casc, proc = sidecar
    publish(casc, {"jenkins.yaml": "jenkins:\n  numExecutors: 2\n", "team.yaml": "jobs: []\n"})
    assert wait_for(lambda: len(endpoint.requests) == 1)
    time.sleep(10 * INTERVAL)
    assert len(endpoint.requests) == 1
    endpoint.status = 200
    publish(casc, {"jenkins.yaml": "jenkins:\n  numExecutors: 3\n", "team.yaml": "jobs: []\n"})
    assert wait_for(lambda: len(endpoint.requests) == 2), "the next change is sent"
    proc.kill()
    out = proc.communicate(timeout=10)[0]
    assert f"refused the reload (HTTP {status})" in out


def command_lines() -> list[str]:
    out = []
    for proc in Path("/proc").iterdir():
        try:
            out.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return out


def test_the_token_is_on_no_command_line_while_the_request_runs(sidecar, endpoint):
    endpoint.delay = 2.0
    casc, _ = sidecar
    publish(casc, {"jenkins.yaml": "jenkins:\n  numExecutors: 4\n", "team.yaml": "jobs: []\n"})
    assert wait_for(lambda: endpoint.arrived.is_set())
    lines = command_lines()  # curl is waiting for the answer now
    assert any("curl" in line and endpoint.url in line for line in lines), "curl is running"
    assert not [line for line in lines if TOKEN in line or "t0k" in line]
