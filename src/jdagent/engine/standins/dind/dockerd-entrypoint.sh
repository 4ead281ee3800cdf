#!/bin/sh
# Stand-in entrypoint with the upstream contract the chart depends on:
#  - no arguments, or a flag first: dockerd is prepended WITH a wildcard TCP listener, as the
#    upstream image does when TLS is off (so a chart that passed bare flags would be caught);
#  - "dockerd" first: exactly the given command line runs.
set -eu
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
  set -- dockerd --host=unix:///var/run/docker.sock --host=tcp://0.0.0.0:2375 "$@"
fi
if [ "$1" = "dockerd" ]; then
  find /run /var/run -iname 'docker*.pid' -delete 2>/dev/null || :
fi
exec "$@"
