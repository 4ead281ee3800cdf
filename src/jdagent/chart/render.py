"""`helm template` with caching: each (chart, values, overrides, release, namespace, kube version, helm)
renders once per process."""

from __future__ import annotations

import functools
import json
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from jdagent.chart.manifest import Manifest
from jdagent.paths import CHART_DIR
from jdagent.tools import find_helm


class RenderError(RuntimeError):
    """helm refused to render; `stderr` holds helm's own message."""

    def __init__(self, cmd: list[str], stderr: str) -> None:
        super().__init__(f"{' '.join(cmd)} failed:\n{stderr.strip()}")
        self.cmd = cmd
        self.stderr = stderr


def deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """`extra` laid over `base`, mapping by mapping (how helm merges values files and --set)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def render(
    chart: Path | str = CHART_DIR,
    values: Iterable[Path | str] | Path | str | None = None,
    overrides: Mapping[str, Any] | None = None,
    release: str = "ci",
    namespace: str = "ci",
    kube_version: str | None = None,
    helm: str | Path | None = "4",
    cache: bool = True,
    api_versions: Iterable[str] = (),
) -> Manifest:
    """Render a chart and return its parsed objects.

    values: values files; overrides: a nested mapping merged last (like another -f file);
    helm: a major ("3"/"4") or the path of a helm binary; cache=False renders afresh;
    api_versions: what the cluster serves beyond the built-ins ("group/version/Kind"), as --api-versions.
    """
    if values is None:
        files: tuple[str, ...] = ()
    elif isinstance(values, str | Path):
        files = (str(values),)
    else:
        files = tuple(str(v) for v in values)
    fn = _render_cached if cache else _render_cached.__wrapped__
    return fn(
        str(chart), files, json.dumps(overrides or {}, sort_keys=True), release, namespace,
        kube_version or "", str(helm), tuple(sorted(api_versions)),
    )


def helm_binary(helm: str | Path | None) -> str:
    if helm is None or str(helm) in ("3", "4"):
        return str(find_helm(str(helm or "4")))
    return str(helm)


def template_command(
    chart: str, files: tuple[str, ...], release: str, namespace: str, kube_version: str, helm: str,
    api_versions: tuple[str, ...] = (),
) -> list[str]:
    cmd = [helm_binary(helm), "template", release, chart, "--namespace", namespace]
    for f in files:
        cmd += ["-f", f]
    if kube_version:
        cmd += ["--kube-version", kube_version]
    for api in api_versions:
        cmd += ["--api-versions", api]
    return cmd


@functools.lru_cache(maxsize=512)
def _render_cached(
    chart: str, files: tuple[str, ...], overrides_json: str, release: str, namespace: str,
    kube_version: str, helm: str, api_versions: tuple[str, ...] = (),
) -> Manifest:
    cmd = template_command(chart, files, release, namespace, kube_version, helm, api_versions)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="jda-overrides-") as extra:
        if overrides_json != "{}":
            # JSON is YAML that quotes every string: a tag like "733e821" stays a string for helm's parser
            extra.write(overrides_json)
            extra.flush()
            cmd += ["-f", extra.name]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RenderError(cmd, proc.stderr)
    return Manifest.from_yaml(proc.stdout)
