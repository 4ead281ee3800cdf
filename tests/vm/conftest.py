"""VM tier: a qemu guest (software emulation) booting Debian trixie's kernel with systemd on the unified
hierarchy and Docker 26.1 from trixie: a real cgroup v2 node on machines whose own kernel runs cgroup v1.

The base disk is built once per pin (`python -m jdagent.vm build`, .tools/vm/), the stand-in images
and the prewarmed stand-in dind (built on the host's engine by scripts/build-prewarmed-dind's builder,
the same image the Docker tier uses) are imported once into a prepared disk, and the tier boots one
throw-away overlay of it for all its tests. Every test here SKIPS naming what is missing (qemu, qemu-img,
ssh, or, before the first build, debootstrap, mkfs.ext4 -d, root); JDA_REQUIRE_VM=1 turns that into a
failure. The console log is in
.artifacts/vm/tier/console.log; a failed test saves the guest's journal beside it.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import docker
import pytest

from jdagent.engine import images
from jdagent.vm import dind as vmdind
from jdagent.vm import image, prepared
from jdagent.vm.machine import Machine
from jdagent.vm.progress import VmError

BASE = image.current()
MISSING = image.missing(BASE)
REQUIRED = os.environ.get("JDA_REQUIRE_VM") == "1"
STANDINS = ("busybox", "dind")  # imported into the prepared disk
TIMINGS: dict[str, str] = {}
_outcomes: Counter[str] = Counter()


def _ours(path: object) -> bool:
    return "tests/vm" in str(path)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _ours(item.fspath) and MISSING and not REQUIRED:
            item.add_marker(pytest.mark.skip(reason=MISSING))
    # the node's smoke tests first: the dind tests stand on what they prove (the order is otherwise kept)
    items.sort(key=lambda item: not str(item.fspath).endswith("tests/vm/test_node.py"))


def pytest_runtest_setup(item):
    if _ours(item.fspath) and REQUIRED and MISSING:
        pytest.fail(f"JDA_REQUIRE_VM=1 but {MISSING}", pytrace=False)


def pytest_runtest_logreport(report):
    if "tests/vm" in report.nodeid and (report.when == "call" or report.outcome in ("failed", "skipped")):
        _outcomes[report.outcome] += 1


def pytest_terminal_summary(terminalreporter):
    if _outcomes and set(_outcomes) == {"skipped"}:
        terminalreporter.write_sep("!", f"VM TIER DID NOT RUN: {MISSING}", yellow=True)
    if TIMINGS:
        terminalreporter.write_sep("-", "VM timings")
        for step, value in TIMINGS.items():
            terminalreporter.write_line(f"{step}: {value}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    machine = item.funcargs.get("node") if report.when == "call" and report.failed else None
    if isinstance(machine, Machine):
        saved = machine.folder / f"{item.name}.journal.txt"
        try:
            saved.write_text(machine.run("journalctl -b --no-pager -o short-monotonic | tail -n 400", 60).stdout)
            report.sections.append(("vm artifacts", f"guest journal in {saved}; console in {machine.console}"))
        except (OSError, VmError) as exc:
            report.sections.append(("vm artifacts", f"could not save the journal: {exc}"))


def need(reason: str) -> None:
    """Skip naming `reason`, or fail under JDA_REQUIRE_VM=1."""
    if REQUIRED:
        pytest.fail(f"JDA_REQUIRE_VM=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def base() -> image.Base:
    was_built = BASE.complete()
    started = time.monotonic()
    built = image.ensure()
    TIMINGS["base disk"] = "reused (built earlier: " + ", ".join(
        f"{k} {v} s" for k, v in dict(built.facts().get("seconds", {})).items()) + ")" if was_built \
        else f"built in {time.monotonic() - started:.0f} s"
    return built


@pytest.fixture(scope="session")
def standins() -> dict[str, str]:
    """The stand-in images (built on the host's Docker engine if missing); empty when there is no engine."""
    try:
        client = docker.from_env(version="auto", timeout=600)
        client.ping()
    except Exception as exc:  # the SDK raises several kinds when no engine answers
        TIMINGS["images"] = f"none: no Docker engine on the host ({type(exc).__name__})"
        return {}
    found = {name: images.ensure(client, name) for name in STANDINS}
    # JDA_DIND_STANDIN=dind29 (CI): the pinned daemon with moby's hack/dind and docker-init, as the Docker and
    # cluster tiers run it
    if os.environ.get("JDA_DIND_STANDIN") == images.DIND29:
        found["dind"] = images.ensure_dind29(client)
    return found


@pytest.fixture(scope="session")
def guest_images(standins) -> dict[str, str]:
    """What the prepared disk holds: the stand-ins and, as "prewarmed", the stand-in dind with busybox
    baked in (data roots for vfs and overlay2); empty when there is no engine."""
    if not standins:
        return {}
    started = time.monotonic()
    client = docker.from_env(version="auto", timeout=900)
    prewarmed = vmdind.ensure_prewarmed(client, standins["dind"], [standins["busybox"]])
    TIMINGS["prewarmed dind"] = f"{prewarmed} ready on the host in {time.monotonic() - started:.0f} s"
    return {**standins, "prewarmed": prewarmed}


@pytest.fixture(scope="session")
def node(base, guest_images):
    """One guest for the tier: a throw-away overlay on the prepared disk (or the base disk without an engine)."""
    backing = None
    if guest_images:
        started = time.monotonic()
        backing, seconds = prepared.ensure(base, list(guest_images.values()))
        TIMINGS["image import"] = (f"docker load {seconds:.0f} s; the prepared disk {backing.name} made in "
                                   f"{time.monotonic() - started:.0f} s (save, boot, load, power-off)"
                                   if seconds is not None else f"reused the prepared disk {backing.name}")
    machine = Machine(base, "tier", backing=backing)
    with machine:
        TIMINGS["boot to ready"] = (f"{machine.timings['boot']:.0f} s (SSH after {machine.timings['ssh']:.0f} s, "
                                    f"systemd {machine.state})")
        yield machine
    how = "clean" if machine.clean_shutdown else "killed"
    TIMINGS["shutdown"] = f"{machine.timings.get('shutdown', 0):.0f} s ({how})"


@pytest.fixture
def busybox(node, standins) -> str:
    if not standins:
        need("no Docker engine on the host: the stand-in images the guest runs come from it")
    return standins["busybox"]
