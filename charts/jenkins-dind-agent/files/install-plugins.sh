#!/bin/sh
# Install exactly the plugins listed in $PLUGINS_TXT ("id:version" lines) into $PLUGIN_DIR.
# The list is the chart's closed plugin lock: every dependency is pinned, so jenkins-plugin-cli runs
# with `--latest false` and resolves nothing at pod start. jenkins-plugin-cli never downgrades and
# leaves foreign plugins alone, so a directory that does not match the list is emptied first (moved
# aside, see below; `--clean-download-directory` then finds nothing to delete). A directory that
# matches (same list, same files, nothing changed since but .disabled markers) is kept as it is, so
# restarts do not download anything.
#
# PLUGIN_SOURCE=updateCenter (default): jenkins-plugin-cli downloads the list. It reads JENKINS_UC,
#   JENKINS_PLUGIN_INFO, JENKINS_UC_DOWNLOAD_URL and JENKINS_UC_CREDENTIALS itself (a mirror; the login
#   is read from the Secret file $UC_CREDENTIALS_FILE and exported to jenkins-plugin-cli alone). Its
#   temporary files (java.io.tmpdir, CACHE_DIR) go to a work directory under $TMP_ROOT that is removed
#   when this script ends, and a work directory an earlier, killed attempt left behind is removed first.
# PLUGIN_SOURCE=image: the plugins are baked into the controller image at $IMAGE_PLUGIN_DIR. Nothing
#   is downloaded: the image's plugins (id from the file name, version from the manifest's
#   Plugin-Version, as jenkins-plugin-cli reads them) must equal the list, else every difference is
#   named and the script fails; then they are copied into $PLUGIN_DIR.
# CA_DIR (optional): PEM files whose certificates are added to the JDK's CA list in the PKCS12
#   truststore $TRUSTSTORE, which JAVA_OPTS names for jenkins-plugin-cli and Jenkins.
#
# Nothing is lost on a reinstall: before it, a plugin installed at a newer version than the list's (an
# update applied in the UI, an adopted home) stops the script, naming each one, unless
# ALLOW_DOWNGRADE=true (controller.plugins.allowDowngrade). The directory's contents are then moved to
# $PLUGIN_DIR.jda-previous/<UTC time>/ (the newest $KEEP_PREVIOUS, default 3, are kept), and the
# <id>.jpi.disabled markers of plugins the list still holds (Jenkins' ClassicPluginStrategy reads
# <archive>.disabled) are put back, so a plugin an admin disabled stays disabled.
set -eu
: "${PLUGINS_TXT:?}" "${PLUGIN_DIR:?}"
source=${PLUGIN_SOURCE:-updateCenter}
tmp_root=${TMP_ROOT:-${TMPDIR:-/tmp}}
log() { echo "jenkins-dind-agent: $*"; }
die() { echo "jenkins-dind-agent: $*" >&2; exit 1; }

case "$source" in
  updateCenter | image) ;;
  *) die "PLUGIN_SOURCE=$source: controller.plugins.source must be updateCenter or image" ;;
esac

# --- the truststore -------------------------------------------------------------------------------
if [ -n "${CA_DIR:-}" ]; then
  : "${TRUSTSTORE:?}"
  [ -n "${TRUSTSTORE_PASSWORD-}" ] || die "CA_DIR is set but TRUSTSTORE_PASSWORD is empty"
  command -v keytool >/dev/null 2>&1 || die "keytool not found in controller.image: controller.caCertificates needs a JDK's keytool"
  cacerts=${JAVA_HOME:-/opt/java/openjdk}/lib/security/cacerts
  [ -f "$cacerts" ] || die "the JDK's CA list $cacerts is missing (JAVA_HOME=${JAVA_HOME:-unset})"
  rm -f "$TRUSTSTORE"
  keytool -importkeystore -noprompt -srckeystore "$cacerts" -srcstorepass changeit \
    -destkeystore "$TRUSTSTORE" -deststoretype PKCS12 -deststorepass "$TRUSTSTORE_PASSWORD" >/dev/null 2>&1 \
    || die "could not copy the JDK's CA list $cacerts into $TRUSTSTORE"
  split=$(mktemp -d "$tmp_root/jda-ca.XXXXXX")
  added=0
  for pem in "$CA_DIR"/*; do
    [ -f "$pem" ] || continue
    # one file per certificate: keytool -importcert reads only the first of a bundle
    awk -v dir="$split" -v base="${pem##*/}" '
      /-----BEGIN CERTIFICATE-----/ { n++; out = sprintf("%s/%s.%d.pem", dir, base, n) }
      out != "" { print > out }
      /-----END CERTIFICATE-----/ { close(out); out = "" }' "$pem"
  done
  for cert in "$split"/*.pem; do
    [ -f "$cert" ] || continue
    keytool -importcert -noprompt -trustcacerts -alias "jda-${cert##*/}" -file "$cert" \
      -keystore "$TRUSTSTORE" -storetype PKCS12 -storepass "$TRUSTSTORE_PASSWORD" >/dev/null 2>&1 \
      || die "controller.caCertificates: ${cert##*/} is not a PEM certificate keytool accepts"
    added=$((added + 1))
  done
  rm -rf "$split"
  [ "$added" -gt 0 ] || die "controller.caCertificates: no PEM certificate (BEGIN CERTIFICATE) in $CA_DIR"
  log "truststore $TRUSTSTORE: the JDK's CA list plus $added certificates from controller.caCertificates"
fi

# --- is the plugin directory already what the list says? --------------------------------------------
stamp="$PLUGIN_DIR/.jda-plugins.sha256"
want=$(sha256sum "$PLUGINS_TXT" | cut -d' ' -f1)
mkdir -p "$PLUGIN_DIR"
expected=$(sed -n 's/^\([A-Za-z0-9_.-][A-Za-z0-9_.-]*\):.*$/\1/p' "$PLUGINS_TXT" | sort | tr '\n' ' ')
count=$(printf '%s' "$expected" | wc -w)

# Plugin-Version of a plugin archive, as jenkins-plugin-cli reads it (manifest main section; CRLF).
plugin_version() {
  unzip -p "$1" META-INF/MANIFEST.MF 2>/dev/null | sed -n 's/^Plugin-Version: *//p' | tr -d '\r' | head -n 1
}

if [ "$source" = image ]; then
  dir=${IMAGE_PLUGIN_DIR:-/usr/share/jenkins/ref/plugins}
  [ -d "$dir" ] || die "controller.plugins.source is image, but controller.image has no $dir (controller.plugins.imageDir)"
  command -v unzip >/dev/null 2>&1 || die "unzip not found in controller.image: it reads the baked plugins' versions"
  have=$(mktemp "$tmp_root/jda-image-plugins.XXXXXX")
  for f in "$dir"/*.jpi "$dir"/*.hpi; do
    [ -f "$f" ] || continue
    name=${f##*/}
    printf '%s:%s\n' "${name%.?pi}" "$(plugin_version "$f")" >> "$have"
  done
  diffs=$(sort "$have" | awk -F: -v lock="$PLUGINS_TXT" '
    BEGIN { while ((getline line < lock) > 0) { split(line, p, ":"); if (p[1] != "") want[p[1]] = substr(line, length(p[1]) + 2) } }
    { got[$1] = substr($0, length($1) + 2) }
    END {
      for (id in want) {
        if (!(id in got)) print "  missing from the image: " id ":" want[id]
        else if (got[id] == "") print "  " id ": no Plugin-Version in its manifest (the lock wants " want[id] ")"
        else if (got[id] != want[id]) print "  " id ": the image has " got[id] ", the lock wants " want[id]
      }
      for (id in got) if (!(id in want)) print "  not in the lock: " id ":" got[id]
    }' | sort)
  rm -f "$have"
  if [ -n "$diffs" ]; then
    n=$(printf '%s\n' "$diffs" | wc -l)
    die "the plugins baked into controller.image ($dir) differ from the chart's lock plus controller.additionalPlugins in $n places:
$diffs
Rebuild the image from this chart's list (the plugins.txt key of the -config ConfigMap), or change the lock."
  fi
  log "the $count plugins in controller.image ($dir) match the lock"
fi

present=$(find "$PLUGIN_DIR" -maxdepth 1 -type f \( -name '*.jpi' -o -name '*.hpi' \) | sed 's|.*/||; s/\.[hj]pi$//' | sort | tr '\n' ' ')
reason=""
if [ ! -f "$stamp" ]; then
  reason="no record of an earlier install"
elif [ "$(cat "$stamp")" != "$want" ]; then
  reason="the plugin list changed"
elif [ "$present" != "$expected" ]; then
  reason="the directory holds other plugins than the list"
elif [ -n "$(find "$PLUGIN_DIR" -maxdepth 1 -type f \( -name '*.bak' -o -newer "$stamp" \) ! -name '.jda-*' ! -name '*.disabled' | head -n 1)" ]; then
  reason="plugins were changed after the last install"
fi
if [ -z "$reason" ]; then
  log "the $count installed plugins match the lock ($want); nothing to install"
  exit 0
fi

# --- nothing newer is replaced by an older pin unless allowed ---------------------------------------
# Jenkins plugin versions compared by their leading numeric parts (1.131.v7199556c3004 -> 1 131); where
# those are equal the two are not ordered, and no downgrade is claimed.
newer=""
if command -v unzip >/dev/null 2>&1; then
  for f in "$PLUGIN_DIR"/*.jpi "$PLUGIN_DIR"/*.hpi; do
    [ -f "$f" ] || continue
    name=${f##*/}
    id=${name%.?pi}
    pin=$(sed -n "s/^$id:\(.*\)$/\1/p" "$PLUGINS_TXT" | head -n 1)
    [ -n "$pin" ] || continue
    got=$(plugin_version "$f")
    [ -n "$got" ] || continue
    if awk -v a="$got" -v b="$pin" 'function lead(v, out,   n, i, parts, k) {
        n = split(v, parts, /[.-]/); k = 0
        for (i = 1; i <= n && parts[i] ~ /^[0-9]+$/; i++) out[++k] = parts[i] + 0
        return k }
      BEGIN { na = lead(a, x); nb = lead(b, y); m = na > nb ? na : nb
        for (i = 1; i <= m; i++) { if ((x[i] + 0) > (y[i] + 0)) exit 0; if ((x[i] + 0) < (y[i] + 0)) exit 1 }
        exit 1 }'; then
      newer="$newer
  $id: installed $got, the list pins $pin"
    fi
  done
else
  log "unzip not found: the installed plugins' versions cannot be read, so downgrades are not checked"
fi
if [ -n "$newer" ]; then
  if [ "${ALLOW_DOWNGRADE:-false}" = true ]; then
    log "downgrading, as controller.plugins.allowDowngrade allows:$newer"
  else
    die "the plugin directory holds newer versions than the list would install ($reason):$newer
Pin them in controller.additionalPlugins (id:version), or set controller.plugins.allowDowngrade=true to install the list's versions; nothing was changed."
  fi
fi

# --- the old directory is moved aside, not deleted -----------------------------------------------
rm -f "$stamp"
aside="${PLUGIN_DIR%/}.jda-previous"
# the copies whose .disabled markers a successful install puts back, listed in $pending until then, so
# an install that fails after the move (the directory is left empty) still restores them next time
pending="$aside/.pending"
previous=""
if [ -n "$(find "$PLUGIN_DIR" -mindepth 1 -maxdepth 1 | head -n 1)" ]; then
  previous="$aside/$(date -u +%Y%m%dT%H%M%SZ)"
  [ ! -e "$previous" ] || previous="$previous.$$"
  mkdir -p "$previous"
  find "$PLUGIN_DIR" -mindepth 1 -maxdepth 1 -exec mv {} "$previous"/ \;
  printf '%s\n' "$previous" >> "$pending"
  log "the previous plugin directory is in $previous"
  keep=${KEEP_PREVIOUS:-3}
  ls -1 "$aside" | sort | awk -v keep="$keep" '{ all[NR] = $0 } END { for (i = 1; i <= NR - keep; i++) print all[i] }' \
    | while read -r old; do rm -rf "${aside:?}/$old"; log "removed the older copy $aside/$old"; done
fi

if [ "$source" = image ]; then
  log "copying $count plugins from controller.image ($reason)"
  for f in "$dir"/*.jpi "$dir"/*.hpi; do
    [ -f "$f" ] || continue
    name=${f##*/}
    cp "$f" "$PLUGIN_DIR/${name%.?pi}.jpi"
  done
else
  log "installing $count plugins from the lock ($reason)"
  # a work directory that an attempt killed before its trap ran (OOM, deadline) left behind
  rm -rf "$tmp_root"/jda-plugin-install.* "$tmp_root"/plugin-installation-manager-downloads*
  work=$(mktemp -d "$tmp_root/jda-plugin-install.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  trap 'exit 143' TERM INT
  if [ -n "${UC_CREDENTIALS_FILE:-}" ]; then
    [ -s "$UC_CREDENTIALS_FILE" ] || die "controller.plugins.updateCenter.credentialsSecret: $UC_CREDENTIALS_FILE is empty or missing"
    JENKINS_UC_CREDENTIALS=$(cat "$UC_CREDENTIALS_FILE")
    export JENKINS_UC_CREDENTIALS
  fi
  JAVA_OPTS="${JAVA_OPTS:-} -Djava.io.tmpdir=$work" CACHE_DIR="$work/cache" \
    jenkins-plugin-cli --plugin-file "$PLUGINS_TXT" --plugin-download-directory "$PLUGIN_DIR" \
    --clean-download-directory --latest false --verbose
fi
if [ -f "$pending" ]; then
  while read -r copy; do
    [ -d "$copy" ] || continue
    for marker in "$copy"/*.jpi.disabled "$copy"/*.hpi.disabled; do
      [ -f "$marker" ] || continue
      name=${marker##*/}
      id=${name%.?pi.disabled}
      [ ! -e "$PLUGIN_DIR/$id.jpi.disabled" ] || continue
      case " $expected" in
        *" $id "*) : > "$PLUGIN_DIR/$id.jpi.disabled"; log "$id stays disabled (its .disabled marker is kept)" ;;
      esac
    done
  done < "$pending"
fi
rm -f "$pending"
printf '%s\n' "$want" > "$stamp"
log "$count plugins installed"
