"""files/install-plugins.sh, the controller's plugin installer, run here with a fake jenkins-plugin-cli on
PATH that records its arguments and writes <id>.jpi files like the real one (<name>.jpi, see
data/upstream/jenkins-plugin-cli.yaml). The real tool only runs in the jenkins/jenkins image."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from jdagent.chart.render import render
from jdagent.paths import CHART_DIR

SCRIPT = CHART_DIR / "files" / "install-plugins.sh"
CLI = yaml.safe_load((Path(__file__).parent / "data" / "upstream" / "jenkins-plugin-cli.yaml").read_text())
RUNTIME = yaml.safe_load((Path(__file__).parent / "data" / "upstream" / "jenkins-runtime.yaml").read_text())

FAKE_CLI = r"""#!/bin/sh
# fake jenkins-plugin-cli: log the arguments and the environment it reads, leave temporary files where the
# real one does (a plugin-installation-manager-downloads* directory under java.io.tmpdir, the JSON cache in
# CACHE_DIR; neither is ever deleted by the tool), honour --clean-download-directory, write <id>.jpi
printf '%s\n' "$*" >> "$FAKE_LOG"
tmpdir=$(printf '%s\n' ${JAVA_OPTS:-} | sed -n 's/^-Djava.io.tmpdir=//p' | tail -n 1)
tmpdir=${tmpdir:-/tmp}
for var in JAVA_OPTS CACHE_DIR JENKINS_UC JENKINS_PLUGIN_INFO JENKINS_UC_DOWNLOAD_URL JENKINS_UC_CREDENTIALS; do
  printf '%s=%s\n' "$var" "$(printenv "$var" || true)"
done > "$FAKE_LOG.env"
downloads=$(mktemp -d "$tmpdir/plugin-installation-manager-downloadsXXXX")
echo partial > "$downloads/alpha.jpi"
mkdir -p "${CACHE_DIR:-$HOME/.cache/jenkins-plugin-management-cli}"
echo '{}' > "${CACHE_DIR:-$HOME/.cache/jenkins-plugin-management-cli}/update-center-2.568.2.json"
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
    tmp = tmp_path / "tmp"  # the init container's /tmp emptyDir
    tmp.mkdir()
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_LOG": str(tmp_path / "cli.log"),
            "PLUGINS_TXT": str(plugins), "PLUGIN_DIR": str(tmp_path / "home" / "plugins"), "TMP_ROOT": str(tmp),
            "HOME": str(tmp_path / "home")}


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
    # ... and what was there is kept aside, not deleted
    [previous] = list(Path(f"{env['PLUGIN_DIR']}.jda-previous").iterdir())
    assert f"the previous plugin directory is in {previous}" in proc.stdout
    assert (previous / "alpha.jpi").exists()


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


# --- temporary files ------------------------------------------------------------------------------
def leftovers(env) -> list[str]:
    return sorted(p.name for p in Path(env["TMP_ROOT"]).iterdir())


def test_a_failed_install_leaves_nothing_in_tmp(env):
    """jenkins-plugin-cli keeps its download directory and cache; /tmp is an emptyDir that outlives the
    init container's restarts, so each failed attempt would add a full download until eviction."""
    failed = run(env, FAKE_FAIL="1")
    assert failed.returncode != 0
    assert leftovers(env) == []
    cli_env = dict(line.split("=", 1) for line in Path(env["FAKE_LOG"] + ".env").read_text().splitlines())
    assert cli_env["CACHE_DIR"].startswith(env["TMP_ROOT"] + "/jda-plugin-install.")
    assert f"-Djava.io.tmpdir={Path(cli_env['CACHE_DIR']).parent}" in cli_env["JAVA_OPTS"].split()
    ok = run(env)
    assert ok.returncode == 0 and leftovers(env) == []


def test_what_a_killed_attempt_left_is_removed_before_the_next_one(env):
    tmp = Path(env["TMP_ROOT"])
    for name in ("jda-plugin-install.AbC123", "plugin-installation-manager-downloads42"):
        (tmp / name).mkdir()
        (tmp / name / "kubernetes.jpi").write_bytes(b"x" * 1024)
    (tmp / "unrelated.txt").write_text("kept")
    proc = run(env)
    assert proc.returncode == 0, proc.stderr
    assert leftovers(env) == ["unrelated.txt"]


# --- a mirror (update center inside the company) --------------------------------------------------
MIRROR = {"JENKINS_UC": "https://artifactory.corp/artifactory/jenkins-uc/update-center.json",
          "JENKINS_PLUGIN_INFO": "https://artifactory.corp/artifactory/jenkins-uc/plugin-versions.json",
          "JENKINS_UC_DOWNLOAD_URL": "https://artifactory.corp/artifactory/jenkins-plugins"}
LOGIN = "artifactory.corp:443:ci:s3cr:et"


def test_the_mirror_settings_reach_jenkins_plugin_cli_and_no_argument(env, tmp_path):
    login = tmp_path / "credentials"
    login.write_text(LOGIN + "\n")
    proc = run(env, **MIRROR, UC_CREDENTIALS_FILE=str(login), JAVA_OPTS="-Dhttps.proxyHost=proxy.corp")
    assert proc.returncode == 0, proc.stderr
    cli_env = dict(line.split("=", 1) for line in Path(env["FAKE_LOG"] + ".env").read_text().splitlines())
    for key, value in MIRROR.items():
        assert cli_env[key] == value
    assert cli_env["JENKINS_UC_CREDENTIALS"] == LOGIN, "the Secret file's login, without its newline"
    assert cli_env["JAVA_OPTS"].startswith("-Dhttps.proxyHost=proxy.corp ")
    [args] = calls(env)
    assert not any("artifactory" in a or "s3cr" in a for a in args), "secrets and URLs stay in the environment"


def test_the_rendered_mirror_values_set_what_the_cli_reads():
    pod = render(values=CHART_DIR / "ci" / "airgapped-values.yaml").get("StatefulSet")["spec"]["template"]["spec"]
    [init] = [c for c in pod["initContainers"] if c["name"] == "install-plugins"]
    env = {e["name"]: e for e in init["env"]}
    names = set(CLI["environment"])
    assert {"JENKINS_UC", "JENKINS_PLUGIN_INFO", "JENKINS_UC_DOWNLOAD_URL"} <= set(env)
    assert {n for n in env if n.startswith("JENKINS_")} <= names, "only variables jenkins-plugin-cli reads"
    assert env["JENKINS_UC"]["value"].endswith("/update-center.json")
    assert "JENKINS_UC_CREDENTIALS" not in env, "the login is a Secret file, never a pod environment variable"
    assert env["UC_CREDENTIALS_FILE"]["value"] == "/run/secrets/jda-uc/credentials"
    assert {"name": "uc-credentials", "mountPath": "/run/secrets/jda-uc", "readOnly": True} in init["volumeMounts"]
    [volume] = [v for v in pod["volumes"] if v["name"] == "uc-credentials"]
    assert volume["secret"]["secretName"] == "artifactory-jenkins-login"
    assert volume["secret"]["items"] == [{"key": "credentials", "path": "credentials"}]
    assert "-Djavax.net.ssl.trustStore=/var/jenkins_truststore/truststore.p12" in env["JAVA_OPTS"]["value"]
    [jenkins] = [c for c in pod["containers"] if c["name"] == "jenkins"]
    java_opts = {e["name"]: e.get("value") for e in jenkins["env"]}["JAVA_OPTS"]
    assert "-Djavax.net.ssl.trustStore=/var/jenkins_truststore/truststore.p12" in java_opts
    assert {"name": "truststore", "mountPath": "/var/jenkins_truststore", "readOnly": True} in jenkins["volumeMounts"]


# --- a prebuilt controller image --------------------------------------------------------------------
def jpi(path: Path, version: str | None) -> None:
    """A plugin archive with a manifest as plugin builds write it (CRLF line ends)."""
    import zipfile

    lines = ["Manifest-Version: 1.0", f"Short-Name: {path.stem}"]
    if version is not None:
        lines.append(f"Plugin-Version: {version}")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("META-INF/MANIFEST.MF", "\r\n".join(lines) + "\r\n\r\n")


@pytest.fixture
def image(env, tmp_path):
    ref = tmp_path / "ref" / "plugins"
    ref.mkdir(parents=True)
    jpi(ref / "alpha.jpi", "1.0")
    jpi(ref / "beta.jpi", "2.0")
    return {**env, "PLUGIN_SOURCE": "image", "IMAGE_PLUGIN_DIR": str(ref)}


def test_a_prebuilt_image_that_matches_is_copied_without_a_download(image):
    proc = run(image)
    assert proc.returncode == 0, proc.stderr
    assert "the 2 plugins in controller.image" in proc.stdout and "match the lock" in proc.stdout
    assert calls(image) == [], "jenkins-plugin-cli must not run"
    installed = sorted(p.name for p in Path(image["PLUGIN_DIR"]).glob("*.jpi"))
    assert installed == ["alpha.jpi", "beta.jpi"]
    again = run(image)
    assert again.returncode == 0 and "nothing to install" in again.stdout


def test_a_prebuilt_image_that_differs_names_every_difference(image):
    ref = Path(image["IMAGE_PLUGIN_DIR"])
    (ref / "beta.jpi").unlink()
    jpi(ref / "alpha.jpi", "1.1")
    jpi(ref / "gamma.hpi", "3.0")
    jpi(ref / "delta.jpi", None)
    Path(image["PLUGINS_TXT"]).write_text("alpha:1.0\nbeta:2.0\ndelta:4.0\n")
    proc = run(image)
    assert proc.returncode != 0
    assert "differ from the chart's lock plus controller.additionalPlugins in 4 places" in proc.stderr
    for line in ("alpha: the image has 1.1, the lock wants 1.0", "missing from the image: beta:2.0",
                 "not in the lock: gamma:3.0", "delta: no Plugin-Version in its manifest (the lock wants 4.0)"):
        assert line in proc.stderr, proc.stderr
    assert calls(image) == [] and not list(Path(image["PLUGIN_DIR"]).glob("*.jpi"))


def test_a_prebuilt_image_without_its_plugin_directory_is_refused(image):
    proc = run(image, IMAGE_PLUGIN_DIR="/nonexistent/plugins")
    assert proc.returncode != 0 and "controller.plugins.imageDir" in proc.stderr


def test_an_unknown_source_is_refused(env):
    proc = run(env, PLUGIN_SOURCE="artifactory")
    assert proc.returncode != 0 and "controller.plugins.source must be updateCenter or image" in proc.stderr


# --- a CA the JVM trusts ------------------------------------------------------------------------------
def _ca(tmp_path: Path, name: str) -> str:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _java_home() -> str | None:
    keytool = shutil.which("keytool")
    if keytool is None:
        return None
    home = Path(os.path.realpath(keytool)).parent.parent
    return str(home) if (home / "lib" / "security" / "cacerts").is_file() else None


@pytest.mark.skipif(_java_home() is None, reason="no JDK keytool with lib/security/cacerts on PATH")
def test_the_truststore_holds_the_jdk_cas_and_every_certificate_of_the_bundles(env, tmp_path):
    ca_dir = tmp_path / "ca"
    ca_dir.mkdir()
    (ca_dir / "corp-bundle.pem").write_text(_ca(tmp_path, "Corp Root CA") + _ca(tmp_path, "Corp Issuing CA"))
    (ca_dir / "proxy.pem").write_text(_ca(tmp_path, "Proxy CA"))
    store = tmp_path / "truststore" / "truststore.p12"
    store.parent.mkdir()
    proc = run(env, CA_DIR=str(ca_dir), TRUSTSTORE=str(store), TRUSTSTORE_PASSWORD="changeit",
               JAVA_HOME=_java_home())
    assert proc.returncode == 0, proc.stderr
    assert "plus 3 certificates from controller.caCertificates" in proc.stdout
    listing = subprocess.run(["keytool", "-list", "-v", "-keystore", str(store), "-storetype", "PKCS12",
                              "-storepass", "changeit"], capture_output=True, text=True, check=True).stdout
    for cn in ("Corp Root CA", "Corp Issuing CA", "Proxy CA"):
        assert f"Owner: CN={cn}" in listing
    jdk = int(re.search(r"Your keystore contains (\d+) entries", listing).group(1))
    assert jdk > 50, "the JDK's public CAs stay trusted (the truststore replaces cacerts)"
    assert leftovers(env) == []


def test_a_ca_directory_without_a_certificate_is_refused(env, tmp_path):
    if _java_home() is None:
        pytest.skip("no JDK keytool with lib/security/cacerts on PATH")
    ca_dir = tmp_path / "ca"
    ca_dir.mkdir()
    (ca_dir / "ca.pem").write_text("not a certificate\n")
    proc = run(env, CA_DIR=str(ca_dir), TRUSTSTORE=str(tmp_path / "t.p12"), TRUSTSTORE_PASSWORD="changeit",
               JAVA_HOME=_java_home())
    assert proc.returncode != 0 and "no PEM certificate" in proc.stderr


def test_an_empty_login_file_is_refused(env, tmp_path):
    login = tmp_path / "credentials"
    login.write_text("")
    proc = run(env, **MIRROR, UC_CREDENTIALS_FILE=str(login))
    assert proc.returncode != 0 and "credentialsSecret" in proc.stderr
    assert calls(env) == []


# --- nothing is lost on a reinstall -------------------------------------------------------------------
def test_a_newer_installed_plugin_stops_the_reinstall_unless_a_downgrade_is_allowed(env):
    """An update applied in the UI (a real archive with a newer Plugin-Version) is not silently replaced
    by the list's older pin: the script names it and changes nothing; ALLOW_DOWNGRADE=true goes on."""
    run(env)
    plugins = Path(env["PLUGIN_DIR"])
    time.sleep(1.1)
    jpi(plugins / "alpha.jpi", "1.10.v0123abcd")  # newer than the pin 1.0 by its numbers, not as text
    jpi(plugins / "beta.jpi", "2.0")
    refused = run(env)
    assert refused.returncode != 0
    assert "alpha: installed 1.10.v0123abcd, the list pins 1.0" in refused.stderr, refused.stderr
    assert "beta:" not in refused.stderr and "controller.plugins.allowDowngrade=true" in refused.stderr
    assert len(calls(env)) == 1 and not Path(f"{env['PLUGIN_DIR']}.jda-previous").exists()
    assert (plugins / ".jda-plugins.sha256").exists(), "nothing was changed"
    allowed = run(env, ALLOW_DOWNGRADE="true")
    assert allowed.returncode == 0, allowed.stderr
    assert "downgrading, as controller.plugins.allowDowngrade allows" in allowed.stdout
    assert jpis(env)["alpha"] == "1.0"


@pytest.mark.parametrize("installed,pin,newer", [
    ("2.17.0", "2.16.1", True), ("2.16.1", "2.17.0", False), ("2.17.1", "2.17", True),
    ("4424.vb_59f230b_ce53", "4423.v1234", True), ("1.131.v7199556c3004", "1.131.v99", False),
    ("1.0", "1.0", False),
])
def test_versions_are_ordered_by_their_leading_numbers(env, installed, pin, newer):
    Path(env["PLUGINS_TXT"]).write_text(f"alpha:{pin}\n")
    plugins = Path(env["PLUGIN_DIR"])
    plugins.mkdir(parents=True)
    jpi(plugins / "alpha.jpi", installed)
    proc = run(env)
    assert (proc.returncode != 0) == newer, (proc.stdout, proc.stderr)


def test_disabled_markers_survive_a_reinstall_and_do_not_trigger_one(env):
    """Jenkins reads plugins/<archive>.disabled (ClassicPluginStrategy at jenkins-2.568.2)."""
    suffix = RUNTIME["jenkins-core"]["disabled_marker"]["suffix"]
    assert suffix == ".disabled" and "unzip" in RUNTIME["jenkins-image"]["packages"]
    run(env)
    plugins = Path(env["PLUGIN_DIR"])
    time.sleep(1.1)
    (plugins / f"beta.jpi{suffix}").touch()
    kept = run(env)
    assert kept.returncode == 0 and "nothing to install" in kept.stdout, kept.stdout
    (plugins / "gone.jpi.disabled").touch()
    Path(env["PLUGINS_TXT"]).write_text("alpha:1.1\nbeta:2.0\n")
    proc = run(env)
    assert proc.returncode == 0, proc.stderr
    assert "beta stays disabled" in proc.stdout
    assert (plugins / "beta.jpi.disabled").exists() and not (plugins / "gone.jpi.disabled").exists()
    assert "nothing to install" in run(env).stdout


def test_only_the_newest_three_previous_directories_are_kept(env):
    for version in range(5):
        Path(env["PLUGINS_TXT"]).write_text(f"alpha:1.{version}\n")
        assert run(env).returncode == 0
    aside = sorted(p.name for p in Path(f"{env['PLUGIN_DIR']}.jda-previous").iterdir())
    assert len(aside) == 3, aside
    newest = Path(f"{env['PLUGIN_DIR']}.jda-previous") / aside[-1] / "alpha.jpi"
    assert newest.read_text().strip() == "1.3"


def test_markers_survive_an_install_that_failed_after_the_move(env):
    """jenkins-plugin-cli moves downloads in only once all succeeded, so a failed attempt leaves the
    directory empty: the next attempt still restores the markers of the copy moved aside before."""
    run(env)
    plugins = Path(env["PLUGIN_DIR"])
    (plugins / "beta.jpi.disabled").touch()
    Path(env["PLUGINS_TXT"]).write_text("alpha:1.1\nbeta:2.0\n")
    failed = run(env, FAKE_FAIL="1")
    assert failed.returncode != 0 and not (plugins / "beta.jpi.disabled").exists()
    retried = run(env)
    assert retried.returncode == 0, retried.stderr
    assert "beta stays disabled" in retried.stdout and (plugins / "beta.jpi.disabled").exists()
    assert not (Path(f"{env['PLUGIN_DIR']}.jda-previous") / ".pending").exists()
