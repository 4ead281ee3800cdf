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
#
# JDA_PROC_CGROUP, JDA_CGROUP_ROOT and JDA_NET_ROOT exist for the tests only.
set -eu
proc_cgroup=${JDA_PROC_CGROUP:-/proc/self/cgroup}
cgroup_root=${JDA_CGROUP_ROOT:-/sys/fs/cgroup}
net_root=${JDA_NET_ROOT:-/sys/class/net}

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

# shellcheck disable=SC2086 # $extra holds whole flags without spaces
exec "$entrypoint" "$@" $extra
