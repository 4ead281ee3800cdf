"""scripts/build-prewarmed-dind's decisions (jdagent.engine.prewarm), and how the chart reads what it baked.
The Docker tier builds real prewarmed images and runs agents on them (tests/docker/test_prewarm.py)."""

from __future__ import annotations

import io
import tarfile

from jdagent.chart.manifest import container, env_of
from jdagent.chart.render import render
from jdagent.engine import prewarm


def save_archive(path, layers: list[list[str]]) -> None:
    """A `docker save`-shaped archive: one tar per layer, plus the JSON files."""
    with tarfile.open(path, "w") as outer:
        for i, names in enumerate(layers):
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as layer:
                for name in names:
                    info = tarfile.TarInfo(name)
                    data = b"x" * 600
                    info.size = len(data)
                    layer.addfile(info, io.BytesIO(data))
            info = tarfile.TarInfo(f"blobs/sha256/{i:064d}")
            info.size = len(buf.getvalue())
            outer.addfile(info, io.BytesIO(buf.getvalue()))
        manifest = b'[{"Config": "config.json", "Layers": []}]'
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        outer.addfile(info, io.BytesIO(manifest))


def test_whiteouts_and_opaque_markers_are_found(tmp_path):
    clean, deleting = tmp_path / "clean.tar", tmp_path / "deleting.tar"
    save_archive(clean, [["bin/sh", "etc/passwd"]])
    save_archive(deleting, [["bin/sh", "bin/wc"], ["bin/.wh.wc", "var/cache/.wh..wh..opq"]])
    assert prewarm.whiteouts(clean) == []
    assert prewarm.whiteouts(deleting) == ["bin/.wh.wc", "var/cache/.wh..wh..opq"]


def test_data_roots_where_an_image_layer_can_carry_them():
    assert prewarm.plan(["vfs", "overlay2"], [], "auto") == {"vfs": "data-root", "overlay2": "data-root"}
    assert prewarm.plan(["vfs", "overlay2"], ["bin/.wh.wc"], "auto") == {"vfs": "data-root", "overlay2": "archives"}
    assert prewarm.plan(["vfs"], [], "archives") == {"vfs": "archives"}


def test_the_chart_tells_dind_start_which_data_root_to_use():
    over = {"agent": {"dind": {"storageDriver": "overlay2",
                               "prewarm": {"enabled": True, "images": ["busybox:1.37.0"]}}}}
    dind = container(render(overrides=over).agent_pod()["spec"], "dind")
    env = env_of(dind)
    assert env["JDA_PREWARM"] == "1" and env["JDA_STORAGE_DRIVER"] == "overlay2"
    hook = dind["lifecycle"]["postStart"]["exec"]["command"][-1]
    assert hook.startswith(f"test -d {prewarm.DATA_ROOTS}/$JDA_STORAGE_DRIVER && exit 0;")
    assert f"{prewarm.ARCHIVES}/*.tar" in hook
    plain = env_of(container(render().agent_pod()["spec"], "dind"))
    assert "JDA_PREWARM" not in plain
