"""The fan-in figures' parsing without a cluster: upstream fetches read from Distribution's access log
lines (the format the registry stand-in writes), start-up times from a pod status as the API server
returns it, and the percentiles the bench prints."""

from __future__ import annotations

from jdagent.cluster import fanin

LOG = """\
level=info msg="response completed" http.request.method=GET http.request.uri=/v2/library/a/blobs/sha256:aa
10.244.0.9 - - [02/Dec/2026:20:03:01 +0000] "GET /v2/library/a/manifests/1 HTTP/1.1" 200 528 "" "docker/26"
10.244.0.9 - - [02/Dec/2026:20:03:01 +0000] "GET /v2/library/a/blobs/sha256:aa HTTP/1.1" 200 91 "" "docker/26"
10.244.0.9 - - [02/Dec/2026:20:03:01 +0000] "GET /v2/library/a/blobs/sha256:aa HTTP/1.1" 200 91 "" "docker/26"
10.244.0.9 - - [02/Dec/2026:20:03:01 +0000] "HEAD /v2/library/a/blobs/sha256:bb HTTP/1.1" 200 0 "" "docker/26"
10.244.0.9 - - [02/Dec/2026:20:03:01 +0000] "GET /v2/library/a/blobs/sha256:cc HTTP/1.1" 404 0 "" "docker/26"
10.244.0.9 - - [02/Dec/2026:20:03:01 +0000] "GET /v2/library/ab/blobs/sha256:dd HTTP/1.1" 200 9 "" "docker/26"
"""


def test_only_successful_gets_of_that_repository_count_once_per_request():
    blobs, manifests = fanin.upstream_fetches(LOG, "library/a")
    assert blobs == {"sha256:aa": 2} and manifests == 1


def test_start_up_is_read_from_the_kubelets_pod_status():
    pod = {"metadata": {"name": "p", "uid": "u", "creationTimestamp": "2026-12-02T10:00:00Z"},
           "status": {"conditions": [{"type": "Initialized", "lastTransitionTime": "2026-12-02T10:00:03Z"},
                                     {"type": "Ready", "lastTransitionTime": "2026-12-02T10:00:05Z"}],
                      "initContainerStatuses": [{"name": "dind",
                                                 "state": {"running": {"startedAt": "2026-12-02T10:00:01Z"}}}],
                      "containerStatuses": [{"name": "jnlp",
                                             "state": {"running": {"startedAt": "2026-12-02T10:00:04Z"}}}]}}
    s = fanin.startup_of(pod)
    assert (s.dind_started - s.created, s.dind_ready - s.created, s.jnlp_started - s.created, s.to_ready) == \
        (1, 3, 4, 5)


def test_percentiles_are_nearest_rank():
    values = [float(v) for v in range(1, 9)]
    assert fanin.percentile(values, 50) == 4 and fanin.percentile(values, 95) == 8 and fanin.percentile([], 50) == 0


def test_a_first_build_row_counts_from_the_pods_creation_and_the_table_keeps_the_floor():
    from jdagent.cluster import firstbuild

    s = fanin.Startup("p", "u", created=100.0, dind_started=101.0, dind_ready=104.0, jnlp_started=104.0, ready=105.0)
    row = firstbuild.FirstBuild("overlay2", True, s, build_s=7.26, done_s=12.94).row()
    assert row == {"driver": "overlay2", "prewarmed": True, "dind_started_s": 1.0, "dind_ready_s": 4.0,
                   "jnlp_started_s": 4.0, "ready_s": 5.0, "build_s": 7.3, "first_build_done_s": 12.9}
    text = firstbuild.table({"variants": [row], "host_build_s": 3.1})
    assert "| overlay2 | prewarmed | 1 s | 4 s | 4 s | 5 s | 7.3 s | 12.9 s |" in text
    assert text.splitlines()[-1].startswith("| host engine (floor) |") and "3.1 s" in text
