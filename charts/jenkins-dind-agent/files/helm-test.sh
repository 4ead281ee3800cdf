#!/bin/sh
# `helm test` body, run in the jnlp container of the agent pod spec once dockerd answers.
set -eu
if [ -d /jda-test ]; then trap 'touch /jda-test/done' EXIT; fi
driver=$(docker info --format '{{.Driver}}')
echo "dockerd storage driver: $driver (expected: $EXPECTED_STORAGE_DRIVER)"
if [ "$EXPECTED_STORAGE_DRIVER" != "auto" ] && [ "$driver" != "$EXPECTED_STORAGE_DRIVER" ]; then
  echo "FAIL: dockerd runs on $driver, not $EXPECTED_STORAGE_DRIVER" >&2
  exit 1
fi
ctx=$(mktemp -d)
cp /jda-test-files/Dockerfile "$ctx/Dockerfile"
echo "building the multi-stage sample with --network host from $BASE_IMAGE"
docker build --network host --build-arg BASE_IMAGE="$BASE_IMAGE" -t jda-helm-test:run "$ctx"
out=$(docker run --rm jda-helm-test:run)
echo "image says: $out"
case "$out" in
  *"built in stage one"*) echo "PASS: multi-stage build works in the dind agent pod" ;;
  *) echo "FAIL: unexpected output from the built image" >&2; exit 1 ;;
esac
