"""helm provisioning: env overrides win, the majors are checked, and a wheel with the wrong hash is refused."""

from __future__ import annotations

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
