#!/bin/sh
# docker-setup: the first init container of every dind agent pod (the dind image, uid 1000, read-only
# root). It prepares what the other containers read:
#   $JDA_CLI_DIR         the image's static docker CLI (bin/docker) and CLI plugins (cli-plugins/), which
#                        jnlp and extra containers mount at /usr/local/lib/docker; with CA bundles also
#                        ca-bundle.crt (the image's system CAs plus every mounted registry CA)
#   $JDA_DIND_CONFIG_DIR daemon.json for dockerd ($DAEMON_JSON, rendered by the chart)
#   $JDA_DOCKER_CONFIG   the CLI's config.json in a writable in-memory volume (~/.docker in jnlp): the
#                        registry credentials of agent.registry.secretName, if mounted, plus the proxies
#                        of agent.proxy ($DOCKER_PROXIES), which the CLI passes to builds as build args.
#                        Writable, so `docker login` in a job can add to it.
# Every path can be moved by its variable; the defaults are the pod's mount points.
set -eu
cli=${JDA_CLI_DIR:-/cli}
dind_config=${JDA_DIND_CONFIG_DIR:-/dind-config}
docker_config=${JDA_DOCKER_CONFIG:-/docker-config}
auth=${JDA_REGISTRY_AUTH:-/run/jda/registry-auth/config.json}
ca_dir=${JDA_CA_DIR:-/run/jda/ca}
system_ca=${JDA_SYSTEM_CA:-/etc/ssl/certs/ca-certificates.crt}
docker_bin=${JDA_DOCKER_BIN:-/usr/local/bin/docker}
plugin_dir=${JDA_CLI_PLUGINS:-/usr/local/libexec/docker/cli-plugins}

log() { echo "jenkins-dind-agent: $*"; }

mkdir -p "$cli/bin" "$cli/cli-plugins"
cp -L "$docker_bin" "$cli/bin/docker"
for p in "$plugin_dir"/*; do
  if [ -e "$p" ]; then cp -L "$p" "$cli/cli-plugins/"; fi
done
log "docker CLI and plugins copied: $(ls "$cli/bin" "$cli/cli-plugins" | tr '\n' ' ')"

printf '%s\n' "${DAEMON_JSON:?the chart sets DAEMON_JSON}" > "$dind_config/daemon.json"

# config.json = the registry credentials (a JSON object) with "proxies" added as its last member.
config='{}'
if [ -f "$auth" ]; then
  config=$(tr -d '\r\n' < "$auth")
  log "registry credentials from the mounted Secret"
fi
if [ -n "${DOCKER_PROXIES:-}" ]; then
  trimmed=${config%"${config##*[![:space:]]}"}
  case "$trimmed" in
    *[!{[:space:]]*'}') config="${trimmed%\}},\"proxies\":$DOCKER_PROXIES}" ;;
    *'}') config="{\"proxies\":$DOCKER_PROXIES}" ;;
    *) log "the registry credentials are not a JSON object; refusing to write a broken config.json" >&2; exit 1 ;;
  esac
  log "proxies added to the docker CLI config"
fi
(umask 077 && printf '%s\n' "$config" > "$docker_config/config.json")

bundles=0
for crt in "$ca_dir"/*/ca.crt; do
  [ -e "$crt" ] || continue
  if [ "$bundles" -eq 0 ]; then cat "$system_ca" > "$cli/ca-bundle.crt"; fi
  cat "$crt" >> "$cli/ca-bundle.crt"
  bundles=$((bundles + 1))
done
if [ "$bundles" -gt 0 ]; then log "CA bundle written with $bundles registry CA(s)"; fi
