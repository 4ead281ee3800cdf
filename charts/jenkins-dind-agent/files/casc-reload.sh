#!/bin/sh
# casc-reload: the controller's sidecar when controller.jcasc.reload.enabled. Every $INTERVAL seconds
# it hashes the JCasC files in $CASC_DIR (the *.yaml / *.yml entries of the mounted ConfigMap; kubelet
# swaps them atomically when the ConfigMap changes) and, when the hash differs from the last applied
# one, POSTs the reload token to $RELOAD_URL, the configuration-as-code plugin's TokenReloadAction.
# The token goes in the form body (never on a command line or in a URL). Jenkins not answering (starting,
# restarting: no answer, 502, 503, 504) is retried at the next check; any other refusal (401 wrong token,
# 404 reload not enabled, 500 a configuration JCasC rejects) is logged once and that version is not sent
# again. An unchanged directory costs no request at all. Each check writes the time to $HEARTBEAT, which
# the container's probes read (ready once watching; alive while the loop turns).
set -eu
: "${CASC_DIR:?}" "${RELOAD_URL:?}" "${TOKEN_FILE:?}"
interval=${INTERVAL:-10}
heartbeat=${HEARTBEAT:-/tmp/casc-reload.heartbeat}

log() { echo "casc-reload: $*"; }
# Written aside and renamed: the liveness probe's `cat` never sees the empty file a `>` redirect
# leaves while date starts.
beat() { date +%s > "$heartbeat.new" && mv -f "$heartbeat.new" "$heartbeat"; }

digest() {
  for f in "$CASC_DIR"/*.yaml "$CASC_DIR"/*.yml; do
    [ -f "$f" ] || continue
    printf '%s\n' "${f##*/}"
    cat "$f"
  done | sha256sum | cut -d' ' -f1
}

applied=$(digest)
log "watching $CASC_DIR every ${interval}s (files $applied)"
beat
while :; do
  sleep "$interval"
  beat
  current=$(digest)
  [ "$current" = "$applied" ] && continue
  log "JCasC files changed ($applied -> $current); asking Jenkins to reload"
  token=$(cat "$TOKEN_FILE")
  if status=$(printf '%s' "$token" | curl -sS -o /dev/null -w '%{http_code}' --max-time 120 \
      -X POST --data-urlencode 'casc-reload-token@-' "$RELOAD_URL"); then
    :
  else
    status="no answer"
  fi
  case "$status" in
    2??) applied=$current; log "reloaded (HTTP $status)" ;;
    "no answer" | 000 | 502 | 503 | 504) log "Jenkins did not take the reload (HTTP $status); retrying in ${interval}s" >&2 ;;
    *) applied=$current; log "Jenkins refused the reload (HTTP $status); see its log, the next change is sent again" >&2 ;;
  esac
done
