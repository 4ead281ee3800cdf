"""files/install-plugins.sh, the controller's plugin installer, run here with a fake jenkins-plugin-cli on
PATH that records its arguments and writes <id>.jpi files like the real one (<name>.jpi, see
data/upstream/jenkins-plugin-cli.yaml). The real tool only runs in the jenkins/jenkins image."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from jdagent.chart.render import render
from jdagent.paths import CHART_DIR

SCRIPT = CHART_DIR / "files" / "install-plugins.sh"
CLI = yaml.safe_load((Path(__file__).parent / "data" / "upstream" / "jenkins-plugin-cli.yaml").read_text())

FAKE_CLI = r"""#!/bin/sh
# fake jenkins-plugin-cli: log the arguments, honour --clean-download-directory, write <id>.jpi
printf '%s\n' "$*" >> "$FAKE_LOG"
[ -z "${FAKE_FAIL:-}" ] || { echo "fake: download failed" >&2; exit 1; }
file=""; dir=""; clean=""
while [ "$#" -gt 0 ]; do
  case "$1" in
    --plugin-file) file=$2; shift ;;
    --plugin-download-directory) dir=$2; shift ;;
    --clean-download-directory) clean=1 ;;
  esac
  shift
done
[ -z "$clean" ] || find "$dir" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
sed -n 's/^\([^:]*\):\(.*\)$/\1 \2/p' "$file" | while read -r id version; do
  printf '%s\n' "$version" > "$dir/$id.jpi"
done
"""


@pytest.fixture
def env(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    cli = bin_dir / "jenkins-plugin-cli"
    cli.write_text(FAKE_CLI)
    cli.chmod(0o755)
    plugins = tmp_path / "plugins.txt"
    plugins.write_text("alpha:1.0\nbeta:2.0\n")
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_LOG": str(tmp_path / "cli.log"),
            "PLUGINS_TXT": str(plugins), "PLUGIN_DIR": str(tmp_path / "home" / "plugins")}


def run(env, **extra):
    return subprocess.run(["sh", str(SCRIPT)], env={**env, **extra}, capture_output=True, text=True, timeout=60)


def calls(env) -> list[list[str]]:
    log = Path(env["FAKE_LOG"])
    return [shlex.split(line) for line in log.read_text().splitlines()] if log.exists() else []


def jpis(env) -> dict[str, str]:
    return {p.stem: p.read_text().strip() for p in Path(env["PLUGIN_DIR"]).glob("*.jpi")}


def test_script_is_valid_posix_shell():
    assert subprocess.run(["sh", "-n", str(SCRIPT)], capture_output=True).returncode == 0


def test_first_start_installs_the_list_without_floating(env):
    proc = run(env)
    assert proc.returncode == 0, proc.stderr
    assert "installing 2 plugins from the lock (no record of an earlier install)" in proc.stdout
    assert jpis(env) == {"alpha": "1.0", "beta": "2.0"}
    [args] = calls(env)
    assert args[args.index("--latest") + 1] == "false"
    assert "--clean-download-directory" in args
    assert args[args.index("--plugin-file") + 1] == env["PLUGINS_TXT"]
    assert args[args.index("--plugin-download-directory") + 1] == env["PLUGIN_DIR"]


def test_installer_uses_only_options_the_pinned_cli_knows(env):
    run(env)
    [args] = calls(env)
    options = CLI["options"]
    i = 0
    while i < len(args):
        kind = options.get(args[i])
        assert kind is not None, f"{args[i]} is not an option of jenkins-plugin-cli {CLI['version']}"
        if kind == "boolean":
            assert args[i + 1] in ("true", "false"), args[i:]
        i += 1 if kind == "flag" else 2
    assert CLI["defaults"]["--latest"] is True, "the reason --latest false is passed"


def test_unchanged_restart_downloads_nothing(env):
    run(env)
    proc = run(env)
    assert proc.returncode == 0
    assert "the 2 installed plugins match the lock" in proc.stdout
    assert len(calls(env)) == 1


@pytest.mark.parametrize("change,reason", [
    ("list", "the plugin list changed"),
    ("foreign", "the directory holds other plugins than the list"),
    ("missing", "the directory holds other plugins than the list"),
    ("upgraded", "plugins were changed after the last install"),
    ("backup", "plugins were changed after the last install"),
])
def test_a_directory_that_drifted_from_the_lock_is_reinstalled_clean(env, change, reason):
    run(env)
    plugins = Path(env["PLUGIN_DIR"])
    if change == "list":
        Path(env["PLUGINS_TXT"]).write_text("alpha:1.1\nbeta:2.0\n")
    elif change == "foreign":
        (plugins / "gamma.jpi").write_text("9.9")
    elif change == "missing":
        (plugins / "beta.jpi").unlink()
    elif change == "upgraded":  # the UI's update center wrote a newer alpha after the install
        time.sleep(1.1)
        (plugins / "alpha.jpi").write_text("1.5")
    else:
        (plugins / "alpha.bak").write_text("1.0")
    proc = run(env)
    assert proc.returncode == 0, proc.stderr
    assert f"({reason})" in proc.stdout
    assert len(calls(env)) == 2 and "--clean-download-directory" in calls(env)[1]
    expected = {"alpha": "1.1" if change == "list" else "1.0", "beta": "2.0"}
    assert jpis(env) == expected
    assert not list(plugins.glob("*.bak"))


def test_a_failed_install_leaves_no_stamp_so_the_next_start_retries(env):
    failed = run(env, FAKE_FAIL="1")
    assert failed.returncode != 0
    assert "fake: download failed" in failed.stderr
    assert not (Path(env["PLUGIN_DIR"]) / ".jda-plugins.sha256").exists()
    proc = run(env)
    assert proc.returncode == 0 and "no record of an earlier install" in proc.stdout


def test_missing_settings_stop_with_the_variable_name(env):
    proc = run({k: v for k, v in env.items() if k != "PLUGIN_DIR"})
    assert proc.returncode != 0 and "PLUGIN_DIR" in proc.stderr


def test_the_rendered_configmap_carries_this_script():
    cm = render().get("ConfigMap", suffix="-config")["data"]
    assert cm["install-plugins.sh"].strip() == SCRIPT.read_text().strip()
