"""Long release names: Helm allows 53 characters, and the chart's fullname is cut at 63, so names made
by appending to it (-agent, -mirror, -push, -mirror-<host>) must not be cut back to the controller's
own name. For every release length up to Helm's limit, no two rendered objects of one kind share a
name in one namespace, and every Service name is a valid DNS-1035 label."""

from __future__ import annotations

import collections
import re

import pytest

from jdagent.chart.render import render

ALL_ON = {"mirror": {"enabled": True, "registries": [{"host": "ghcr.io"}]},
          "agent": {"dind": {"storageDriver": "native"},
                    "registry": {"server": "registry.example:5000", "push": True, "secretName": "push",
                                 "pushFolders": ["release"]}},
          "exampleJob": {"folder": "release"},
          "networkPolicy": {"enabled": True}}
DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


@pytest.mark.parametrize("length", [2, 30, 36, 44, 45, 46, 53])
def test_no_two_objects_share_a_name_whatever_the_release_length(length):
    release = ("r" * length)
    manifest = render(release=release, overrides=ALL_ON)
    names = collections.Counter((o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in manifest)
    assert [k for k, n in names.items() if n > 1] == []
    for service in manifest.all("Service"):
        name = service["metadata"]["name"]
        assert len(name) <= 63 and DNS1035.match(name), name
