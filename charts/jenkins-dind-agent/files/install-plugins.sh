#!/bin/sh
# Install exactly the plugins listed in $PLUGINS_TXT ("id:version" lines) into $PLUGIN_DIR.
# The list is the chart's closed plugin lock: every dependency is pinned, so jenkins-plugin-cli runs
# with `--latest false` and resolves nothing at pod start. jenkins-plugin-cli never downgrades and
# leaves foreign plugins alone, so a directory that does not match the list is cleaned first
# (`--clean-download-directory`). A directory that matches (same list, same files, nothing changed
# since) is kept as it is, so restarts do not download anything.
set -eu
: "${PLUGINS_TXT:?}" "${PLUGIN_DIR:?}"
stamp="$PLUGIN_DIR/.jda-plugins.sha256"
want=$(sha256sum "$PLUGINS_TXT" | cut -d' ' -f1)
mkdir -p "$PLUGIN_DIR"
expected=$(sed -n 's/^\([A-Za-z0-9_.-][A-Za-z0-9_.-]*\):.*$/\1/p' "$PLUGINS_TXT" | sort | tr '\n' ' ')
count=$(printf '%s' "$expected" | wc -w)
present=$(find "$PLUGIN_DIR" -maxdepth 1 -type f \( -name '*.jpi' -o -name '*.hpi' \) | sed 's|.*/||; s/\.[hj]pi$//' | sort | tr '\n' ' ')
reason=""
if [ ! -f "$stamp" ]; then
  reason="no record of an earlier install"
elif [ "$(cat "$stamp")" != "$want" ]; then
  reason="the plugin list changed"
elif [ "$present" != "$expected" ]; then
  reason="the directory holds other plugins than the list"
elif [ -n "$(find "$PLUGIN_DIR" -maxdepth 1 -type f \( -name '*.bak' -o -newer "$stamp" \) ! -name '.jda-*' | head -n 1)" ]; then
  reason="plugins were changed after the last install"
fi
if [ -z "$reason" ]; then
  echo "jenkins-dind-agent: the $count installed plugins match the lock ($want); nothing to install"
  exit 0
fi
echo "jenkins-dind-agent: installing $count plugins from the lock ($reason)"
rm -f "$stamp"
jenkins-plugin-cli --plugin-file "$PLUGINS_TXT" --plugin-download-directory "$PLUGIN_DIR" \
  --clean-download-directory --latest false --verbose
printf '%s\n' "$want" > "$stamp"
echo "jenkins-dind-agent: $count plugins installed"
