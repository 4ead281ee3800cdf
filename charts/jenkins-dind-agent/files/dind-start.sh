#!/bin/sh
# Start of the dind container: keep everything dockerd runs inside this container's own cgroup, size
# the bridges to the pod network's MTU, then hand over to the image's entrypoint:
#   dind-start.sh dockerd-entrypoint.sh dockerd --host=... [flags]
#
# Cgroups. A privileged container gets no cgroup namespace from containerd or CRI-O, so /sys/fs/cgroup
# is the node's hierarchy and dockerd's default parent (/docker) would put build containers beside the
# pod, outside its limits (moby#45378).
#   v1: dockerd gets --cgroup-parent=<this container's cgroup>/jda-builds.
#   v2 with a cgroup namespace (the container's cgroup is "/"): nothing to do; the image's hack/dind
#       nests dockerd inside it.
#   v2 without one: this container's cgroup is bind-mounted over /sys/fs/cgroup (in the container's own
#       mount namespace), so that hack/dind nests at it instead of at the node's root, and dockerd's
#       containers land below it. (The image's busybox `unshare` has no cgroup namespace option.)
# MTU. JDA_MTU=auto: the bridges get eth0's MTU (--mtu and --default-network-opt for networks that
# BuildKit or compose create); a number was already put on the command line by the chart.
# Prewarm (JDA_PREWARM=1, an image from scripts/build-prewarmed-dind): a data root baked for
# JDA_STORAGE_DRIVER is used in place (vfs: --data-root, nothing to load) or set up in the empty
# /var/lib/docker (overlay2 cannot run on the container's overlay root: metadata copied, each layer's
# diff bind-mounted read-only from the image); without one, the chart's postStart hook loads the
# baked archives.
#
# JDA_PROC_CGROUP, JDA_CGROUP_ROOT, JDA_NET_ROOT and JDA_PREWARM_ROOT exist for the tests only.
set -eu
proc_cgroup=${JDA_PROC_CGROUP:-/proc/self/cgroup}
cgroup_root=${JDA_CGROUP_ROOT:-/sys/fs/cgroup}
net_root=${JDA_NET_ROOT:-/sys/class/net}
prewarm_root=${JDA_PREWARM_ROOT:-/var/lib/jda-prewarm/data-root}

log() { echo "jenkins-dind-agent: $*" >&2; }

entrypoint=$1
shift
extra=""

if [ -f "$cgroup_root/cgroup.controllers" ]; then
  own=$(sed -n 's/^0::\(.*\)$/\1/p' "$proc_cgroup" | head -n 1)
  if [ -z "$own" ]; then
    log "cgroup v2, but no v2 entry in $proc_cgroup; dockerd keeps its default cgroup parent"
  elif [ "$own" = "/" ]; then
    log "cgroup v2 with a private cgroup namespace: dockerd's containers nest inside this container"
  else
    mount --bind "$cgroup_root$own" "$cgroup_root"
    log "cgroup v2 without a cgroup namespace: $own is now the root of $cgroup_root; dockerd's containers nest below it"
  fi
else
  own=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ { print $3; exit }' "$proc_cgroup")
  if [ -z "$own" ]; then
    log "cgroup v1 without a memory controller entry in $proc_cgroup; dockerd keeps its default cgroup parent"
  elif [ "$own" = "/" ]; then
    log "cgroup v1 with a private cgroup namespace: dockerd's containers nest inside this container"
  else
    extra="--cgroup-parent=${own%/}/jda-builds"
    log "cgroup v1: dockerd's containers go to ${own%/}/jda-builds, inside this container's limits"
  fi
fi

if [ "${JDA_MTU:-auto}" = "auto" ]; then
  mtu=$(cat "$net_root/eth0/mtu" 2>/dev/null || echo "")
  if [ -n "$mtu" ]; then
    extra="$extra --mtu=$mtu --default-network-opt=bridge=com.docker.network.driver.mtu=$mtu"
    log "bridge MTU $mtu (the pod's eth0)"
  else
    log "no $net_root/eth0/mtu; dockerd keeps its default MTU"
  fi
fi

if [ "${JDA_PREWARM:-}" = "1" ]; then
  driver=${JDA_STORAGE_DRIVER:-vfs}
  baked="$prewarm_root/$driver"
  if [ ! -d "$baked" ]; then
    log "prewarm: no $driver data root in the image; the postStart hook loads the baked archives"
  elif [ "$driver" = "vfs" ]; then
    extra="$extra --data-root=$baked"
    log "prewarm: dockerd runs on the data root baked into the image ($baked); nothing to load"
  elif [ -z "$(ls -A "${JDA_DOCKER_ROOT:-/var/lib/docker}")" ]; then
    # Everything but the layer contents is copied; each layer's diff (read-only to dockerd) is bind-mounted
    # from the image, so the start costs no copy of the images themselves.
    docker_root=${JDA_DOCKER_ROOT:-/var/lib/docker}
    for entry in "$baked"/* "$baked"/.[!.]*; do
      [ -e "$entry" ] || continue
      [ "$(basename "$entry")" = "$driver" ] || cp -a "$entry" "$docker_root/"
    done
    mkdir -p "$docker_root/$driver"
    layers=0
    for entry in "$baked/$driver"/* "$baked/$driver"/.[!.]*; do
      [ -e "$entry" ] || continue
      name=$(basename "$entry")
      if [ ! -d "$entry/diff" ]; then
        cp -a "$entry" "$docker_root/$driver/"
        continue
      fi
      mkdir -p "$docker_root/$driver/$name"
      for part in "$entry"/* "$entry"/.[!.]*; do
        [ -e "$part" ] || continue
        [ "$(basename "$part")" = "diff" ] || cp -a "$part" "$docker_root/$driver/$name/"
      done
      mkdir -p "$docker_root/$driver/$name/diff"
      mount --bind "$entry/diff" "$docker_root/$driver/$name/diff"
      mount -o remount,bind,ro "$docker_root/$driver/$name/diff"
      layers=$((layers + 1))
    done
    log "prewarm: $driver data root set up in $docker_root: metadata copied, $layers layers bind-mounted from the image"
  else
    log "prewarm: ${JDA_DOCKER_ROOT:-/var/lib/docker} is not empty (a restarted container); keeping it"
  fi
fi

# shellcheck disable=SC2086 # $extra holds whole flags without spaces
exec "$entrypoint" "$@" $extra
