#!/bin/sh
# Start of the dind container: keep everything dockerd runs inside this container's own cgroup, in a
# child whose memory limit leaves dockerd room, size the bridges to the pod network's MTU, set up a
# prewarmed data root, then hand over to the image's entrypoint:
#   dind-start.sh dockerd-entrypoint.sh dockerd --host=... [flags]
#
# Cgroups. A privileged container gets no cgroup namespace from containerd or CRI-O, so /sys/fs/cgroup
# is the node's hierarchy and dockerd's default parent (/docker) would put build containers beside the
# pod, outside its limits (moby#45378). So every container dockerd starts (build steps, `docker run`,
# compose services) goes into one child cgroup of this container's, jda-builds, whose memory limit is
# dind's own limit (JDA_MEMORY_LIMIT, bytes, from the downward API) minus JDA_BUILD_MEMORY_HEADROOM
# (bytes, agent.dind.buildMemoryHeadroom), the room kept for dockerd, containerd and the shims.
#   v1: dockerd gets --cgroup-parent=<this container's cgroup, as seen at /sys/fs/cgroup/memory>/jda-builds;
#       its memory.limit_in_bytes is set in the memory hierarchy. runc mounts each v1 hierarchy as a bind
#       of the container's own cgroup (mountinfo's root field says which), so there that path is
#       /jda-builds; where the node's whole hierarchy is visible it is the full path from /proc/self/cgroup.
#   v2: without a cgroup namespace (this container's cgroup is not "/"), that cgroup is first
#       bind-mounted over /sys/fs/cgroup (in the container's own mount namespace), so that everything
#       below, and the image's hack/dind, acts on it and not on the node's root. Then, as hack/dind does
#       (and does again, harmlessly, in the image's entrypoint): this container's processes move into
#       the child "init", the controllers are enabled in cgroup.subtree_control (only a cgroup without
#       processes can hand memory.max to its children), jda-builds is created with its memory.max, and
#       dockerd gets --cgroup-parent=/jda-builds. (The image's busybox `unshare` has no cgroup
#       namespace option, so the bind mount stands in for one.)
# Why on v2: the kubelet writes memory.oom.group=1 into every container's cgroup (unless its
# singleProcessOOMKill is true). A build that took dind over its limit would make the kernel kill every
# process of dind's cgroup: dockerd, containerd and every other build. A build in jda-builds hits
# jda-builds' own limit first; that OOM stays there, no group flag applies, and the kernel kills one
# process of the builds, not dockerd.
# One shared jda-builds, not one cgroup per build: dockerd gives each container a cgroup of its own
# below it anyway, but how much a build step may use cannot be known here (BuildKit's `docker build` has
# no memory flag; `docker run -m` still works and nests below jda-builds). One budget for everything
# dockerd starts is what the kernel can enforce from here, and it is what keeps dockerd alive; builds
# running at the same time in one pod share it, and the OOM killer picks the largest process among them.
# MTU. JDA_MTU=auto: the bridges get the smaller of eth0's MTU and the MTU of the pod's route to other
# hosts (`ip route get`, where the route carries one: Cilium with tunnelling or encryption keeps eth0 at
# 1500 and puts its overhead there; busybox's `ip` prints no route MTU, and the stand-in has no `ip`),
# as --mtu and --default-network-opt (networks that BuildKit or compose create); a number was already
# put on the command line by the chart.
# Prewarm (JDA_PREWARM=1, an image from scripts/build-prewarmed-dind): a data root baked for
# JDA_STORAGE_DRIVER is used in place (vfs: --data-root, nothing to load) or set up in the empty
# /var/lib/docker (overlay2 cannot run on the container's overlay root: metadata copied, each layer's
# diff bind-mounted read-only from the image). The bind mounts die with the container, /var/lib/docker
# (an emptyDir) does not: after a restart they are made again; a mount point already mounted is left
# alone. Without a baked data root, the chart's postStart hook loads the baked archives.
#
# JDA_PROC_CGROUP, JDA_MOUNTINFO, JDA_CGROUP_ROOT, JDA_NET_ROOT, JDA_PREWARM_ROOT and JDA_DOCKER_ROOT exist for the
# tests only.
set -eu
proc_cgroup=${JDA_PROC_CGROUP:-/proc/self/cgroup}
mountinfo=${JDA_MOUNTINFO:-/proc/self/mountinfo}
cgroup_root=${JDA_CGROUP_ROOT:-/sys/fs/cgroup}
net_root=${JDA_NET_ROOT:-/sys/class/net}
prewarm_root=${JDA_PREWARM_ROOT:-/var/lib/jda-prewarm/data-root}

log() { echo "jenkins-dind-agent: $*" >&2; }
is_number() { case "$1" in '' | *[!0-9]*) return 1 ;; esac; }

entrypoint=$1
shift
extra=""

# --- cgroups ----------------------------------------------------------------------------------------
limit=${JDA_MEMORY_LIMIT:-}
headroom=${JDA_BUILD_MEMORY_HEADROOM:-}
builds_limit=""
if ! is_number "$limit" || ! is_number "$headroom"; then
  log "no memory limit or headroom given (JDA_MEMORY_LIMIT='$limit', JDA_BUILD_MEMORY_HEADROOM='$headroom'): jda-builds gets no memory limit of its own"
elif [ "$limit" -le "$headroom" ]; then
  log "dind's memory limit ($limit bytes) is not above the headroom for dockerd ($headroom bytes): jda-builds gets no memory limit of its own"
else
  builds_limit=$((limit - headroom))
fi

# v2: move this cgroup's processes into init/ and enable the controllers for its children (EBUSY while
# a process is left, e.g. a probe that just started here: retried, like hack/dind does).
v2_delegate() {
  mkdir -p "$cgroup_root/init"
  while read -r pid; do
    echo "$pid" 2>/dev/null || :
  done <"$cgroup_root/cgroup.procs" >"$cgroup_root/init/cgroup.procs"
  sed -e 's/ / +/g' -e 's/^/+/' <"$cgroup_root/cgroup.controllers" >"$cgroup_root/cgroup.subtree_control" 2>/dev/null
}

# The smallest pids.max from cgroup directory $1 up to $2 (the hierarchy's root), or nothing: the
# kubelet's pod pids limit sits on the pod's cgroup, an ancestor of this container's.
pids_limit() {
  dir=$1 best=""
  while :; do
    value=$(cat "$dir/pids.max" 2>/dev/null || :)
    if is_number "$value" && { [ -z "$best" ] || [ "$value" -lt "$best" ]; }; then
      best=$value
    fi
    [ "$dir" = "$2" ] && break
    next=${dir%/*}
    if [ "$next" = "$dir" ] || [ "${#next}" -lt "${#2}" ]; then
      break
    fi
    dir=$next
  done
  echo "$best"
}

# Builds get all but a few pids of the limit that covers this container, so that a fork bomb in one
# leaves dockerd, containerd and `docker exec` (the kubelet's probes, jnlp's steps) room to start.
pids_headroom=64
# $1: the jda-builds directory of the pids controller; $2: the limit above this container, or nothing.
limit_build_pids() {
  if [ -z "$2" ] || [ "$2" -le "$pids_headroom" ]; then
    return 0
  fi
  if echo "$(($2 - pids_headroom))" >"$1/pids.max" 2>/dev/null; then
    log "jda-builds pids.max $(($2 - pids_headroom)) (the pids limit above this container, $2, minus $pids_headroom)"
  else
    log "cannot set pids.max on $1; jda-builds shares the pids limit ($2) with dockerd"
  fi
}

# v1: the path of cgroup $2 (from /proc/self/cgroup) below the mount of controller $1. The mount's root
# (mountinfo's 4th field) is "/" where the node's whole hierarchy is visible, and this container's own
# cgroup where the runtime bound only that one (runc does, for every v1 controller). Of mounts stacked on
# one mount point the last one listed is the one visible.
v1_below_mount() {
  root=$(awk -v at="$cgroup_root/$1" '$5 == at { root = $4 } END { print root }' "$mountinfo" 2>/dev/null || :)
  case "$root" in
    "" | /) echo "$2" ;;
    "$2") echo / ;;
    *) case "$2" in "$root"/*) echo "${2#"$root"}" ;; *) echo "$2" ;; esac ;;
  esac
}

# v1, bound to this container's cgroup: the pod's pids limit sits on an ancestor that the bind hides. A
# second mount of the pids hierarchy (this container's mount namespace; privileged) shows the whole tree.
v1_hidden_pids_limit() {
  view=$(mktemp -d 2>/dev/null) || return 0
  if mount -t cgroup -o pids jda-pids "$view" 2>/dev/null; then
    pids_limit "$view${1%/}" "$view"
    umount "$view" 2>/dev/null || :
  fi
  rmdir "$view" 2>/dev/null || :
}

parent=""
if [ -f "$cgroup_root/cgroup.controllers" ]; then
  own=$(sed -n 's/^0::\(.*\)$/\1/p' "$proc_cgroup" | head -n 1)
  if [ -z "$own" ]; then
    log "cgroup v2, but no v2 entry in $proc_cgroup; dockerd keeps its default cgroup parent"
  else
    # read before the bind mount below hides this container's ancestors
    pids_max=$(pids_limit "$cgroup_root${own%/}" "$cgroup_root")
    if [ "$own" = "/" ]; then
      log "cgroup v2 with a private cgroup namespace: this container's cgroup is $cgroup_root already"
    else
      mount --bind "$cgroup_root$own" "$cgroup_root"
      log "cgroup v2 without a cgroup namespace: $own is now the root of $cgroup_root"
    fi
    tries=0
    until v2_delegate; do
      tries=$((tries + 1))
      if [ "$tries" -ge 50 ]; then
        log "cgroup v2: could not enable the controllers for the children of this container's cgroup"
        break
      fi
      sleep 0.1
    done
    mkdir -p "$cgroup_root/jda-builds"
    parent=/jda-builds
    if [ -z "$builds_limit" ]; then
      :
    elif grep -qw memory "$cgroup_root/cgroup.subtree_control" 2>/dev/null; then
      echo "$builds_limit" >"$cgroup_root/jda-builds/memory.max"
      log "cgroup v2: jda-builds memory.max $builds_limit (dind's limit $limit minus $headroom for dockerd)"
    else
      log "cgroup v2: the memory controller is not enabled below this container's cgroup; jda-builds gets no memory limit of its own"
    fi
    if grep -qw pids "$cgroup_root/cgroup.subtree_control" 2>/dev/null; then
      limit_build_pids "$cgroup_root/jda-builds" "$pids_max"
    fi
    log "cgroup v2: dockerd's containers go to jda-builds, inside this container's limits"
  fi
else
  own=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ { print $3; exit }' "$proc_cgroup")
  if [ -z "$own" ]; then
    log "cgroup v1 without a memory controller entry in $proc_cgroup; dockerd keeps its default cgroup parent"
  else
    here=$(v1_below_mount memory "$own")
    parent="${here%/}/jda-builds"
    memory="$cgroup_root/memory$parent"
    if [ -z "$builds_limit" ]; then
      :
    elif mkdir -p "$memory" 2>/dev/null && echo "$builds_limit" >"$memory/memory.limit_in_bytes"; then
      log "cgroup v1: jda-builds memory.limit_in_bytes $builds_limit (dind's limit $limit minus $headroom for dockerd)"
    else
      log "cgroup v1: cannot set a memory limit on $memory; jda-builds gets no memory limit of its own"
    fi
    own_pids=$(awk -F: '$2 ~ /(^|,)pids(,|$)/ { print $3; exit }' "$proc_cgroup")
    if [ -n "$own_pids" ] && [ -d "$cgroup_root/pids" ]; then
      pids_here=$(v1_below_mount pids "$own_pids")
      if [ "$pids_here" = "$own_pids" ]; then
        pids_max=$(pids_limit "$cgroup_root/pids${own_pids%/}" "$cgroup_root/pids")
      else
        pids_max=$(v1_hidden_pids_limit "$own_pids")
      fi
      builds_pids="$cgroup_root/pids${pids_here%/}/jda-builds"
      if [ -z "$pids_max" ]; then
        log "cgroup v1: no pids limit found above this container; jda-builds gets none of its own"
      elif mkdir -p "$builds_pids" 2>/dev/null; then
        limit_build_pids "$builds_pids" "$pids_max"
      fi
    fi
    log "cgroup v1: dockerd's containers go to $parent, inside this container's limits"
  fi
fi
if [ -n "$parent" ]; then
  extra="--cgroup-parent=$parent"
fi

# --- MTU --------------------------------------------------------------------------------------------
if [ "${JDA_MTU:-auto}" = "auto" ]; then
  eth0=$(cat "$net_root/eth0/mtu" 2>/dev/null || echo "")
  route=""
  if command -v ip >/dev/null 2>&1; then
    # documentation addresses (RFC 5737, RFC 3849): never local, so the lookup follows the default route
    for target in 192.0.2.1 2001:db8::1; do
      found=$(ip route get "$target" 2>/dev/null | tr '\n' ' ' | sed -n 's/.* mtu \(lock \)\{0,1\}\([0-9][0-9]*\).*/\2/p')
      if is_number "$found" && { [ -z "$route" ] || [ "$found" -lt "$route" ]; }; then
        route=$found
      fi
    done
  else
    log "no ip command in this image: the route MTU is not checked (set agent.dind.mtu where routes carry a smaller one)"
  fi
  mtu=$eth0
  if is_number "$route" && { ! is_number "$eth0" || [ "$route" -lt "$eth0" ]; }; then
    mtu=$route
    log "bridge MTU $mtu (the MTU of the pod's route; eth0 says ${eth0:-nothing})"
  elif is_number "$eth0"; then
    log "bridge MTU $mtu (the pod's eth0)"
  fi
  if is_number "$mtu"; then
    extra="$extra --mtu=$mtu --default-network-opt=bridge=com.docker.network.driver.mtu=$mtu"
  else
    log "no $net_root/eth0/mtu and no route MTU; dockerd keeps its default MTU"
  fi
fi

# --- prewarm ----------------------------------------------------------------------------------------
if [ "${JDA_PREWARM:-}" = "1" ]; then
  driver=${JDA_STORAGE_DRIVER:-vfs}
  baked="$prewarm_root/$driver"
  docker_root=${JDA_DOCKER_ROOT:-/var/lib/docker}
  if [ ! -d "$baked" ]; then
    log "prewarm: no $driver data root in the image; the postStart hook loads the baked archives"
  elif [ "$driver" = "vfs" ]; then
    extra="$extra --data-root=$baked"
    log "prewarm: dockerd runs on the data root baked into the image ($baked); nothing to load"
  else
    if [ -z "$(ls -A "$docker_root")" ]; then
      # Everything but the layer contents is copied; each layer's diff (read-only to dockerd) is bound
      # from the image below, so the start costs no copy of the images themselves.
      fresh=1
      for entry in "$baked"/* "$baked"/.[!.]*; do
        [ -e "$entry" ] || continue
        [ "$(basename "$entry")" = "$driver" ] || cp -a "$entry" "$docker_root/"
      done
      mkdir -p "$docker_root/$driver"
      for entry in "$baked/$driver"/* "$baked/$driver"/.[!.]*; do
        [ -e "$entry" ] || continue
        if [ ! -d "$entry/diff" ]; then
          cp -a "$entry" "$docker_root/$driver/"
          continue
        fi
        mkdir -p "$docker_root/$driver/$(basename "$entry")/diff"
        for part in "$entry"/* "$entry"/.[!.]*; do
          [ -e "$part" ] || continue
          [ "$(basename "$part")" = "diff" ] || cp -a "$part" "$docker_root/$driver/$(basename "$entry")/"
        done
      done
    else
      fresh=0
    fi
    # Bind every baked layer's diff: all of them on a fresh start; after a restart those whose mounts
    # died with the old container (a layer dockerd has since removed stays removed).
    layers=0
    mounted=0
    for entry in "$baked/$driver"/* "$baked/$driver"/.[!.]*; do
      [ -d "$entry/diff" ] || continue
      layer="$docker_root/$driver/$(basename "$entry")"
      [ -d "$layer" ] || continue
      mkdir -p "$layer/diff"
      if mountpoint -q "$layer/diff"; then
        mounted=$((mounted + 1))
        continue
      fi
      if [ -n "$(ls -A "$layer/diff")" ]; then
        log "prewarm: $layer/diff is neither empty nor a mount point; left alone"
        continue
      fi
      mount --bind "$entry/diff" "$layer/diff"
      mount -o remount,bind,ro "$layer/diff"
      layers=$((layers + 1))
    done
    if [ "$fresh" = 1 ]; then
      log "prewarm: $driver data root set up in $docker_root: metadata copied, $layers layers bind-mounted from the image"
    else
      log "prewarm: $docker_root is not empty (a restarted container): kept; $layers layers bind-mounted again from the image, $mounted already mounted"
    fi
  fi
fi

# shellcheck disable=SC2086 # $extra holds whole flags without spaces
exec "$entrypoint" "$@" $extra
